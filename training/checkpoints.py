"""Checkpoints: this project's format, and original Dance Diffusion ``.ckpt`` files.

This project's checkpoint is one ``torch.save`` dict holding only tensors and plain Python
values (so it loads with ``weights_only=True``):

    format          "oneshot-diffusion/1"
    preset          the architecture (``Denoiser.preset``: name, io_channels, depth, ...)
    class_names     the classes, in label-index order
    sample_rate, length, data_channels
    model           state dict of the trained Denoiser
    ema             state dict of its EMA (what sampling uses)
    step, config    and whatever else the trainer needs to resume (optimizer, RNG, ...)

An original Dance Diffusion checkpoint is a Lightning checkpoint whose ``state_dict`` holds
``diffusion.*`` and ``diffusion_ema.*`` (the U-Net's keys, see ``training.model``);
:func:`load_model` reads the EMA weights and infers the architecture from their shapes.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from core.files import replacing
from training.model import Denoiser, UNetConfig, config_from_preset, infer_preset

FORMAT = "oneshot-diffusion/1"
# Dance Diffusion's own defaults (sample-generator defaults.ini): what an original checkpoint
# is taken to be when the caller does not say. honk-140k, maestro-150k and unlocked-250k are
# 16 kHz models, jmann-large-580k was trained on 131072 samples: pass sample_rate / length.
DD_SAMPLE_RATE = 48000
DD_LENGTH = 65536
DD_PREFIX, DD_EMA_PREFIX = "diffusion.", "diffusion_ema."
_SHOW = 5  # keys named in a mismatch message, per kind


def save_checkpoint(path: str | os.PathLike[str], **state: Any) -> None:
    """Write ``state`` (plus the format tag) under a temporary name, then rename it into place,
    so a run killed while saving leaves the previous checkpoint intact. Saved through a file
    object: given a path, torch names the archive's folder after it (the random temporary
    name), so the same weights would give other bytes and another sha256 on every run."""
    with replacing(path, durable=True) as tmp, open(tmp, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """This project's checkpoint as a dict; ValueError if the file is something else."""
    ckpt = _torch_load(Path(path), map_location, trusted=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint")
    return ckpt


def load_model(
    path: str | os.PathLike[str],
    map_location: Any = "cpu",
    *,
    sample_rate: int | None = None,
    length: int | None = None,
    data_channels: int | None = None,
    trusted: bool = True,
) -> Denoiser:
    """The denoiser (EMA weights, eval mode) from this project's checkpoint or an original
    Dance Diffusion ``.ckpt``.

    ``sample_rate``, ``length`` and ``data_channels`` override what the file says; an original
    checkpoint records none of them, so they default to 48 kHz, 65536 samples and the network's
    own channel count. Original Lightning checkpoints may hold pickled objects beyond tensors;
    with ``trusted`` (the default: the user named the file) such a file is unpickled in full,
    which runs code from the file, so load only checkpoints from a source you trust.
    """
    path = Path(path)
    ckpt = _torch_load(path, map_location, trusted=trusted)
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"{path}: not a checkpoint (a {type(ckpt).__name__}, not a dict)")
    if ckpt.get("format") == FORMAT:
        return _project_model(path, ckpt, sample_rate, length, data_channels)
    state = ckpt.get("state_dict", ckpt)
    if isinstance(state, Mapping) and any(str(k).startswith(DD_PREFIX) for k in state):
        return _dance_diffusion_model(path, state, sample_rate, length, data_channels)
    raise ValueError(
        f"{path}: neither a {FORMAT} checkpoint nor a Dance Diffusion checkpoint "
        f"(a state_dict with {DD_EMA_PREFIX}* / {DD_PREFIX}* keys)"
    )


