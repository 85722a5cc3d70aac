"""Diffusion maths of Dance Diffusion: v-objective, cosine schedule, EMA and a DDIM sampler.

A clean clip x0 and Gaussian noise mix as ``x_t = alpha x0 + sigma noise`` with
``alpha, sigma = cos(pi t / 2), sin(pi t / 2)``; the network predicts
``v = alpha noise - sigma x0``, from which both x0 and the noise follow. As in Dance Diffusion
(sample-generator ``train_uncond.py``), training draws t uniformly and warps it through the
"crash" schedule, and the sampler steps through the same warped grid from t = 1 towards 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from core.params import SAMPLERS


def alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    """Scales of the clean signal and of the noise at noise level t in [0, 1]."""
    return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)


def t_from_alpha_sigma(alpha: Tensor, sigma: Tensor) -> Tensor:
    return torch.atan2(sigma, alpha) * 2 / math.pi


def crash_schedule(t: Tensor) -> Tensor:
    """DD's warp of t (from CRASH): sigma = sin(pi t / 2) ** 2, spending more time at low noise."""
    sigma = torch.sin(t * math.pi / 2) ** 2
    alpha = (1 - sigma**2) ** 0.5
    return t_from_alpha_sigma(alpha, sigma)


def warp(u: Tensor, name: str = "crash") -> Tensor:
    """Noise levels t from uniform u under a schedule: ``crash`` (DD's, most of the time at low
    noise) or ``cosine`` (t = u: the plain cosine schedule, high noise levels, where a sound's
    class and envelope are decided, get an equal share)."""
    if name == "crash":
        return crash_schedule(u)
    if name == "cosine":
        return u
    raise ValueError(f"unknown noise schedule {name!r}")


def unwarp(t: Tensor, name: str = "crash") -> Tensor:
    """The inverse of :func:`warp`."""
    return crash_inverse(t) if name == "crash" else warp(t, name)


def sample_t(
    batch: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    name: str = "crash",
    low_share: float = 0.0,
) -> Tensor:
    """Training noise levels: uniform, then the schedule ``name`` (DD trains with crash).

    ``low_share`` of them (drawn at random) are cubed: under the cosine schedule (the fold
    preset's) 1.6 % lie below t = 0.016, the last few sampler steps, where the network decides
    how a tail ends; a quarter share cubed puts 7.5 % there. Drawn on ``generator``'s device
    (so a seeded generator reproduces them), then moved; 0 draws nothing more (the same levels).
    """
    where = generator.device if generator is not None else device
    t = warp(torch.rand(batch, generator=generator, device=where), name)
    if low_share > 0:
        low = torch.rand(batch, generator=generator, device=where) < low_share
        t = torch.where(low, t**3, t)
    return t.to(device) if device is not None else t


