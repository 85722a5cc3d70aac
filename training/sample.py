"""New one-shots from a trained model: ``python -m training.sample --class kick``.

Four ways to use the model, all deterministic for a given --seed on a given device:

  generate     --class kick --n 8         new sounds of a class (none: unconditional)
  variations   --init x.wav --strength s  noise your sound to level s (0 = unchanged,
                                          1 = only noise left) and denoise it again, --n times;
                                          with --class, towards that class
  inpainting   --init x.wav --keep-ms 30  keep the first 30 ms exactly, regenerate the rest to
                                          fit them (with --strength < 1, stay near the old tail)
  interpolate  --interpolate a.wav b.wav --frames 8
                                          DDIM-invert both sounds to noise, interpolate the
                                          noises spherically, sample every frame back

Files are WAVs at the model's sample rate and exactly its clip length, named
``<class>_<seed>_<i>.wav`` (variations ``<stem>_var_<seed>_<i>``, inpainting
``<stem>_tail_<seed>_<i>``, interpolation ``<a>_to_<b>_<ii>``), with ``samples.csv`` beside them
(one row per file: mode, class, seed, steps, sampler, guidance, strength, checkpoint and its
sha256...). New sounds are peak-normalized to ``sample.peak_db``; variations, inpainting and
interpolation keep the level of the sounds they start from.

The checkpoint is the ``train`` stage's ``models/model.pt`` or an original Dance Diffusion
``.ckpt`` (unconditional, so no --class; it does not record its sample rate or clip length:
give --sample-rate / --length unless they are 48000 and 65536). Defaults come from params.yaml
``sample``. ``--every-class`` is the DVC ``sample`` stage: ``sample.n_per_class`` sounds of each
class into ``outputs/samples/<class>/``, plus ``outputs/samples/spectrograms.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from core.cli import plural, show_progress
from core.params import Audio, Sample, check_value
from pipeline.atomic import replacing, sha256_file
from pipeline.audio_io import AUDIO_EXTENSIONS, Limits, read, write_atomic
from pipeline.config import ConfigError, load_params, section
from pipeline.errors import Reject
from pipeline.normalize import db_to_amp, mix_channels, peak, resample
from pipeline.pad import fix_length
from pipeline.trim import fade
from training.checkpoints import load_model
from training.diffusion import SAMPLERS, ddim_invert, guided_v, schedule, slerp, solve
from training.model import Denoiser

CHECKPOINT = Path("models/model.pt")
OUT_ROOT = Path("outputs")
SAMPLES_DIR = OUT_ROOT / "samples"  # the `sample` stage's folder; --class X goes to X/ in it
CSV_NAME = "samples.csv"
GRID_NAME = "spectrograms.png"
UNCONDITIONAL = "unconditional"
SUBTYPES = {16: "PCM_16", 24: "PCM_24"}
CSV_COLUMNS = [
    "path", "mode", "class", "index", "seed", "steps", "sampler", "guidance", "strength",
    "keep_ms", "weight", "init", "checkpoint", "checkpoint_sha256", "sample_rate",
    "num_samples", "channels", "bit_depth", "device",
]  # fmt: skip
MAX_SECONDS = 60.0  # --length of an original checkpoint: at most this long at its rate


class UsageError(ValueError):
    """Bad input from the user: one line on stderr, exit 2."""


class WriteError(OSError):
    """A file could not be written (a full disk, a folder that went away): one line, exit 1."""


@dataclass(frozen=True)
class Settings:
    """How to sample: params.yaml ``sample`` with the command line's overrides applied."""

    steps: int
    sampler: str
    guidance: float
    seed: int
    batch_size: int
    device: torch.device
    precision: str  # "bf16" or "fp32"
    refine: int  # fixed-point passes per DDIM inversion step
    progress: bool


