"""Resuming a run: what a checkpoint holds, which one a run may go on from, and the
pretrained weights a fresh run starts from.

A run that was killed resumes from ``models/checkpoints/last.pt`` at its step with the same
optimizer, EMA and random state, so it ends with the weights an uninterrupted run would have
had. That needs the same data, code and settings except the ones that only say how long and
how often (:data:`SCHEDULE_KEYS`): the checkpoint records them as the run's identity, and a
checkpoint of another run is set aside (renamed, never deleted) rather than resumed.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from core.errors import ConfigError
from core.params import Train
from training.checkpoints import load_checkpoint, load_model
from training.data import HasFingerprint
from training.foldnet import CLASS_KEYS, FoldConfig
from training.model import Denoiser

MODEL_PATH = Path("models/model.pt")
LAST_PATH = Path("models/checkpoints/last.pt")
# Settings that only say how long, how often or how fast: a run may resume with other values.
SCHEDULE_KEYS = (
    "steps",
    "compile",  # the same network, compiled or not
    "checkpoint_every",
    "demo_every",
    "demo_steps",
    "load_workers",
    "shards",  # where the shards lie; the data's identity is their index's content
    "eval_every",
    "eval_per_class",
    "eval_steps",
    "early_stop",
    "early_stop_patience",
)
# The training code whose bytes a run's identity holds (the modules `train` runs).
CODE = (
    "checkpoints", "data", "stream", "diffusion", "model", "foldnet", "patches", "lengths",
    "blocks", "config", "resume", "tracking", "train",
)  # fmt: skip


def _code_hash() -> str:
    """The training code's bytes: a checkpoint from other code does not resume (DVC re-runs
    the stage when this code changes, and its outputs must come from the new code)."""
    h = hashlib.sha256()
    for name in CODE:
        h.update((Path(__file__).parent / f"{name}.py").read_bytes())
    return h.hexdigest()[:16]


def run_identity(
    train: Train, model: Denoiser, clips: HasFingerprint, world_size: int, precision: str
) -> dict[str, Any]:
    """What a checkpoint must share with this run to be resumed (see SCHEDULE_KEYS)."""
    init = Path(train.init_checkpoint).expanduser() if train.init_checkpoint else None
    settings = {k: v for k, v in asdict(train).items() if k not in SCHEDULE_KEYS}
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
    changed = differences(ckpt.get("identity") or {}, identity)
    if changed:
        return None, f"starting afresh ({LAST_PATH} is from other {', '.join(changed)})"
    if int(ckpt["step"]) > steps:
        return None, f"starting afresh ({LAST_PATH} is at step {ckpt['step']} > train.steps)"
    return ckpt, f"resuming from {LAST_PATH} at step {ckpt['step']}"


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Names of the settings that differ, e.g. ``train.lr``, ``data``, ``preset``."""
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if k == "train" and isinstance(a, dict) and isinstance(b, dict):
            keys += differences(a, b, "train.")
        elif a != b:
            keys.append(prefix + k)
    return keys


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


def class_rows(new: list[str], old: list[str]) -> tuple[list[int], list[int]]:
    """The rows of a class embedding (the classes, then the null class) that a fine-tune takes
    over by name, as (this model's rows, the checkpoint's rows): a kick stays a kick when the
    class list is another's (the demo model's four classes fine-tuned on a kit of three).
    Empty when no class is shared."""
    mine = [i for i, name in enumerate(new) if name in old]
    if not mine and new != old:
        return [], []
    return [*mine, len(new)], [*(old.index(new[i]) for i in mine), len(old)]


def _with_rows(
    mine: torch.Tensor, theirs: torch.Tensor, rows: tuple[list[int], list[int]]
) -> torch.Tensor:
    """``mine`` with its rows ``rows[0]`` replaced by ``theirs``' rows ``rows[1]``."""
    out = mine.detach().clone()
    out[rows[0]] = theirs.detach()[rows[1]]
    return out


