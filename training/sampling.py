"""The four ways to sample a trained denoiser: new sounds, variations, tail inpainting and
interpolation.

Each is one function of the same shape, as k-diffusion's samplers are: the model, the clips or
noises it starts from, the mode's own numbers, the class label (None: the null class) and the
:class:`Settings` (steps, sampler, guidance, batch size, device, precision), returning the
clips ``[n, C, N]`` on the CPU in float32. Nothing here reads or writes a file or prints
(progress bars only when ``settings.progress``); ``training.sample`` is the command line around
them. The ODE solvers themselves are in ``training.diffusion``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.errors import Reject
from core.params import Trim
from pipeline.audio import fade, fix_length, remove_dc, sound_bounds, trim
from training import lengths as hit_lengths
from training.diffusion import (
    VFn,
    below_level,
    ddim_invert,
    grid_averaged,
    guided_v,
    schedule,
    slerp,
    solve,
)
from training.foldnet import FoldConfig
from training.model import Denoiser

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # the step of a low-discrepancy sequence on [0, 1)


@dataclass(frozen=True)
class Finish:
    """The pipeline's own settings for finishing a clip (``sample.finish``)."""

    dc_cutoff_hz: float  # normalize.dc_cutoff_hz
    trim: Trim  # trim.*
    fade_out_ms: float  # pad.fade_out_ms


@dataclass(frozen=True)
class Settings:
    """How to sample: params.yaml ``sample`` with the command line's overrides applied."""

    steps: int
    rho: float  # step spacing (diffusion.schedule): 1 = even, more = more steps at low noise
    sampler: str
    guidance: float
    seed: int
    batch_size: int
    device: torch.device
    precision: str  # "bf16" or "fp32"
    refine: int  # fixed-point passes per DDIM inversion step
    progress: bool
    finish: Finish | None = None  # what new sounds from noise get (see finish); None = off
    length: float | None = None  # the hits' length in seconds (None: drawn, see hit_lengths)
    grid_shifts: int = 1  # a patch model's low-noise predictions averaged over this many offsets
    grid_below: float = 0.0  # ...at noise levels up to this (diffusion.grid_averaged)
    length_stretch: float = 1.0  # the lengths said at noise levels up to length_below, times this
    length_below: float = 0.0


