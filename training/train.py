"""Train the class-conditional denoiser on data/augmented/: ``python -m training.train``.

The DVC ``train`` stage runs this. Every knob is in params.yaml: ``train`` (steps, batch,
learning rate, devices...), ``model`` (the architecture preset), ``audio`` (the clip format)
and ``label.classes`` (the class list). It fine-tunes ``train.init_checkpoint`` (an original
Dance Diffusion ``.ckpt`` or one of this project's checkpoints) or starts from scratch.

Writes
  models/checkpoints/last.pt  every ``train.checkpoint_every`` steps and at the end: everything
                              a resumed run needs (weights, EMA, optimizer, step, RNG states)
  models/model.pt             at the end: the weights and their EMA (sampling uses the EMA)
  dvclive/                    metrics.json (latest values), plots/metrics/train/*.tsv (loss,
                              learning rate, samples/s per step), plots/images/demo/<step>.png
                              (spectrograms) and demo/<step>/<class>.wav (DDIM demo clips)

A run that was killed resumes from last.pt at its step with the same optimizer, EMA and random
state, so it ends with the weights an uninterrupted run would have had. Resuming needs the same
data, code and settings except the ones that only say how long and how often (steps,
checkpoint_every, demo_*); otherwise training starts afresh and says why.

Lightning Fabric does devices, DDP, precision, gradient-sync skipping and rank-0 work; the loop
itself is plain PyTorch.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import training.checkpoints
import training.data
import training.diffusion
import training.model
from core.cli import show_progress
from pipeline.atomic import replacing
from pipeline.audio_io import write_atomic
from pipeline.config import ConfigError, load_params, section
from training.checkpoints import load_checkpoint, load_model, save_checkpoint
from training.data import MANIFEST, Clips, DataError, ShardSampler, load_clips
from training.diffusion import ddim_sample, make_ema, training_loss
from training.model import build_model

MODEL_PATH = Path("models/model.pt")
LAST_PATH = Path("models/checkpoints/last.pt")
LIVE_DIR = Path("dvclive")
DEMO_DIR = LIVE_DIR / "demo"  # WAVs; spectrograms go through DVCLive to plots/images/demo/
# Settings that only say how long or how often: a run may resume with other values.
SCHEDULE_KEYS = ("steps", "checkpoint_every", "demo_every", "demo_steps", "load_workers")


class TrainingStopped(RuntimeError):
    """Training cannot go on (a NaN loss); the message says what is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """The ``train:`` section of params.yaml, checked once so the loop can trust it."""

    init_checkpoint: str
    steps: int
    batch_size: int
    grad_accum: int
    lr: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    ema_decay: float
    label_dropout: float
    seed: int
    devices: int
    accelerator: str
    precision: str
    checkpoint_every: int
    demo_every: int
    demo_steps: int
    load_workers: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainConfig:
        train = section(params, "train")
        values: dict[str, Any] = {}
        for name, kind in cls.__annotations__.items():
            if name not in train:
                raise ConfigError(f"params.yaml has no train.{name}")
            raw = train[name]
            try:
                if kind == "int":
                    if isinstance(raw, bool) or float(raw) != int(raw):
                        raise ValueError
                    values[name] = int(raw)
                elif kind == "float":
                    values[name] = float(raw)
                else:
                    values[name] = "" if raw is None else str(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"train.{name} must be a {kind}, got {raw!r}") from None
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "grad_accum",
            "devices",
            "checkpoint_every",
            "demo_steps",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "demo_every", "load_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must not be negative")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"train.lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("train.weight_decay and train.grad_clip must not be negative")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.label_dropout <= 1:
            raise ConfigError(f"train.label_dropout must be in [0, 1], got {self.label_dropout}")
        if self.accelerator not in ("auto", "cpu", "cuda", "gpu"):
            raise ConfigError(f"train.accelerator must be auto, cpu or cuda: {self.accelerator!r}")
        if self.init_checkpoint and not Path(self.init_checkpoint).expanduser().is_file():
            raise ConfigError(f"train.init_checkpoint {self.init_checkpoint} is not a file")


# ----------------------------------------------------------------------------- set-up


def _uses_cuda(cfg: TrainConfig) -> bool:
    return cfg.accelerator in ("cuda", "gpu") or (
        cfg.accelerator == "auto" and torch.cuda.is_available()
    )