def v_target(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    alpha, sigma = (s.view(-1, *([1] * (x0.ndim - 1))) for s in alpha_sigma(t))
    return alpha * noise - sigma * x0


def _unwrap(model: nn.Module) -> nn.Module:
    """The Denoiser inside DDP / Fabric / AveragedModel wrappers (each keeps it as ``.module``)."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def training_loss(
    model: nn.Module,
    x0: Tensor,
    labels: Tensor | None = None,
    label_dropout: float = 0.0,
    generator: torch.Generator | None = None,
    snr_cap: float = 0.0,
    lengths: Tensor | None = None,
    low_share: float = 0.0,
) -> Tensor:
    """Mean squared error of the v-prediction on one batch of clean clips x0 [B, C, N].

    ``snr_cap`` > 0 weights each clip's error by ``min(1, snr_cap / (SNR + 1))`` (SNR =
    alpha^2 / sigma^2): an x0 error counts SNR + 1 times in the v error, so without a cap the
    lowest noise levels dominate, and a model that predicts x0 (whose v divides by sigma)
    would see weights up to 1e6. With the cap an x0 error counts at most ``snr_cap`` times
    (the idea of min-SNR weighting, Hang et al. 2023); 0 = the plain v error, as DD trains.

    ``labels`` are replaced by the model's null class at rate ``label_dropout``, so the same
    network also learns the unconditional score that classifier-free guidance needs.
    ``lengths`` [B] (seconds, for a model conditioned on length) are dropped with the label,
    and on their own at the same rate, so the class alone is a condition it knows too. Noise,
    noise levels and the dropout masks come from ``generator`` (give each DDP rank its own
    seed); ``low_share``: see ``sample_t``.
    """
    b, device = x0.shape[0], x0.device
    where = generator.device if generator is not None else device
    t = sample_t(b, generator, device, getattr(_unwrap(model), "schedule", "crash"), low_share)
    noise = torch.randn(x0.shape, generator=generator, device=where, dtype=x0.dtype).to(device)
    if labels is not None:
        null = _unwrap(model).null_label
        if null is None:
            raise ValueError("labels given to a model without classes")
        if label_dropout > 0:
            drop = torch.rand(b, generator=generator, device=where).to(device) < label_dropout
            labels = torch.where(drop, torch.full_like(labels, null), labels)
            if lengths is not None:
                alone = torch.rand(b, generator=generator, device=where).to(device)
                drop = drop | (alone < label_dropout)
                lengths = torch.where(drop, torch.full_like(lengths, math.nan), lengths)
    alpha, sigma = (s[:, None, None] for s in alpha_sigma(t))
    v = model(x0 * alpha + noise * sigma, t, labels, *_said(lengths))
    if snr_cap <= 0:
        return F.mse_loss(v.float(), v_target(x0, noise, t).float())
    err = (v.float() - v_target(x0, noise, t).float()).pow(2).flatten(1).mean(1)
    weight = (snr_cap * sigma.flatten().float() ** 2).clamp(max=1.0)  # 1 / (SNR + 1) = sigma^2
    return (err * weight).mean()


def _said(lengths: Tensor | None) -> tuple[Tensor, ...]:
    """The lengths argument, only when there is one (models without it take three)."""
    return () if lengths is None else (lengths,)


def ema_avg_fn(decay: float, warmup: float = 10.0) -> Callable[..., None]:
    """``multi_avg_fn`` for AveragedModel: EMA whose decay ramps up as (1 + n) / (warmup + n).

    A fixed 0.999 would leave the average near the random init for the first thousand steps,
    which is most of a short CPU run; the ramp tracks the weights early and settles at decay.
    """

    def update(ema_params: list[Tensor], params: list[Tensor], n: Tensor) -> None:
        d = min(decay, (1 + float(n)) / (warmup + float(n)))
        torch._foreach_lerp_(ema_params, params, 1 - d)

    return update


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``model`` (``.module`` is the averaged Denoiser); call
    ``ema.update_parameters(model)`` after each optimizer step. Buffers are copied, not averaged
    (they are constant resampling kernels). The copy is in eval mode: the demos and quality
    checks that sample from it during training must not drop activations."""
    ema = AveragedModel(_unwrap(model), multi_avg_fn=ema_avg_fn(decay), use_buffers=False)
    return ema.eval()


# ----------------------------------------------------------------------------- sampling

VFn = Callable[[Tensor, Tensor], Tensor]
"""The sampler's view of the network: (x [B, C, N], t [B]) -> v, guidance already applied."""
Project = Callable[[Tensor, int], Tensor]


def guided_v(
    model: nn.Module,
    labels: Tensor | None = None,
    guidance: float = 1.0,
    lengths: Tensor | None = None,
) -> VFn:
    """The v-prediction to integrate, in float32: conditional on ``labels`` (None = the null
    class) and ``lengths`` (seconds, for a model conditioned on length; None = not said),
    mixed with the fully unconditional prediction as ``v_null + guidance * (v_cond - v_null)``
    when ``guidance != 1`` (classifier-free guidance; one batched call for both)."""
    guided = labels is not None and guidance != 1.0
    if guided:
        null = _unwrap(model).null_label
        if null is None:
            raise ValueError("guidance needs a model with classes")
        both = torch.cat([labels, torch.full_like(labels, null)])
        lens = None if lengths is None else torch.cat([lengths, torch.full_like(lengths, math.nan)])

    def v(x: Tensor, t: Tensor) -> Tensor:
        if guided:
            out = model(x.repeat(2, 1, 1), t.repeat(2), both, *_said(lens))
            v_cond, v_null = out.float().chunk(2)
            return v_null + guidance * (v_cond - v_null)
        return model(x, t, labels, *_said(lengths)).float()

    return v


