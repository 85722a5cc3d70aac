"""What ``training.sample`` takes in, checked before any work: its flags over params.yaml's
``sample`` section, the device, the class, the output folder, an original checkpoint's clip
format and the ``--init`` sounds (brought into the model's format by the pipeline's own
``conform``).

Every problem is a :class:`UsageError`: one line on stderr and exit 2, with nothing written.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.audio_io import Limits, read
from core.cli import show_progress
from core.errors import ConfigError, Reject
from core.params import AUDIO_EXTENSIONS, Audio, Params, Sample, check_value
from pipeline.audio import conform, db_to_amp, peak
from training.checkpoints import load_model
from training.lengths import describe
from training.model import Denoiser
from training.sampling import Finish, Settings

MAX_SECONDS = 60.0  # --length of an original checkpoint: at most this long at its rate


class UsageError(ValueError):
    """Bad input from the user: one line on stderr, exit 2."""


def pick_device(name: str) -> torch.device:
    """``auto``: a GPU when there is one (CUDA, else Apple's MPS), else the CPU; a named device
    must exist here (UsageError, not a traceback at the first tensor)."""
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


def settings(args: argparse.Namespace, cfg: Sample, mode: str) -> Settings:
    """params.yaml's ``sample`` (already checked) with the flags that override it, each
    checked against the same range: a NaN, an infinity or a value out of range is refused
    here, before anything is loaded or written."""

    def pick(arg: Any, key: str, name: str) -> Any:
        return getattr(cfg, key) if arg is None else flag(key, arg, name)

    sampler = str(pick(args.sampler, "sampler", "--sampler"))
    if mode == "interpolate":
        if args.sampler not in (None, "ddim"):
            raise UsageError("--interpolate samples with ddim, the exact reverse of its inversion")
        sampler = "ddim"
    device = pick_device(str(pick(args.device, "device", "--device")))
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if device.type == "cuda":  # same seed, same GPU -> same files
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return Settings(
        steps=int(pick(args.steps, "steps", "--steps")),
        rho=cfg.rho,
        sampler=sampler,
        guidance=float(pick(args.guidance, "guidance", "--guidance")),
        seed=int(pick(args.seed, "seed", "--seed")),
        batch_size=int(pick(args.batch_size, "batch_size", "--batch-size")),
        device=device,
        precision=precision,
        refine=cfg.inversion_refine,
        progress=show_progress(not args.no_progress),
        length=hit_length(getattr(args, "hit_ms", None)),
        grid_shifts=cfg.grid_shifts,
        grid_below=cfg.grid_below,
        length_stretch=cfg.length_stretch,
        length_below=cfg.length_below,
    )


def hit_length(ms: float | None) -> float | None:
    """--hit-ms as seconds, checked (None: each sound's length is drawn)."""
    if ms is None:
        return None
    if not math.isfinite(ms) or not 1 <= ms <= 4000:
        raise UsageError(f"--hit-ms must be between 1 and 4000 ms, got {ms}")
    return ms / 1000.0


def finishing(params: Params) -> Finish | None:
    """How ``sample.finish`` finishes new sounds: with the pipeline's normalize, trim and pad
    settings (None when off)."""
    if not params.sample.finish:
        return None
    return Finish(params.normalize.dc_cutoff_hz, params.trim, params.pad.fade_out_ms)


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


def load_init(path: Path, model: Denoiser, params: Params) -> np.ndarray:
    """A user's sound as the model's clip format [C, N]: channels mixed, resampled (soxr, as
    ``normalize`` does) and padded or cut (with ``pad``'s fade) to the clip length."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    # collect's rate window guards the data set; the model's own output always passes.
    limits = Limits.of(params.collect)
    limits = replace(
        limits,
        min_sample_rate=min(limits.min_sample_rate, model.sample_rate),
        max_sample_rate=max(limits.max_sample_rate, model.sample_rate),
    )
    try:
        x, sr = read(path, limits)
    except Reject as rej:
        raise UsageError(f"{path}: cannot use it ({rej})") from None
    x = conform(
        x,
        sr,
        sample_rate=model.sample_rate,
        channels=model.data_channels,
        length=model.length,
        quality=params.normalize.resample_quality,
        fade_out_ms=params.pad.fade_out_ms,
    )
    silence = db_to_amp(params.normalize.silence_db)
    if peak(x) < silence:
        raise UsageError(f"{path}: silent (peak below {20 * math.log10(silence):.0f} dBFS)")
    return x


def classes_line(argv: list[str], default: Path) -> str:
    """For --help: the classes of the checkpoint the command would use (only read then)."""
    path = default
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
    line = f"--class takes a class of {path}: {', '.join(model.class_names)}."
    if model.length_counts is not None:  # what --hit-ms may ask of each class
        pairs = zip(model.class_names, model.length_counts, strict=True)
        line += " Median hit lengths: " + ", ".join(f"{c} {describe(n)}" for c, n in pairs) + "."
    return line