def resolve_precision(cfg: TrainConfig) -> str:
    """``auto``: bf16 autocast on a GPU that has it (fp16 without it), full fp32 on the CPU."""
    if cfg.precision != "auto":
        return cfg.precision
    if not _uses_cuda(cfg):
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def make_fabric(cfg: TrainConfig) -> Any:
    from lightning.fabric import Fabric

    # Fabric's all_gather (used once per checkpoint) goes through an API torch now deprecates.
    warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather")

    return Fabric(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy="ddp" if cfg.devices > 1 else "auto",
        precision=resolve_precision(cfg),  # type: ignore[arg-type]
    )


def _code_hash() -> str:
    """The training code's bytes: a checkpoint from other code does not resume (DVC re-runs
    the stage when this code changes, and its outputs must come from the new code)."""
    h = hashlib.sha256()
    for mod in (training.checkpoints, training.data, training.diffusion, training.model):
        h.update(Path(mod.__file__ or "").read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def run_identity(
    cfg: TrainConfig, model: Any, clips: Clips, world_size: int, precision: str
) -> dict[str, Any]:
    """What a checkpoint must share with this run to be resumed (see SCHEDULE_KEYS)."""
    init = Path(cfg.init_checkpoint).expanduser() if cfg.init_checkpoint else None
    settings = {k: v for k, v in asdict(cfg).items() if k not in SCHEDULE_KEYS}
    return {
        "train": settings,
        "init_checkpoint_size": init.stat().st_size if init else 0,
        "preset": model.preset,
        "class_names": model.class_names,
        "sample_rate": model.sample_rate,
        "length": model.length,
        "data_channels": model.data_channels,
        "data": clips.fingerprint,
        "world_size": world_size,
        "precision": precision,
        "code": _code_hash(),
    }


def init_from_checkpoint(model: Any, path: str) -> str:
    """Copy a checkpoint's U-Net (and its classes' conditioning, if they match) into model.

    The conditioning of a checkpoint without these classes stays zero-initialised, so the
    model starts out exactly as the pretrained network. Returns what was loaded, for the log.
    """
    try:
        src = load_model(Path(path).expanduser())
    except ValueError as exc:
        raise ConfigError(f"train.init_checkpoint {path}: {exc}") from None
    arch = ("io_channels", "depth", "channels", "n_attn_layers", "kernel_size")
    mine = {k: model.preset[k] for k in arch}
    theirs = {k: src.preset[k] for k in arch}
    if mine != theirs:
        diff = ", ".join(f"{k} {theirs[k]} vs {mine[k]}" for k in arch if mine[k] != theirs[k])
        raise ConfigError(
            f"train.init_checkpoint {path} is a {src.preset.get('name', 'custom')} network "
            f"and model.preset is {model.preset['name']} ({diff}): choose the matching preset"
        )
    model.unet.load_state_dict(src.unet.state_dict())
    what = f"U-Net from {path}"
    if (
        src.cond is not None
        and model.cond is not None
        and src.class_names == model.class_names
        and src.preset.get("class_dim") == model.preset.get("class_dim")
    ):
        model.cond.load_state_dict(src.cond.state_dict())
        what += " with its class conditioning"
    elif model.cond is not None:
        what += "; class conditioning starts at zero (no effect until trained)"
    return what


def find_resume(identity: dict[str, Any], steps: int, fresh: bool) -> tuple[dict | None, str]:
    """The checkpoint to resume from, or None, and a line saying why.

    A checkpoint that exists but is not resumed belongs to another run: the caller keeps it
    (:func:`set_aside`) before this run writes its own.
    """
    if not LAST_PATH.is_file():
        return None, "starting afresh (no checkpoint)"
    if fresh:
        return None, "starting afresh (--fresh)"
    try:
        ckpt = load_checkpoint(LAST_PATH)
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint must not stop a new run
        return None, f"starting afresh ({LAST_PATH} unreadable: {exc})"
    changed = _differences(ckpt.get("identity") or {}, identity)
    if changed:
        return None, f"starting afresh ({LAST_PATH} is from other {', '.join(changed)})"
    if int(ckpt["step"]) > steps:
        return None, f"starting afresh ({LAST_PATH} is at step {ckpt['step']} > train.steps)"
    return ckpt, f"resuming from {LAST_PATH} at step {ckpt['step']}"


def set_aside(path: Path) -> Path:
    """Rename another run's checkpoint to ``<name>-<date>-<time>.pt`` beside it, so starting
    afresh never destroys a run (a day of GPU fine-tuning, say); returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
    n = 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.stem}-{stamp}-{n}{path.suffix}")
    os.replace(path, dest)
    return dest


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Names of the settings that differ, e.g. ``train.lr``, ``data``, ``preset``."""
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if k == "train" and isinstance(a, dict) and isinstance(b, dict):
            keys += _differences(a, b, "train.")
        elif a != b:
            keys.append(prefix + k)
    return keys


# ----------------------------------------------------------------------------- DVCLive


def trim_history(live_dir: Path, step: int) -> None:
    """Rewind DVCLive's files to ``step``, the checkpoint a killed run resumes from.

    The killed run may have logged steps after its checkpoint (the resumed run logs them
    again: no step may appear twice), left a half-written last row, or been killed while
    DVCLive rewrote metrics.json (which it does in place). So the curves keep their complete
    rows up to ``step``, and metrics.json is rebuilt from their last rows.
    """
    metrics_dir = live_dir / "plots" / "metrics"
    summary: dict[str, Any] = {}
    for tsv in sorted(metrics_dir.rglob("*.tsv")):
        with tsv.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
        if not rows or "step" not in rows[0]:
            continue
        header, col = rows[0], rows[0].index("step")
        kept = [header] + [
            r
            for r in rows[1:]
            if len(r) == len(header) and r[col].isdigit() and int(r[col]) <= step
        ]
        with replacing(tsv) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, delimiter="\t", lineterminator=os.linesep).writerows(kept)
        if len(kept) > 1:
            *parents, name = tsv.relative_to(metrics_dir).with_suffix("").parts
            node = summary
            for part in parents:
                node = node.setdefault(part, {})
            node[name] = float(kept[-1][header.index(name)])
    with replacing(live_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps({**summary, "step": step}, indent=4) + "\n", encoding="utf-8")
    for folder in (live_dir / "plots" / "images" / "demo", DEMO_DIR):
        if folder.is_dir():
            for item in folder.iterdir():
                if item.stem.isdigit() and int(item.stem) > step:
                    shutil.rmtree(item) if item.is_dir() else item.unlink()


