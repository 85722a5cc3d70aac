"""What bench/sample.py measures with: the model (trained or random weights), the sampling
settings, forward calls and FLOPs counted, runs timed with device syncs, distances to a
reference run, and what machine ran them."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from core.params import Params, Sample
from core.spectrograms import log_mel
from training.checkpoints import load_model
from training.config import build_model
from training.model import Denoiser
from training.sample import CHECKPOINT
from training.sample_inputs import UsageError, settings
from training.sampling import Settings, generate

ROOT = Path(__file__).resolve().parents[1]
NONE = "none"  # --checkpoint none: random weights; --class none: the null class, no guidance


class EvalCounter:
    """Counts network calls and the clips they saw (a forward pre-hook on the eager model while
    attached): the model evaluations a sampler really made, guidance's doubled batch included.
    Never attached under torch.compile, which would guard on the counts and recompile."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.calls = self.rows = 0

    def _hook(self, _module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self.calls += 1
        self.rows += int(inputs[0].shape[0])

    @contextlib.contextmanager
    def attached(self) -> Iterator[EvalCounter]:
        self.calls = self.rows = 0
        handle = self.model.register_forward_pre_hook(self._hook)
        try:
            yield self
        finally:
            handle.remove()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_runs(
    model: nn.Module, noise: Tensor, label: int | None, s: Settings, repeats: int
) -> tuple[Tensor, list[float]]:
    """``repeats`` timed runs of the CLI's ``generate``: the last run's clips and every time."""
    times, out = [], noise
    for _ in range(repeats):
        sync(s.device)
        start = time.perf_counter()
        out = generate(model, noise, label, s)
        sync(s.device)
        times.append(time.perf_counter() - start)
    return out, times


@torch.no_grad()
def row_flops(model: nn.Module, device: torch.device) -> float:
    """FLOPs of one network call on one clip (torch's flop counter on a real forward): what a
    run costs is this times its network rows, whatever the precision or compilation."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, model.data_channels, model.length, device=device)
    t = torch.full((1,), 0.5, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x, t)
    return float(counter.get_total_flops())


def _log_mel_db(clips: np.ndarray, sr: int, refs: np.ndarray) -> np.ndarray:
    """Log-mel (the project's spectrogram, ``core.spectrograms.log_mel``) in dB of each mono
    clip, 0 dB at the peak of the same clip's reference, floored at -80 dB."""
    import librosa

    out = []
    for y, r in zip(clips, refs, strict=True):
        ref_peak = float(log_mel(r, sr).max())
        db = librosa.power_to_db(log_mel(y, sr), ref=max(ref_peak, 1e-20), amin=1e-20, top_db=None)
        out.append(np.clip(db, -80.0, None))
    return np.stack(out)


def distances(x: Tensor, ref: Tensor, sr: int) -> dict[str, float | None]:
    """Relative L2 over all clips, and the mean |dB| difference of their log-mel spectrograms
    (None where librosa is not installed, as on a bare GPU machine)."""
    rel = float((x - ref).norm() / ref.norm().clamp_min(1e-12))
    try:
        import librosa  # noqa: F401
    except ImportError:
        return {"rel_l2": rel, "log_mel_db": None}
    xm, rm = x.mean(dim=1).numpy(), ref.mean(dim=1).numpy()  # mono views [n, N]
    mel_db = float(np.abs(_log_mel_db(xm, sr, rm) - _log_mel_db(rm, sr, rm)).mean())
    return {"rel_l2": rel, "log_mel_db": mel_db}


def machine(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "python": platform.python_version(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    return info


def bench_model(args: argparse.Namespace, params: Params) -> tuple[Denoiser, str]:
    """The model to time and a description of its weights ("trained: path" or "random")."""
    ckpt = args.checkpoint
    if ckpt is None:
        default = ROOT / CHECKPOINT
        ckpt = str(default) if args.preset is None and default.is_file() else NONE
    if ckpt != NONE:
        if args.preset is not None:
            raise UsageError("--preset is for random weights: give it with --checkpoint none")
        path = Path(ckpt)
        if not path.is_file():
            raise UsageError(f"{path}: no such checkpoint (or give --checkpoint none)")
        try:
            model = load_model(path, sample_rate=args.sample_rate)
            length = round(model.sample_rate * args.seconds)  # at the checkpoint's own rate
            if model.length != length:
                model = load_model(path, sample_rate=model.sample_rate, length=length)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return model, f"trained: {path}"
    sr = args.sample_rate or params.audio.sample_rate
    preset = args.preset or ("dance-diffusion" if args.device == "cuda" else None)
    local = replace(
        params,
        model=params.model if preset is None else replace(params.model, preset=preset),
        audio=replace(params.audio, sample_rate=sr, duration=args.seconds),
    )
    torch.manual_seed(0)
    return build_model(local, params.label.classes).eval(), "random"


def bench_settings(
    args: argparse.Namespace, cfg: Sample, sampler: str, steps: int, precision: str
) -> Settings:
    """The sampling CLI's own settings for one run (also checks the device), with cuDNN's
    benchmark mode when --cudnn-benchmark asks for it."""
    ns = argparse.Namespace(
        sampler=sampler,
        device=args.device,
        steps=steps,
        guidance=args.guidance,
        seed=args.seed,
        batch_size=args.batch_size or args.n,
        no_progress=True,
    )
    s = settings(ns, replace(cfg, precision=precision), "generate")
    if args.cudnn_benchmark and args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
    return s
