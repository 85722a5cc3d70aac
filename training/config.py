"""The trainer's settings: params.yaml's typed sections (``core.params``) and what follows
from them: the precision and the Fabric a run uses, the model ``model.preset`` describes and
the training data ``train.data`` names.

``core.params`` checks every value of params.yaml; what it cannot know (that
``train.init_checkpoint`` names a file on this machine, that a preset is a network this code
can build) is checked here, before any work.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from core.errors import ConfigError
from core.params import Model, Params, Train
from training.data import Batches, MemoryBatches, batch_lengths, load_clips
from training.lengths import Measure, histogram
from training.model import Denoiser, ModelConfig, config_from_preset
from training.stream import ShardIndex, ShardStream

# What a launcher sets on every machine of a multi-node run: torchrun's, SLURM's, or the
# variables Lightning reads when the same command is started by hand on each machine.
LAUNCHED_BY = (("TORCHELASTIC_RUN_ID",), ("SLURM_NTASKS",), ("MASTER_ADDR", "NODE_RANK"))


def check(train: Train) -> None:
    """Refuse an ``init_checkpoint`` that is not a file, and several machines without a
    launcher, which would wait forever for the others (ConfigError, one line)."""
    if train.init_checkpoint and not Path(train.init_checkpoint).expanduser().is_file():
        raise ConfigError(f"train.init_checkpoint {train.init_checkpoint} is not a file")
    if train.num_nodes > 1 and not any(all(v in os.environ for v in vs) for vs in LAUNCHED_BY):
        raise ConfigError(
            f"train.num_nodes is {train.num_nodes} but no launcher started this process: run "
            'it with torchrun or srun on every machine (README, "Several machines")'
        )


def _uses_cuda(train: Train) -> bool:
    """Whether the run will be on a CUDA GPU (``auto``: when there is one)."""
    return train.accelerator in ("cuda", "gpu") or (
        train.accelerator == "auto" and torch.cuda.is_available()
    )


def resolve_precision(train: Train) -> str:
    """``auto``: bf16 autocast on a GPU that has it (fp16 without it), full fp32 on the CPU."""
    if train.precision != "auto":
        return train.precision
    if not _uses_cuda(train):
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def make_fabric(train: Train) -> Any:
    """Lightning Fabric for ``train.devices`` processes on each of ``train.num_nodes``
    machines (DDP when more than one in all)."""
    from lightning.fabric import Fabric

    # Fabric's all_gather (used once per checkpoint) goes through an API torch now deprecates.
    warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather")

    return Fabric(
        accelerator=train.accelerator,
        devices=train.devices,
        num_nodes=train.num_nodes,
        strategy="ddp" if train.devices * train.num_nodes > 1 else "auto",
        precision=resolve_precision(train),  # type: ignore[arg-type]
    )


def model_config(model: Model, name: str | None = None) -> ModelConfig:
    """The named preset (default ``model.preset``), checked, with its name."""
    name = name or model.preset
    if name not in model.presets:
        known = ", ".join(model.presets) or "none"
        raise ConfigError(f"unknown model preset {name!r}; known: {known}")
    return config_from_preset({"name": name, **model.presets[name]})


def build_model(params: Params, class_names: Sequence[str]) -> Denoiser:
    """A fresh Denoiser for ``model.preset`` and the clip format in ``audio`` (its weights
    drawn from torch's global generator: seed it first)."""
    audio = params.audio
    return Denoiser(
        model_config(params.model),
        class_names,
        sample_rate=audio.sample_rate,
        length=round(audio.sample_rate * audio.duration),
        data_channels=audio.channels,
    )


def open_data(
    params: Params, model: Denoiser, manifest: Path, rank: int, world: int, progress: bool
) -> Batches:
    """This rank's clips: the manifest's files in memory (rows ``rank::world``), or the
    shards of ``train.shards`` streamed (shards ``rank::world`` of each epoch's order)."""
    cfg = params.train
    if cfg.data == "shards":
        index = ShardIndex.read(cfg.shards)
        index.check(model.class_names, model.sample_rate, params.audio.channels, model.length)
        return ShardStream(index, model.class_names, cfg.batch_size, cfg.seed, rank, world)
    clips = load_clips(
        manifest,
        class_names=model.class_names,
        sample_rate=model.sample_rate,
        length=model.length,
        channels=params.audio.channels,
        rank=rank,
        world_size=world,
        workers=cfg.load_workers,
        progress=progress,
    )
    return MemoryBatches(clips, cfg.batch_size, seed=cfg.seed * 1000 + rank)


def length_measure(params: Params, model: Denoiser) -> Measure | None:
    """How training measures its clips' lengths, for a model conditioned on length."""
    if model.length_counts is None:
        return None
    t = params.trim
    return Measure(model.sample_rate, t.threshold_db, t.window_ms, t.gap_ms, t.floor_db)


def count_lengths(model: Denoiser, data: Batches, measure: Measure, limit: int = 4096) -> None:
    """Fill the model's length histogram from the first ``limit`` clips in training order
    (the same on every run over the same data, so a resumed run keeps it)."""
    counts = model.length_counts
    assert counts is not None
    k, left = 0, min(limit, data.total)
    while left > 0:
        x, y = data.batch(k)
        lengths = batch_lengths(data, k, x, measure)
        counts += histogram(lengths[:left], y[:left].cpu(), counts.shape[0])
        k, left = k + 1, left - len(y)


def lr_factor(cfg: Train) -> Callable[[int], float]:
    """The learning rate's share of ``train.lr`` at each step (0-based, as LambdaLR counts):
    a linear warm-up over ``warmup_steps``, then a half cosine from 1 down to ``lr_final`` at
    the last of ``train.steps``. With a constant rate the last steps still jump about and the
    EMA averages them; a falling rate lets the weights settle, which helps some kits and not
    others (BENCHMARKS.md, "The learning rate's fall"); ``lr_final`` 1 keeps the rate constant,
    step for step the schedule of the runs before the knob."""
    warmup, total, final = max(1, cfg.warmup_steps), cfg.steps, cfg.lr_final

    def factor(step: int) -> float:
        if step + 1 < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step + 1 - warmup) / max(1, total - warmup))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