def grid_averaged(v_fn: VFn, patch: int, shifts: int, below: float) -> VFn:
    """``v_fn`` made blind to a patch grid: at noise levels up to ``below``, the mean of its
    outputs for ``shifts`` copies of the input delayed by ``k * patch / shifts`` samples
    (padded at both ends, each output moved back and cropped to the input). A network that
    cuts the clip into ``patch``-sample patches writes every patch from the same weights, and
    what it gets wrong repeats at the patch rate: a tone at ``sample_rate / patch`` and its
    multiples in every sound. Moved by a share of a patch, that error moves against the sound
    while the sound does not, so ``shifts`` evenly spaced copies cancel its first
    ``shifts - 1`` harmonics. ``patch`` 1 or ``shifts`` 1: ``v_fn`` itself."""
    if patch <= 1 or shifts <= 1:
        return v_fn
    offsets = sorted({round(k * patch / shifts) for k in range(shifts)})

    def averaged(x: Tensor, t: Tensor) -> Tensor:
        n = x.shape[-1]
        total = torch.zeros_like(x, dtype=torch.float32)
        for k in offsets:
            total += v_fn(F.pad(x, (k, patch - k)), t)[..., k : k + n].float()
        return total / len(offsets)

    return below_level(v_fn, averaged, below)


def below_level(v_fn: VFn, v_low: VFn, below: float) -> VFn:
    """``v_low`` at the steps whose noise level is at most ``below``, ``v_fn`` at the others
    (two views of one network, e.g. told different lengths)."""

    def v(x: Tensor, t: Tensor) -> Tensor:
        return v_low(x, t) if float(t.max()) <= below else v_fn(x, t)

    return v


def crash_inverse(t: Tensor) -> Tensor:
    """The u with ``crash_schedule(u) == t`` (sin(pi t / 2) = sin(pi u / 2) ** 2)."""
    return torch.asin(torch.sin(t * math.pi / 2).clamp(0, 1).sqrt()) * 2 / math.pi


def schedule(
    steps: int,
    t_start: float = 1.0,
    device: torch.device | str | None = None,
    name: str = "crash",
    rho: float = 1.0,
) -> Tensor:
    """``steps + 1`` noise levels from ``t_start`` down to 0: ``u_start * v ** rho`` for v
    evenly spaced from 1 to 0, then the warp of schedule ``name`` (so a partial run from
    ``t_start`` < 1 still takes every step it is given). ``rho`` 1 spaces the steps evenly;
    above 1 it gives more of them to low noise, as EDM's rho does for its sigmas."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not 0 < t_start <= 1:
        raise ValueError(f"the start noise level must be in (0, 1], got {t_start}")
    if not rho > 0:
        raise ValueError(f"the step spacing rho must be positive, got {rho}")
    u = 1.0 if t_start == 1 else float(unwarp(torch.tensor(t_start, dtype=torch.float64), name))
    grid = warp(u * torch.linspace(1, 0, steps + 1, dtype=torch.float64) ** rho, name)
    grid[0], grid[-1] = t_start, 0.0
    return grid.float().to(device)


def _log_snr(t: float) -> float:
    """lambda = log(alpha / sigma), finite at t = 1 (alpha floored) for the step-size ratios."""
    return math.log(max(math.cos(t * math.pi / 2), 1e-6) / math.sin(t * math.pi / 2))


@torch.no_grad()
def solve(
    v_fn: VFn,
    x: Tensor,
    ts: Tensor,
    sampler: str = "ddim",
    project: Project | None = None,
    progress: bool = False,
) -> Tensor:
    """Integrate the probability-flow ODE from ``x`` at noise level ``ts[0]`` down ``ts``
    (ending at 0); returns the clean estimate.

    ``ddim``: deterministic DDIM (eta 0), first order, as DD samples. ``dpmpp-2m``:
    DPM-Solver++(2M) (Lu et al. 2022), which corrects each step's x0 estimate with the
    previous one, ``D = x0 + (x0 - x0_prev) / (2 r)`` with r the ratio of consecutive steps in
    log-SNR, and then takes the same DDIM step with D: second order, so it needs far fewer
    steps for the same result; its first and last steps are first order. ``project(x, i)``,
    if given, may rewrite the state after it reaches ``ts[i + 1]`` (inpainting).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
    b, levels = x.shape[0], [float(t) for t in ts]
    x = x.float()
    prev_pred, prev_h = None, None
    for i in tqdm(range(len(levels) - 1), desc="sampling", disable=not progress, leave=False):
        t, t_next = levels[i], levels[i + 1]
        a, s = math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)
        v = v_fn(x, ts[i].expand(b))
        pred = x * a - v * s
        d = pred
        last = t_next == 0
        if sampler == "dpmpp-2m" and not last:
            h = _log_snr(t_next) - _log_snr(t)
            if prev_pred is not None:
                d = pred + (pred - prev_pred) * (h / (2 * prev_h))
            prev_pred, prev_h = pred, h
        if last:
            x = d
        else:
            eps = x * s + v * a  # the noise estimate; with D the step keeps x on the same ray
            if d is not pred:
                eps = eps + (pred - d) * (a / s)
            a2, s2 = math.cos(t_next * math.pi / 2), math.sin(t_next * math.pi / 2)
            x = d * a2 + eps * s2
        if project is not None:
            x = project(x, i)
    return x