# ----------------------------------------------------------------------------- the maths


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def make_noise(n: int, shape: Sequence[int], seed: int) -> Tensor:
    """``n`` Gaussian noises drawn in order on the CPU from ``seed``: the same seed gives the
    same noises on every device and batch size, and the first k of ``--n 8`` start from the
    noises of ``--n k`` (the files then agree to about 1e-6: kernels depend on batch shape)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=gen)


def _autocast(s: Settings) -> contextlib.AbstractContextManager:
    if s.precision == "bf16":
        return torch.autocast(s.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _labels(label: int | None, n: int, device: torch.device) -> Tensor | None:
    return None if label is None else torch.full((n,), label, device=device, dtype=torch.long)


def _run(
    fn: Callable[[Tensor, Tensor | None], Tensor],
    inputs: Tensor,
    label: int | None,
    s: Settings,
    desc: str = "sample",
) -> Tensor:
    """``fn(batch, labels)`` over ``inputs`` in batches of ``s.batch_size``, on the device,
    with a bar over the clips (the sampler's own bar counts the steps of a batch)."""
    from tqdm import tqdm

    out = []
    with tqdm(total=len(inputs), desc=desc, unit="clip", disable=not s.progress) as bar:
        for part in _batches(len(inputs), s.batch_size):
            x = inputs[part].to(s.device)
            with _autocast(s):
                out.append(fn(x, _labels(label, len(x), s.device)).float().cpu())
            bar.update(len(x))
    return torch.cat(out)


def generate(model: Denoiser, noise: Tensor, label: int | None, s: Settings) -> Tensor:
    """Clips [n, C, N] from pure noise [n, C, N] (DDIM or DPM-Solver++(2M), guided)."""
    ts = schedule(s.steps, device=s.device)

    def fn(x: Tensor, labels: Tensor | None) -> Tensor:
        v = guided_v(model, labels, s.guidance)
        return solve(v, x, ts, s.sampler, progress=s.progress)

    return _run(fn, noise, label, s)


def from_init(
    model: Denoiser,
    init: Tensor,
    noise: Tensor,
    strength: float,
    keep: int,
    label: int | None,
    s: Settings,
) -> Tensor:
    """Variations / inpainting of one clip ``init`` [C, N], one per noise [n, C, N].

    The clip is noised to level ``strength`` (x = alpha init + sigma noise) and the sampler
    runs from there. With ``keep`` > 0, the first ``keep`` samples are held to the clip at
    every step (the noised clip at that step's level: the "replacement" method), so the
    regenerated rest is shaped around them, and are pasted back exactly at the end.
    """
    if not 0 <= strength <= 1:
        raise UsageError(f"--strength must be in [0, 1], got {strength}")
    n = len(noise)
    if strength == 0:
        return init.expand(n, -1, -1).clone()
    ts = schedule(s.steps, t_start=strength, device=s.device)
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

        out = solve(guided_v(model, labels, s.guidance), x, ts, s.sampler, project, s.progress)
        if keep > 0:
            out[..., :keep] = clip[..., :keep]
        return out

    return _run(fn, noise, label, s)


def interpolate(
    model: Denoiser, a: Tensor, b: Tensor, frames: int, label: int | None, s: Settings
) -> Tensor:
    """``frames`` clips from ``a`` to ``b`` (both [C, N]): DDIM inversion of both ends to
    noise, slerp of the two noises, and DDIM back (the exact reverse of the inversion, so the
    first and last frames reconstruct the inputs)."""
    if frames < 2:
        raise UsageError(f"--frames must be at least 2, got {frames}")
    ts = schedule(s.steps, device=s.device)
    ends = torch.stack([a, b])

    def invert(x: Tensor, labels: Tensor | None) -> Tensor:
        return ddim_invert(guided_v(model, labels, s.guidance), x, ts, s.refine, s.progress)

    za, zb = _run(invert, ends, label, s, "invert")
    weights = torch.linspace(0, 1, frames).tolist()
    latents = torch.cat([slerp(za[None], zb[None], w) for w in weights])

    def back(x: Tensor, labels: Tensor | None) -> Tensor:
        return solve(guided_v(model, labels, s.guidance), x, ts, "ddim", progress=s.progress)

    return _run(back, latents, label, s)


# ----------------------------------------------------------------------------- files


def load_init(path: Path, model: Denoiser, params: dict[str, Any]) -> np.ndarray:
    """A user's sound as the model's clip format [C, N]: channels mixed, resampled (soxr, as
    ``normalize`` does) and padded or cut (with ``pad``'s fade) to the clip length."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    limits = Limits.from_params(section(params, "collect"))
    # collect's rate window guards the data set; the model's own output always passes.
    sr_model = model.sample_rate
    limits = replace(
        limits,
        min_sample_rate=min(limits.min_sample_rate, sr_model),
        max_sample_rate=max(limits.max_sample_rate, sr_model),
    )
    try:
        x, sr = read(path, limits)
    except Reject as rej:
        raise UsageError(f"{path}: cannot use it ({rej})") from None
    quality = str(section(params, "normalize").get("resample_quality", "VHQ"))
    x = resample(mix_channels(x, model.data_channels), sr, model.sample_rate, quality)
    fade_ms = float(section(params, "pad").get("fade_out_ms", 20.0))
    x = fix_length(x, model.length, model.sample_rate, fade_ms)
    silence = db_to_amp(float(section(params, "normalize").get("silence_db", -60.0)))
    if peak(x) < silence:
        raise UsageError(f"{path}: silent (peak below {20 * math.log10(silence):.0f} dBFS)")
    return x


def write_clips(
    clips: np.ndarray,
    names: list[str],
    out_dir: Path,
    sample_rate: int,
    bit_depth: int,
    rows: list[dict[str, Any]],
) -> list[Path]:
    """The WAVs (atomic writes) and their rows merged into ``out_dir/samples.csv``: a row for
    a file written again is replaced, rows of other files already listed stay."""
    paths = []
    for clip, name in zip(clips, names, strict=True):
        path = out_dir / f"{name}.wav"
        try:
            write_atomic(path, np.clip(clip, -1.0, 1.0), sample_rate, SUBTYPES[bit_depth])
        except (OSError, sf.SoundFileError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc).split(": ", 1)[-1].strip()
            raise WriteError(f"cannot write {path}: {reason}") from None
        paths.append(path)
    table = out_dir / CSV_NAME
    old: dict[str, dict[str, str]] = {}
    if table.is_file():
        with table.open(newline="", encoding="utf-8") as f:
            old = {r["path"]: r for r in csv.DictReader(f) if r.get("path")}
    for row in rows:
        old[row["path"]] = {k: str(row.get(k, "")) for k in CSV_COLUMNS}
    with replacing(table) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(old[k] for k in sorted(old))
    return paths


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


def peak_to(clips: np.ndarray, target: float | np.ndarray) -> np.ndarray:
    """Scale each clip [n, C, N] so its peak is ``target`` (silent clips stay silent)."""
    peaks = np.abs(clips).reshape(len(clips), -1).max(axis=1)
    scale = np.where(peaks > 0, np.asarray(target) / np.maximum(peaks, 1e-12), 1.0)
    return (clips * scale[:, None, None]).astype(np.float32)


# ----------------------------------------------------------------------------- command line


def classes_line(argv: list[str]) -> str:
    """For --help: the classes of the checkpoint the command would use (only read then)."""
    path = CHECKPOINT
    for i, arg in enumerate(argv):
        if arg == "--checkpoint" and i + 1 < len(argv):
            path = Path(argv[i + 1])
        elif arg.startswith("--checkpoint="):
            path = Path(arg.split("=", 1)[1])
    if not path.is_file():
        return f"{path} does not exist yet: `dvc repro train` makes it."
    try:
        model = load_model(path)
    except ValueError as exc:
        return f"{path} is not usable: {exc}"
    if not model.class_names:
        return f"{path} is unconditional: sample it without --class."
    return f"--class takes a class of {path}: {', '.join(model.class_names)}."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    helping = any(a in ("-h", "--help") for a in argv)
    parser = argparse.ArgumentParser(
        prog="python -m training.sample",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=classes_line(argv) if helping else None,
    )
    add = parser.add_argument
    add("--class", dest="cls", metavar="NAME", help="class to sample (see the error for the list)")
    add("--n", type=int, help="how many sounds or variations (sample.n)")
    add("--steps", type=int, help="sampler steps (sample.steps)")
    add("--sampler", choices=SAMPLERS, help="ddim, or dpmpp-2m: DPM-Solver++(2M) (sample.sampler)")
    add("--guidance", type=float, help="classifier-free guidance scale; 1 = off (sample.guidance)")
    add("--seed", type=int, help="noise seed (sample.seed)")
    add(
        "--out",
        type=Path,
        help="output folder (default: outputs/samples/<class>/; outputs/variations/, "
        "outputs/inpaint/, outputs/interpolations/)",
    )
    add("--checkpoint", type=Path, default=CHECKPOINT, help=f"model file ({CHECKPOINT})")
    add("--device", help="auto (a GPU when there is one), cpu, cuda, cuda:1, mps (sample.device)")
    add("--batch-size", type=int, help="clips per forward pass (sample.batch_size)")
    add("--bit-depth", type=int, choices=sorted(SUBTYPES), help="WAV bits (sample.bit_depth)")
    add("--init", type=Path, metavar="WAV", help="start from this sound: variations / inpainting")
    add("--strength", type=float, help="noise level for --init, 0..1 (sample.strength)")
    add("--keep-ms", type=float, help="with --init: keep this many ms of its start exactly")
    add("--interpolate", type=Path, nargs=2, metavar=("A", "B"), help="interpolate A to B")
    add("--frames", type=int, help="frames of --interpolate, ends included (sample.frames)")
    add(
        "--every-class",
        action="store_true",
        help="sample.n_per_class sounds of each class into <out>/<class>/ and a spectrogram grid "
        "(the DVC sample stage)",
    )
    add("--sample-rate", type=int, help="sample rate of an original Dance Diffusion checkpoint")
    add("--length", type=int, help="clip length (samples) of an original DD checkpoint")
    add("--params", type=Path, default=Path("params.yaml"), help="parameters file (params.yaml)")
    add("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU here")
    return device


def flag(key: str, value: Any, name: str) -> Any:
    """A flag that overrides ``sample.<key>``, checked as params.yaml's value is (UsageError)."""
    try:
        return check_value(Sample, key, value, name)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def settings(args: argparse.Namespace, cfg: dict[str, Any], mode: str) -> Settings:
    """params.yaml's ``sample`` (already checked) with the flags that override it, each
    checked against the same range: a NaN, an infinity or a value out of range is refused
    here, before anything is loaded or written."""

    def pick(arg: Any, key: str, name: str) -> Any:
        return cfg[key] if arg is None else flag(key, arg, name)

    sampler = str(pick(args.sampler, "sampler", "--sampler"))
    if mode == "interpolate":
        if args.sampler not in (None, "ddim"):
            raise UsageError("--interpolate samples with ddim, the exact reverse of its inversion")
        sampler = "ddim"
    device = pick_device(str(pick(args.device, "device", "--device")))
    precision = str(cfg["precision"])
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if device.type == "cuda":  # same seed, same GPU -> same files
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return Settings(
        steps=int(pick(args.steps, "steps", "--steps")),
        sampler=sampler,
        guidance=float(pick(args.guidance, "guidance", "--guidance")),
        seed=int(pick(args.seed, "seed", "--seed")),
        batch_size=int(pick(args.batch_size, "batch_size", "--batch-size")),
        device=device,
        precision=precision,
        refine=int(cfg["inversion_refine"]),
        progress=show_progress(not args.no_progress),
    )


def clip_format(args: argparse.Namespace, model: Denoiser) -> None:
    """Apply --sample-rate / --length, which only an original Dance Diffusion checkpoint
    needs (it records neither); this project's checkpoints know theirs."""
    if not model.from_dance_diffusion:
        for name, given, own in (
            ("--sample-rate", args.sample_rate, model.sample_rate),
            ("--length", args.length, model.length),
        ):
            if given is not None and given != own:
                raise UsageError(
                    f"{name} {given}: {args.checkpoint} was trained on {model.length} samples "
                    f"at {model.sample_rate} Hz and samples only that; {name} is for original "
                    "Dance Diffusion checkpoints"
                )
        return
    if args.sample_rate is not None:
        try:
            model.sample_rate = check_value(Audio, "sample_rate", args.sample_rate, "--sample-rate")
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    if args.length is not None:
        lo, hi = 1024, round(MAX_SECONDS * model.sample_rate)
        if not lo <= args.length <= hi:
            raise UsageError(
                f"--length must be in [{lo}, {hi}] samples (up to {MAX_SECONDS:g} s at "
                f"{model.sample_rate} Hz), got {args.length}"
            )
        model.length = args.length


def out_folder(path: Path) -> Path:
    """Make sure the files can go into ``path`` (a folder, made if missing) before any work,
    so a bad --out is one line, not a traceback after the sampling."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is a file: give a folder")
    if not path.exists() and path.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS:
        raise UsageError(
            f"--out names a folder, and {path} looks like a file name (files are named by "
            f"class, seed and number): give a folder, e.g. --out {path.with_suffix('')}/"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make the folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into {path}: permission denied")
    return path


def class_label(model: Denoiser, name: str | None) -> int | None:
    """The label index of ``name``; None (the null class) when no class is asked for."""
    if name is None:
        return None
    if not model.class_names:
        raise UsageError(
            f"--class {name}: this model is unconditional (no classes); leave out --class"
        )
    if name not in model.class_names:
        raise UsageError(f"unknown class {name!r}; known classes: {', '.join(model.class_names)}")
    return model.class_names.index(name)


def _mode(args: argparse.Namespace) -> str:
    if args.interpolate is not None:
        if args.init is not None or args.every_class:
            raise UsageError("--interpolate goes alone: not with --init or --every-class")
        if args.n is not None:
            raise UsageError("--interpolate takes --frames, not --n")
        return "interpolate"
    if args.init is not None:
        if args.every_class:
            raise UsageError("--init goes alone: not with --every-class")
        return "inpaint" if args.keep_ms is not None else "variation"
    if args.strength is not None or args.keep_ms is not None:
        raise UsageError("--strength and --keep-ms need --init WAV")
    if args.every_class and args.cls is not None:
        raise UsageError("--every-class samples every class: leave out --class")
    return "generate"


def run(args: argparse.Namespace) -> str:
    """Do what the command line asks; returns the summary line."""
    mode = _mode(args)
    if args.frames is not None and mode != "interpolate":
        raise UsageError("--frames belongs to --interpolate")
    params = load_params(args.params)
    cfg = section(params, "sample")
    s = settings(args, cfg, mode)
    bit_depth = int(args.bit_depth or cfg["bit_depth"])
    if args.keep_ms is not None and not (math.isfinite(args.keep_ms) and args.keep_ms > 0):
        raise UsageError(f"--keep-ms must be a positive number of milliseconds, got {args.keep_ms}")
    if not args.checkpoint.is_file():
        hint = " (run `dvc repro train` first)" if args.checkpoint == CHECKPOINT else ""
        raise UsageError(f"{args.checkpoint}: no such checkpoint{hint}")
    try:
        model = load_model(args.checkpoint)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    clip_format(args, model)
    model = model.to(s.device)
    label = class_label(model, args.cls)
    guided_somewhere = args.every_class or label is not None
    if model.class_names and not guided_somewhere and args.guidance not in (None, 1.0):
        print("sample: note: --guidance needs --class; sampling unconditionally", file=sys.stderr)
    started = time.perf_counter()
    ckpt_hash = sha256_file(args.checkpoint)
    sr, shape = model.sample_rate, (model.data_channels, model.length)
    base = {
        "steps": s.steps,
        "sampler": s.sampler,
        "guidance": s.guidance if label is not None else 1.0,
        "checkpoint": str(args.checkpoint),
        "checkpoint_sha256": ckpt_hash,
        "sample_rate": sr,
        "num_samples": model.length,
        "channels": model.data_channels,
        "bit_depth": bit_depth,
        "device": str(s.device),
    }
    target = db_to_amp(float(cfg["peak_db"]))
    written: list[Path] = []

    if mode == "generate":
        n_key = "n_per_class" if args.every_class else "n"
        n = int(cfg[n_key] if args.n is None else flag(n_key, args.n, "--n"))
        todo = (
            [(c, i) for i, c in enumerate(model.class_names)] or [(UNCONDITIONAL, None)]
            if args.every_class
            else [(args.cls or UNCONDITIONAL, label)]
        )
        root = args.out or SAMPLES_DIR
        folders = {
            name: out_folder(root / name if args.every_class or args.out is None else root)
            for name, _ in todo
        }
        noise = make_noise(n, shape, s.seed)
        grid: dict[str, list[Path]] = {}
        for name, lab in todo:
            clips = peak_to(generate(model, noise, lab, s).numpy(), target)
            names = [f"{name}_{s.seed}_{i}" for i in range(n)]
            rows = [
                {**base, "path": f"{nm}.wav", "mode": "generate", "class": name, "index": i,
                 "seed": s.seed, "guidance": s.guidance if lab is not None else 1.0}
                for i, nm in enumerate(names)
            ]  # fmt: skip
            grid[name] = write_clips(clips, names, folders[name], sr, bit_depth, rows)
            written += grid[name]
        if args.every_class:
            from pipeline.report import spectrogram_grid

            spectrogram_grid(grid, root / GRID_NAME, f"generated, seed {s.seed} (log-mel)")
        what = (
            f"{plural(n, 'sound')} per class"
            if args.every_class
            else f"{n} {args.cls or UNCONDITIONAL}"
        )
        where = root if args.every_class else written[0].parent
    elif mode in ("variation", "inpaint"):
        n = int(cfg["n"] if args.n is None else flag("n", args.n, "--n"))
        strength = args.strength
        if strength is None:
            strength = 1.0 if mode == "inpaint" else float(cfg["strength"])
        strength = float(flag("strength", strength, "--strength"))
        keep = 0
        if mode == "inpaint":
            keep = round(float(args.keep_ms) * sr / 1000)
            if not 0 < keep < model.length:
                raise UsageError(
                    f"--keep-ms must be more than 0 and less than the clip "
                    f"({1000 * model.length / sr:.0f} ms), got {args.keep_ms}"
                )
        x = load_init(args.init, model, params)
        out_dir = out_folder(
            args.out or OUT_ROOT / ("inpaint" if mode == "inpaint" else "variations")
        )
        gain = target / peak(x)
        init = torch.from_numpy(x * gain)
        out = from_init(model, init, make_noise(n, shape, s.seed), strength, keep, label, s)
        clips = out.numpy() / gain
        if strength == 0:
            clips[:] = x  # exactly the input, not x * g / g
        elif keep:
            fade_n = round(float(cfg["inpaint_fade_ms"]) * sr / 1000)
            clips = join_head(x, clips, keep, fade_n)  # the input's own samples, not x * g / g
        else:
            clips = _no_clipping(clips)
        tag = "tail" if mode == "inpaint" else (f"to-{args.cls}" if args.cls else "var")
        stem = args.init.stem
        names = [f"{stem}_{tag}_{s.seed}_{i}" for i in range(n)]
        rows = [
            {**base, "path": f"{nm}.wav", "mode": mode, "class": args.cls or "", "index": i,
             "seed": s.seed, "strength": strength, "keep_ms": args.keep_ms or "",
             "init": str(args.init)}
            for i, nm in enumerate(names)
        ]  # fmt: skip
        written = write_clips(clips, names, out_dir, sr, bit_depth, rows)
        towards = f", towards {args.cls}" if args.cls else ""
        if mode == "inpaint":
            what = f"{plural(n, 'new tail')} for {args.init.name} after {args.keep_ms:g} ms"
        else:
            what = f"{plural(n, 'variation')} of {args.init.name}"
        what += f" (strength {strength:g}{towards})"
        where = out_dir
    else:
        given = args.frames
        frames = int(cfg["frames"] if given is None else flag("frames", given, "--frames"))
        a_path, b_path = args.interpolate
        xa, xb = load_init(a_path, model, params), load_init(b_path, model, params)
        out_dir = out_folder(args.out or OUT_ROOT / "interpolations")
        ga, gb = target / peak(xa), target / peak(xb)
        clips = interpolate(
            model, torch.from_numpy(xa * ga), torch.from_numpy(xb * gb), frames, label, s
        ).numpy()
        w = np.linspace(0, 1, frames)
        gains = np.exp((1 - w) * math.log(ga) + w * math.log(gb))  # the level glides too
        clips = clips / gains[:, None, None]
        names = [f"{a_path.stem}_to_{b_path.stem}_{i:02d}" for i in range(frames)]
        rows = [
            {**base, "path": f"{nm}.wav", "mode": "interpolate", "class": args.cls or "",
             "index": i, "seed": "", "init": f"{a_path} {b_path}", "weight": f"{w[i]:.4f}"}
            for i, nm in enumerate(names)
        ]  # fmt: skip
        written = write_clips(_no_clipping(clips), names, out_dir, sr, bit_depth, rows)
        what, where = f"{plural(frames, 'frame')} from {a_path.name} to {b_path.name}", out_dir
    took = time.perf_counter() - started
    seconds = len(written) * model.length / sr
    return (
        f"sample: wrote {plural(len(written), 'file')} ({what}; {sr} Hz, {model.length} "
        f"samples, {bit_depth}-bit) to {where}/ in {took:.1f} s on {s.device} "
        f"({s.sampler}, {plural(s.steps, 'step')}, real-time factor "
        f"{seconds / max(took, 1e-9):.2f}); {CSV_NAME} beside them"
    )


def _no_clipping(clips: np.ndarray) -> np.ndarray:
    """Clips that would peak above full scale are scaled down to it, whole (never clipped)."""
    peaks = np.abs(clips).reshape(len(clips), -1).max(axis=1)
    return np.where((peaks > 1)[:, None, None], peak_to(clips, 1.0), clips).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(run(args))
    except (UsageError, ConfigError) as exc:
        print(f"sample: error: {exc}", file=sys.stderr)
        return 2
    except torch.OutOfMemoryError:
        print("sample: error: out of device memory; try a smaller --batch-size", file=sys.stderr)
        return 1
    except OSError as exc:  # WriteError, or the csv or grid beside the files
        reason = exc.strerror if exc.filename else str(exc)
        where = f"cannot write {exc.filename}: " if exc.filename else ""
        print(
            f"sample: error: {where}{reason}; files written before it are complete", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        print("sample: interrupted; files written so far are complete", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