def open_live(resume_step: int | None) -> Any:
    """DVCLive writing into dvclive/; dvc.yaml declares its outputs, so it must not write one."""
    from dvclive import Live

    if resume_step is None:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)  # Live(resume=False) clears the rest
    else:
        trim_history(LIVE_DIR, resume_step)
    from scmrepo.exceptions import SCMError

    try:
        return Live(
            str(LIVE_DIR), dvcyaml=False, resume=resume_step is not None, save_dvc_exp=False
        )
    except SCMError as exc:  # DVCLive asks git for HEAD, which a repo has after a commit
        raise ConfigError(
            f"DVCLive needs a git commit to log against ({exc}): commit once"
        ) from None


def demo_figure(clips: np.ndarray, sr: int, names: list[str], step: int) -> Any:
    """Log-mel spectrograms of the demo clips, one panel per class."""
    import matplotlib

    from pipeline.report import log_mel_image

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.4), squeeze=False)
    for ax, clip, name in zip(axes[0], clips, names, strict=True):
        log_mel_image(ax, clip.mean(axis=0), sr)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"demo clips at step {step} (EMA weights, log-mel)", fontsize=10)
    fig.tight_layout()
    return fig


def write_demos(live: Any, fabric: Any, ema_model: Any, cfg: TrainConfig, step: int) -> None:
    """One DDIM clip per class from the EMA weights, from the same noise at every demo step,
    so the clips show how training moves: WAVs plus one spectrogram image."""
    names = ema_model.class_names or ["unconditional"]
    gen = torch.Generator().manual_seed(cfg.seed)
    noise = torch.randn(len(names), ema_model.data_channels, ema_model.length, generator=gen)
    labels = torch.arange(len(names)) if ema_model.class_names else None
    with fabric.autocast():
        clips = ddim_sample(
            ema_model,
            noise.to(fabric.device),
            cfg.demo_steps,
            labels=None if labels is None else labels.to(fabric.device),
        )
    clips = clips.float().clamp(-1, 1).cpu().numpy()
    sr = ema_model.sample_rate
    for clip, name in zip(clips, names, strict=True):
        write_atomic(DEMO_DIR / f"{step:06d}" / f"{name}.wav", clip, sr, "PCM_16")
    live.log_image(f"demo/{step:06d}.png", demo_figure(clips, sr, names, step))