def make_noise(n: int, shape: Sequence[int], seed: int) -> Tensor:
    """``n`` Gaussian noises drawn in order on the CPU from ``seed``: the same seed gives the
    same noises on every device and batch size, and the first k of ``--n 8`` start from the
    noises of ``--n k`` (the files then agree to about 1e-6: kernels depend on batch shape)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=gen)


# ----------------------------------------------------------------------------- the four modes


def generate(model: Denoiser, noise: Tensor, label: int | None, s: Settings) -> Tensor:
    """Clips [n, C, N] from pure noise [n, C, N] (DDIM or DPM-Solver++(2M), guided).

    A model conditioned on length gets ``s.length``, or else a length per sound drawn (from
    ``s.seed``) from those it saw in the class: a class's closed and open hats both, where
    the class alone gives one sound between them."""
    ts = schedule(s.steps, device=s.device, name=model.schedule, rho=s.rho)
    lengths = draw_lengths(model, label, len(noise), s)

    def fn(x: Tensor, labels: Tensor | None, lens: Tensor | None = None) -> Tensor:
        return solve(_v(model, labels, s, lens), x, ts, s.sampler, progress=s.progress)

    return finish(_batched(fn, noise, label, s, lengths=lengths), model.sample_rate, s.finish)


def draw_lengths(model: Denoiser, label: int | None, n: int, s: Settings) -> Tensor | None:
    """The lengths [n] in seconds new sounds are asked for (None: not conditioned): the class's
    lengths at the quantiles of a golden-ratio sequence from a seeded start, so any first k
    sounds spread evenly over the class (a set of 8 hats holds its closed and open ones in
    the data's proportion, where independent draws often gave 6 of one kind), and the first k
    sounds of ``--n 8`` are those of ``--n k``, as their noise is."""
    counts = model.length_counts
    if counts is None or label is None:
        return None
    if s.length is not None:
        return torch.full((n,), float(s.length))
    start = torch.rand(
        1, generator=torch.Generator().manual_seed(s.seed + 7919), dtype=torch.float64
    )
    u = torch.remainder(start + torch.arange(n, dtype=torch.float64) * GOLDEN, 1.0)
    return hit_lengths.quantiles(counts[label], u)


def finish(clips: Tensor, sample_rate: int, f: Finish | None) -> Tensor:
    """New sounds [n, C, N] finished as the pipeline finishes every real clip: DC offset taken
    out (normalize's filter), silence before and after the hit trimmed with trim's settings
    (so a tail that fades into a low noise floor ends in silence, as the training clips do),
    the onset ``preroll_ms`` from the start, padded back to N with zeros, and faded in over
    trim's ``fade_in_ms`` at the first sample (so no file starts with a step, a click).
    None = the sampler's output as it is."""
    if f is None:
        return clips
    n = clips.shape[-1]
    t = f.trim
    out = []
    for x in clips.float().cpu().numpy():
        y = remove_dc(x, sample_rate, f.dc_cutoff_hz)
        with contextlib.suppress(Reject):  # a silent sound stays as it is
            y = trim(y, sample_rate, t.threshold_db, t.preroll_ms, t.fade_in_ms, t.tail_ms,
                     t.fade_out_ms, t.window_ms, t.gap_ms, t.floor_db)  # fmt: skip
            # A hit that starts sooner than the pre-roll is moved later, so it starts where
            # trimmed real clips start and the fade-in meets silence, not the attack.
            onset, _ = sound_bounds(
                y, sample_rate, t.threshold_db, t.window_ms, t.gap_ms, t.floor_db
            )
            y = np.pad(y, ((0, 0), (max(0, round(t.preroll_ms * sample_rate / 1000) - onset), 0)))
        y = fix_length(y, n, sample_rate, f.fade_out_ms)
        k = min(round(t.fade_in_ms * sample_rate / 1000), n)
        if k > 0:
            y[:, :k] *= fade(k, rising=True)
        out.append(y)
    return torch.from_numpy(np.stack(out)).to(clips.dtype)


def variation(
    model: Denoiser, init: Tensor, noise: Tensor, strength: float, label: int | None, s: Settings
) -> Tensor:
    """Variations of one clip ``init`` [C, N], one per noise [n, C, N]: the clip noised to
    level ``strength`` (x = alpha init + sigma noise; 0 = the clip itself, 1 = only noise) and
    denoised again, towards ``label``."""
    return _from_init(model, init, noise, strength, 0, label, s)


def inpaint(
    model: Denoiser,
    init: Tensor,
    noise: Tensor,
    keep: int,
    strength: float,
    label: int | None,
    s: Settings,
) -> Tensor:
    """New tails for one clip ``init`` [C, N], one per noise [n, C, N]: its first ``keep``
    samples are held to the clip at every step (the noised clip at that step's level: the
    "replacement" method), so the regenerated rest is shaped around them, and are pasted back
    exactly at the end. ``strength`` < 1 starts from the noised clip, so the new tail stays
    near the old one. :func:`join_head` then crossfades the head into the tail."""
    return _from_init(model, init, noise, strength, keep, label, s)


def interpolate(
    model: Denoiser, a: Tensor, b: Tensor, frames: int, label: int | None, s: Settings
) -> Tensor:
    """``frames`` clips from ``a`` to ``b`` (both [C, N]): DDIM inversion of both ends to
    noise, slerp of the two noises, and DDIM back (the exact reverse of the inversion, so the
    first and last frames reconstruct the inputs)."""
    if frames < 2:
        raise ValueError(f"interpolation needs at least 2 frames, got {frames}")
    ts = schedule(s.steps, device=s.device, name=model.schedule, rho=s.rho)
    ends = torch.stack([a, b])

    def invert(x: Tensor, labels: Tensor | None) -> Tensor:
        return ddim_invert(_v(model, labels, s), x, ts, s.refine, s.progress)

    za, zb = _batched(invert, ends, label, s, "invert")
    weights = torch.linspace(0, 1, frames).tolist()
    latents = torch.cat([slerp(za[None], zb[None], w) for w in weights])

    def back(x: Tensor, labels: Tensor | None) -> Tensor:
        return solve(_v(model, labels, s), x, ts, "ddim", progress=s.progress)

    return _batched(back, latents, label, s)


def join_head(x: np.ndarray, clips: np.ndarray, keep: int, fade_n: int) -> np.ndarray:
    """Inpainting's output from the input ``x`` [C, N] and the sampled ``clips`` [n, C, N]:
    the input's first ``keep`` samples exactly, then a ``fade_n``-sample half-cosine crossfade
    from the input into the new tail (the sampler fits the tail to the head, but not to the
    sample: this takes out the click), then the new tail. A tail that would pass full scale
    is turned down, its gain gliding from 1 over the crossfade, so the head stays exact."""
    out = clips.astype(np.float32, copy=True)
    n = min(fade_n, x.shape[-1] - keep)
    ramp = np.ones(x.shape[-1] - keep, dtype=np.float32)
    if n > 0:
        ramp[:n] = fade(n, rising=True)
        seg = slice(keep, keep + n)
        out[..., seg] = x[..., seg] * (1 - ramp[:n]) + out[..., seg] * ramp[:n]
    out[..., :keep] = x[..., :keep]
    for clip in out:
        over = float(np.abs(clip[:, keep:]).max(initial=0.0))
        if over > 1:
            clip[:, keep:] *= 1 - (1 - 1 / over) * ramp
    return out


# ----------------------------------------------------------------------------- shared


def _from_init(
    model: Denoiser,
    init: Tensor,
    noise: Tensor,
    strength: float,
    keep: int,
    label: int | None,
    s: Settings,
) -> Tensor:
    """Variations (``keep`` 0) and inpainting: noise ``init`` to ``strength``, then solve,
    holding its first ``keep`` samples."""
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    n = len(noise)
    if strength == 0:
        return init.expand(n, -1, -1).clone()
    ts = schedule(s.steps, strength, s.device, model.schedule, s.rho)
    a0, s0 = math.cos(strength * math.pi / 2), math.sin(strength * math.pi / 2)
    clip = init.to(s.device)

    def fn(eps: Tensor, labels: Tensor | None) -> Tensor:
        x = clip * a0 + eps * s0
        project = None
        if keep > 0:

            def project(x: Tensor, i: int) -> Tensor:
                t = float(ts[i + 1]) * math.pi / 2
                x = x.clone()
                x[..., :keep] = clip[..., :keep] * math.cos(t) + eps[..., :keep] * math.sin(t)
                return x

        out = solve(_v(model, labels, s), x, ts, s.sampler, project, s.progress)
        if keep > 0:
            out[..., :keep] = clip[..., :keep]
        return out

    return _batched(fn, noise, label, s)


def _v(model: Denoiser, labels: Tensor | None, s: Settings, lengths: Tensor | None = None) -> VFn:
    """What every mode integrates: the guided v, averaged over offsets of the model's patch
    grid at low noise (a fold model's patches; Dance Diffusion has none). With lengths, the
    steps at noise levels up to ``s.length_below`` are told them times ``s.length_stretch``:
    there, where the input already shows the tail, a network told the true length fades a
    noisy tail out at about half of it (BENCHMARKS.md, "The length at the lowest noise")."""
    patch = model.config.fold if isinstance(model.config, FoldConfig) else 1
    v = guided_v(model, labels, s.guidance, lengths)
    if lengths is not None and s.length_stretch != 1 and s.length_below > 0:
        longer = guided_v(model, labels, s.guidance, lengths * s.length_stretch)
        v = below_level(v, longer, s.length_below)
    return grid_averaged(v, patch, s.grid_shifts, s.grid_below)


def _batched(
    fn: Callable[..., Tensor],
    inputs: Tensor,
    label: int | None,
    s: Settings,
    desc: str = "sample",
    lengths: Tensor | None = None,
) -> Tensor:
    """``fn(batch, labels)`` over ``inputs`` in batches of ``s.batch_size``, on the device,
    with a bar over the clips (the sampler's own bar counts the steps of a batch); with
    ``lengths`` [n], ``fn(batch, labels, the batch's lengths)``."""
    from tqdm import tqdm

    out = []
    with tqdm(total=len(inputs), desc=desc, unit="clip", disable=not s.progress) as bar:
        for i in range(0, len(inputs), s.batch_size):
            x = inputs[i : i + s.batch_size].to(s.device)
            more = () if lengths is None else (lengths[i : i + len(x)].to(s.device),)
            with _autocast(s):
                out.append(fn(x, _labels(label, len(x), s.device), *more).float().cpu())
            bar.update(len(x))
    return torch.cat(out)


def _autocast(s: Settings) -> contextlib.AbstractContextManager:
    if s.precision == "bf16":
        return torch.autocast(s.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _labels(label: int | None, n: int, device: torch.device) -> Tensor | None:
    return None if label is None else torch.full((n,), label, device=device, dtype=torch.long)