def init_from_checkpoint(model: Denoiser, path: str) -> str:
    """Copy a checkpoint's U-Net, and the conditioning of the classes it shares by name, into
    model.

    A class the checkpoint does not have starts afresh; a Dance Diffusion checkpoint that
    shares no class leaves the conditioning at zero, so the model starts out exactly as the
    pretrained network. Returns what was loaded, for the log.
    """
    try:
        src = load_model(Path(path).expanduser())
    except ValueError as exc:
        raise ConfigError(f"train.init_checkpoint {path}: {exc}") from None
    mine, theirs = model.config.arch(), src.config.arch()
    if mine != theirs:
        diff = ", ".join(f"{k} {theirs[k]} vs {mine[k]}" for k in mine if mine[k] != theirs[k])
        raise ConfigError(
            f"train.init_checkpoint {path} is a {src.config.name} network "
            f"and model.preset is {model.config.name} ({diff}): choose the matching preset"
        )
    rows = class_rows(model.class_names, src.class_names)
    carried = bool(rows[0])
    source = src.unet.state_dict()
    if isinstance(model.config, FoldConfig):
        # fold's class embedding lives inside its U-Net. The hit lengths stay this run's
        # (training counted them from its own data).
        state = {k: v for k, v in source.items() if not k.startswith(CLASS_KEYS)}
        state = {**model.unet.state_dict(), **state}
        if carried:
            state["labels.weight"] = _with_rows(
                state["labels.weight"], source["labels.weight"], rows
            )
        model.unet.load_state_dict(state)
    else:
        model.unet.load_state_dict(source)
        carried &= src.cond is not None and src.config.class_dim == model.config.class_dim
        if carried and model.cond is not None:
            embed = _with_rows(model.cond.embed.weight, src.cond.embed.weight, rows)
            model.cond.load_state_dict({**src.cond.state_dict(), "embed.weight": embed})
    what = f"U-Net from {path}"
    if not model.class_names:  # unconditional: nothing class-shaped to carry
        return what
    if src.class_names == model.class_names and carried:
        return what + " with its class conditioning"
    if carried:
        shared = [model.class_names[i] for i in rows[0][:-1]]
        fresh = [c for c in model.class_names if c not in shared]
        what += f" with its conditioning of {', '.join(shared)}"
        return what + (f"; new classes start afresh: {', '.join(fresh)}" if fresh else "")
    if model.cond is not None:
        return what + "; class conditioning starts at zero (no effect until trained)"
    return what + "; its class embedding starts afresh (no class in common)"


# ----------------------------------------------------------------------------- checkpoint state


def checkpoint_state(model: Denoiser, ema: Any, identity: dict[str, Any], step: int) -> dict:
    """What models/model.pt and the resume checkpoint both hold (the preset as a plain dict,
    so the file loads with ``weights_only``)."""
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


def resume_state(
    model: Denoiser,
    ema: Any,
    identity: dict[str, Any],
    step: int,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng: list[torch.Tensor],
    checks: list[dict[str, float]] | None = None,
) -> dict:
    """``last.pt``: the checkpoint state plus everything a resumed run needs to go on exactly
    (optimizer, schedule, EMA count, every rank's noise stream, and the quality checks so far,
    which early stopping decides from)."""
    return {
        **checkpoint_state(model, ema, identity, step),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "ema_updates": int(ema.n_averaged),
        "rng": [s.cpu() for s in rng],
        "checks": [dict(c) for c in checks or []],
    }


def restore(
    ckpt: dict[str, Any],
    model: Denoiser,
    ema: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    gen: torch.Generator,
    rank: int,
) -> int:
    """Put a :func:`resume_state` back into the run's objects; returns its step."""
    model.load_state_dict(ckpt["model"])
    ema.module.load_state_dict(ckpt["ema"])
    ema.n_averaged.fill_(int(ckpt["ema_updates"]))
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    gen.set_state(ckpt["rng"][rank].cpu())
    return int(ckpt["step"])