# ----------------------------------------------------------------------------- the loop


def _checkpoint_state(model: Any, ema: Any, identity: dict[str, Any], step: int) -> dict:
    """What models/model.pt and the resume checkpoint both hold."""
    return {
        "preset": model.preset,
        "class_names": model.class_names,
        "sample_rate": model.sample_rate,
        "length": model.length,
        "data_channels": model.data_channels,
        "model": model.state_dict(),
        "ema": ema.module.state_dict(),
        "step": step,
        "config": identity["train"],
        "identity": identity,
    }


def train_step(
    fabric: Any,
    model: Any,
    optimizer: Any,
    ema: Any,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    cfg: TrainConfig,
    gen: torch.Generator,
) -> float:
    """One optimizer step over the micro-batches (gradients sync across ranks on the last one).

    Returns the loss averaged over micro-batches and ranks. A non-finite loss leaves the
    weights, the optimizer and the EMA untouched: the caller decides what to do.
    """
    losses = []
    for i, (x, y) in enumerate(batches):
        with fabric.no_backward_sync(model, enabled=i < len(batches) - 1):
            loss = training_loss(model, x, y, cfg.label_dropout, gen)
            fabric.backward(loss / len(batches))
        losses.append(loss.detach())
    loss_value = float(fabric.all_reduce(torch.stack(losses).mean(), reduce_op="mean"))
    if math.isfinite(loss_value):
        if cfg.grad_clip > 0:
            fabric.clip_gradients(model, optimizer, max_norm=cfg.grad_clip)
        optimizer.step()
        ema.update_parameters(model.module)
    optimizer.zero_grad(set_to_none=True)
    return loss_value