@torch.no_grad()
def ddim_invert(
    v_fn: VFn, x0: Tensor, ts: Tensor, refine: int = 2, progress: bool = False
) -> Tensor:
    """Deterministic DDIM inversion: the noise that DDIM on ``ts`` (from ts[0] down to 0) turns
    back into ``x0``.

    A DDIM step from level a to a lower level b is a rotation of (x, v):
    ``x_b = cos(d) x_a - sin(d) v(x_a, a)`` with ``d = pi (a - b) / 2``. The usual inversion
    evaluates v at the known x_b instead of the unknown x_a; ``refine`` fixed-point passes
    ``x_a = (x_b + sin(d) v(x_a, a)) / cos(d)`` then make each step the exact inverse of the
    sampler's, so sampling the result reconstructs ``x0`` closely.
    """
    up = [float(t) for t in ts.flip(0)]
    b = x0.shape[0]
    x = x0.float()
    for i in tqdm(range(len(up) - 1), desc="inverting", disable=not progress, leave=False):
        lo, hi = up[i], up[i + 1]
        d = (hi - lo) * math.pi / 2
        c, s = math.cos(d), math.sin(d)
        t_lo = torch.full((b,), lo, device=x.device)
        t_hi = torch.full((b,), hi, device=x.device)
        x_hi = x * c + v_fn(x, t_lo) * s
        for _ in range(refine):
            x_hi = (x + v_fn(x_hi, t_hi) * s) / c
        x = x_hi
    return x


def slerp(a: Tensor, b: Tensor, w: float) -> Tensor:
    """Spherical interpolation between two noises [B, ...] (per item), w in [0, 1]: keeps the
    norm a Gaussian sample has all along the path, where a straight mix would shrink it."""
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-12)
    omega = torch.acos(cos.clamp(-1, 1))
    so = torch.sin(omega)
    straight = so < 1e-6
    so = torch.where(straight, torch.ones_like(so), so)
    wa = torch.where(straight, 1 - w, torch.sin((1 - w) * omega) / so)
    wb = torch.where(straight, torch.full_like(so, w), torch.sin(w * omega) / so)
    out = wa[:, None] * fa + wb[:, None] * fb
    return out.to(a.dtype).view_as(a)


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    noise: Tensor,
    steps: int,
    labels: Tensor | None = None,
    guidance: float = 1.0,
    progress: bool = False,
) -> Tensor:
    """Deterministic DDIM (eta 0) from pure noise to x0, on DD's schedule (``sample()``);
    guidance as :func:`guided_v`."""
    ts = schedule(steps, device=noise.device, name=getattr(_unwrap(model), "schedule", "crash"))
    return solve(guided_v(model, labels, guidance), noise, ts, "ddim", progress=progress)
