"""The trainer's settings: params.yaml's typed sections (``core.params``) and what follows
from them: the precision and the Fabric a run uses, and the model ``model.preset`` describes.

``core.params`` checks every value of params.yaml; what it cannot know (that
``train.init_checkpoint`` names a file on this machine, that a preset is a network this code
can build) is checked here, before any work.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from core.errors import ConfigError
from core.params import Model, Params, Train
from training.model import Denoiser, ModelConfig, config_from_preset


def check(train: Train) -> None:
    """Refuse an ``init_checkpoint`` that is not a file (ConfigError, one line)."""
    if train.init_checkpoint and not Path(train.init_checkpoint).expanduser().is_file():
        raise ConfigError(f"train.init_checkpoint {train.init_checkpoint} is not a file")


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
    """Lightning Fabric for ``train.devices`` processes (DDP when more than one)."""
    from lightning.fabric import Fabric

    # Fabric's all_gather (used once per checkpoint) goes through an API torch now deprecates.
    warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather")

    return Fabric(
        accelerator=train.accelerator,
        devices=train.devices,
        strategy="ddp" if train.devices > 1 else "auto",
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