def check_state_dict(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Raise a ValueError naming missing, unexpected and mis-shaped keys (a few of each)."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    shapes = [
        f"{k} {list(have[k])} vs {list(want[k])}" for k in want if k in have and have[k] != want[k]
    ]
    problems = [
        f"{len(items)} {kind} ({', '.join(items[:_SHOW])}{', ...' if len(items) > _SHOW else ''})"
        for kind, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("keys with other shapes, file vs model", shapes),
        )
        if items
    ]
    if problems:
        raise ValueError(f"{source} does not fit the model: {'; '.join(problems)}")


def _torch_load(path: Path, map_location: Any, trusted: bool) -> Any:
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(1)
    # torch.save writes a zip archive, or (legacy) a pickle stream, which opens with 0x80.
    if not zipfile.is_zipfile(path) and head != b"\x80":
        raise ValueError(f"{path}: not a checkpoint (neither a torch zip archive nor a pickle)")
    try:
        return _load_weights_only(path, map_location)
    except pickle.UnpicklingError as exc:  # holds objects other than tensors and plain values
        if not trusted:
            raise ValueError(f"{path}: not loadable as plain weights ({exc})") from None
        warnings.warn(
            f"{path} holds pickled Python objects; loading it in full runs code from the file",
            stacklevel=3,
        )
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as exc2:  # noqa: BLE001 - any failure means "not a checkpoint"
            raise ValueError(f"{path}: unreadable checkpoint ({exc2})") from None


def _load_weights_only(path: Path, map_location: Any) -> Any:
    try:
        # mmap: tensors are paged in on use, so a 3 GB Lightning file costs little memory.
        return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except RuntimeError as exc:
        if zipfile.is_zipfile(path):
            raise ValueError(f"{path}: unreadable checkpoint ({exc})") from None
    # The legacy (pre-zip) serialization cannot be memory-mapped.
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged legacy file fails in many ways
        raise ValueError(f"{path}: unreadable checkpoint ({exc})") from None


def _project_model(
    path: Path,
    ckpt: Mapping[str, Any],
    sample_rate: int | None,
    length: int | None,
    data_channels: int | None,
) -> Denoiser:
    try:
        model = Denoiser(
            config_from_preset(ckpt["preset"]),
            list(ckpt["class_names"]),
            sample_rate=sample_rate or int(ckpt["sample_rate"]),
            length=length or int(ckpt["length"]),
            data_channels=data_channels or int(ckpt["data_channels"]),
        )
    except KeyError as exc:
        raise ValueError(f"{path}: checkpoint lacks {exc.args[0]!r}") from None
    weights = ckpt.get("ema") or ckpt.get("model")
    if weights is None:
        raise ValueError(f"{path}: checkpoint holds no weights ('ema' or 'model')")
    if "n_averaged" in weights:  # an AveragedModel's own state dict: the Denoiser is .module
        weights = {k[len("module.") :]: v for k, v in weights.items() if k.startswith("module.")}
    return _load_into(model, model, weights, str(path))


def _dance_diffusion_model(
    path: Path,
    state: Mapping[str, Tensor],
    sample_rate: int | None,
    length: int | None,
    data_channels: int | None,
) -> Denoiser:
    prefix = DD_EMA_PREFIX if any(k.startswith(DD_EMA_PREFIX) for k in state) else DD_PREFIX
    if prefix == DD_PREFIX:
        warnings.warn(f"{path} has no {DD_EMA_PREFIX}* weights: using {DD_PREFIX}*", stacklevel=3)
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        preset = infer_preset(weights)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    model = Denoiser(
        UNetConfig.from_preset({"name": "dance-diffusion", **preset}),
        [],
        sample_rate=sample_rate or DD_SAMPLE_RATE,
        length=length or DD_LENGTH,
        data_channels=data_channels or preset["io_channels"],
    )
    model.from_dance_diffusion = True
    return _load_into(model, model.unet, weights, f"{path} ({prefix}*)")


def _load_into(
    model: Denoiser, target: nn.Module, weights: Mapping[str, Tensor], source: str
) -> Denoiser:
    check_state_dict(target, weights, source)
    target.load_state_dict(weights)  # copies: the model keeps no view of the mmap'ed file
    return model.eval()