def train(fabric: Any, params: dict[str, Any], cfg: TrainConfig, args: argparse.Namespace) -> int:
    rank, world = fabric.global_rank, fabric.world_size
    main = fabric.is_global_zero
    say = fabric.print
    audio = section(params, "audio")
    class_names = [str(c) for c in section(params, "label").get("classes") or []]
    if not class_names:
        raise ConfigError("label.classes is empty")

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build_model(params, class_names)
    clips = load_clips(
        Path(args.manifest),
        class_names=class_names,
        sample_rate=model.sample_rate,
        length=model.length,
        channels=int(audio.get("channels", 1)),
        rank=rank,
        world_size=world,
        workers=cfg.load_workers,
        progress=main and show_progress(not args.no_progress),
    )
    precision = resolve_precision(cfg)
    identity = run_identity(cfg, model, clips, world, precision)
    ckpt, why = find_resume(identity, cfg.steps, args.fresh)
    fabric.barrier()  # every rank has read the checkpoint before rank 0 moves it
    if ckpt is None and LAST_PATH.is_file() and main:
        why += f"; the old checkpoint is kept as {set_aside(LAST_PATH)}"
    if cfg.init_checkpoint and ckpt is None:
        say(f"train: {init_from_checkpoint(model, cfg.init_checkpoint)}")

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay
    )
    warmup = max(1, cfg.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    raw = model
    model, optimizer = fabric.setup(model, optimizer)
    ema = make_ema(raw, cfg.ema_decay)
    gen = torch.Generator(device=fabric.device).manual_seed(cfg.seed * 1000 + rank)
    step = 0
    if ckpt is not None:
        raw.load_state_dict(ckpt["model"])
        ema.module.load_state_dict(ckpt["ema"])
        ema.n_averaged.fill_(int(ckpt["ema_updates"]))
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["rng"][rank].cpu())
        step = int(ckpt["step"])
        del ckpt
    sampler = ShardSampler(len(clips), cfg.batch_size, seed=cfg.seed * 1000 + rank)
    audio_t, labels_t = clips.audio, clips.labels  # a batch is copied to the device per step

    per_step = cfg.batch_size * cfg.grad_accum * world
    n_params = sum(p.numel() for p in raw.parameters())
    counts = ", ".join(f"{k} {v}" for k, v in clips.class_counts().items())
    say(
        f"train: {clips.total} clips ({counts}{' on rank 0' if world > 1 else ''}), "
        f"{raw.preset['name']} model "
        f"({n_params / 1e6:.2f} M parameters), {world} process(es) on {fabric.device.type}, "
        f"{precision}, {per_step} clips per step; {why}"
    )

    live = open_live(step if step > 0 else None) if main else None
    last_saved = step

    def save(done: int) -> None:
        nonlocal last_saved
        states = fabric.all_gather(gen.get_state())  # every rank's noise stream
        states = states if world > 1 else states[None]
        if main:
            state = _checkpoint_state(raw, ema, identity, done)
            state.update(
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                ema_updates=int(ema.n_averaged),
                rng=[s.cpu() for s in states],
            )
            save_checkpoint(LAST_PATH, **state)
        last_saved = done

    bar = None
    if main:
        from tqdm import tqdm

        bar = tqdm(
            total=cfg.steps,
            initial=step,
            desc="train",
            unit="step",
            disable=not show_progress(not args.no_progress),
        )
    t_start, start_step, loss_value = time.perf_counter(), step, float("nan")
    model.train()
    while step < cfg.steps:
        t0 = time.perf_counter()
        batches = []
        for micro in range(cfg.grad_accum):
            idx = sampler.indices(step * cfg.grad_accum + micro)
            batches.append((fabric.to_device(audio_t[idx]), fabric.to_device(labels_t[idx])))
        lr = optimizer.param_groups[0]["lr"]
        loss_value = train_step(fabric, model, optimizer, ema, batches, cfg, gen)
        if not math.isfinite(loss_value):
            raise TrainingStopped(
                f"loss is {loss_value} at step {step + 1}: stopped. The last good checkpoint "
                f"is {LAST_PATH} (step {last_saved}); try a lower train.lr"
            )
        scheduler.step()
        step += 1
        rate = per_step / (time.perf_counter() - t0)

        if live is not None:
            live.step = step
            live.log_metric("train/loss", loss_value)
            live.log_metric("train/lr", lr)
            live.log_metric("train/samples_per_s", rate)
        checkpoint = step % cfg.checkpoint_every == 0 or step == cfg.steps
        if checkpoint:
            save(step)
        if live is not None:
            if (cfg.demo_every and step % cfg.demo_every == 0) or step == cfg.steps:
                write_demos(live, fabric, ema.module, cfg, step)
            # next_step() re-reads every curve (for DVC Studio), which grows with the run:
            # once per checkpoint; metrics.json alone after the other steps.
            if checkpoint:
                live.next_step()
            else:
                live.make_summary()
        if bar is not None:
            bar.set_postfix(loss=f"{loss_value:.4f}", samples_s=f"{rate:.1f}", refresh=False)
            bar.update(1)

    if bar is not None:
        bar.close()
    if main:
        final = _checkpoint_state(raw, ema, identity, step)
        save_checkpoint(MODEL_PATH, **final)
        live.end()
    fabric.barrier()
    took = time.perf_counter() - t_start
    done = step - start_step
    ran = (
        f"{done} steps ({start_step} -> {step}) in {took:.1f} s, "
        f"{done * per_step / max(took, 1e-9):.1f} clips/s, last loss {loss_value:.4f}"
        if done
        else f"no steps left (the checkpoint is at step {step})"
    )
    say(f"train: {ran}; wrote {MODEL_PATH}" + (f" and {LAST_PATH}" if done else ""))
    return 0


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = (__doc__ or "").split("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="\n\n".join(doc[:4]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings come from params.yaml (train, model, audio, label.classes); "
        "run the whole pipeline with `dvc repro`.",
    )
    parser.add_argument("--params", default="params.yaml", help="parameters file (params.yaml)")
    parser.add_argument(
        "--manifest", default=str(MANIFEST), help=f"training set manifest ({MANIFEST})"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="ignore models/checkpoints/last.pt and start over"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        cfg = TrainConfig.from_params(params)
    except ConfigError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    fabric = make_fabric(cfg)
    fabric.launch()  # with devices > 1, starts the other ranks (this command again)
    code = 1  # also when an unexpected error propagates
    try:
        code = train(fabric, params, cfg, args)
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        code = 2
    except TrainingStopped as exc:
        print(f"train: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"train: interrupted; the same command resumes from {LAST_PATH}", file=sys.stderr)
        code = 130
    finally:
        if code:
            stop_other_ranks(fabric)
    return code


def stop_other_ranks(fabric: Any) -> None:
    """End the ranks this process started: after a failure here (a rank-0 task such as
    logging failed) they would wait in their next collective until it times out."""
    launcher = fabric.strategy.launcher
    for proc in getattr(launcher, "procs", None) or []:
        if proc.poll() is None:
            proc.kill()


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
