"""The denoiser: Dance Diffusion's 1-D attention U-Net plus optional class conditioning.

``DiffusionAttnUnet1D`` rebuilds Harmonai's network (sample-generator,
``audio_diffusion/models.py`` and ``blocks.py``) module for module, so its ``state_dict`` has
the same keys and shapes as the public Dance Diffusion checkpoints and gives the same output
(its layers, and the three ways they compute faster, are in ``training.blocks``).

``Denoiser`` is what training, sampling and ``training.checkpoints.load_model`` use: it pads a
clip to a length the U-Net accepts and crops back, maps mono data onto a stereo network, and
adds class conditioning whose every output weight starts at zero, so an unconditional
checkpoint gives exactly its original output until fine-tuning moves those weights.

The architecture is a :class:`UNetConfig`, or a ``training.foldnet.FoldConfig`` for a preset
with ``arch: fold`` (the network built for the CPU), built by :func:`config_from_preset` from a
preset mapping (a ``model.presets`` entry of params.yaml, or the ``preset`` a checkpoint
stores): this module knows nothing of params.yaml and hard-codes no preset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ConfigError
from training import foldnet
from training.blocks import (
    Downsample1d,
    FourierFeatures,
    ResConvBlock,
    SelfAttention1d,
    SkipBlock,
    Upsample1d,
    run_level,
)

# Facts of the original architecture (not knobs: a checkpoint's layout depends on them).
FOURIER_FEATURES = 16  # FourierFeatures(1, 16): noise-level features concatenated to the input
HEAD_CHANNELS = 32  # SelfAttention1d(c, c // 32): one head per 32 channels
INIT_SCALE = 0.5  # the original multiplies every weight of `net` by 0.5 after init
ARCH_KEYS = ("io_channels", "depth", "channels", "n_attn_layers", "kernel_size")
# Optional in a preset: an original Dance Diffusion checkpoint has neither.
DEFAULT_NAME = "custom"
DEFAULT_CLASS_DIM = 128
DD_ARCH = "dance-diffusion"  # a preset's ``arch`` (the default: DD checkpoints record none)


# --------------------------------------------------------------------------- the U-Net


@dataclass(frozen=True)
class UNetConfig:
    """The architecture: the U-Net's hyper-parameters plus the class embedding's size.

    Built with :meth:`from_preset`, which checks every key, so a network is never built from
    a preset it cannot have (a checkpoint's layout depends on each of them).
    """

    io_channels: int
    depth: int
    channels: tuple[int, ...]
    n_attn_layers: int
    kernel_size: int
    name: str = DEFAULT_NAME
    class_dim: int = DEFAULT_CLASS_DIM
    schedule = "crash"  # Dance Diffusion's noise schedule (not a knob: its checkpoints need it)

    @classmethod
    def from_preset(cls, preset: Mapping[str, Any]) -> UNetConfig:
        """Check a preset mapping (the five architecture keys, optional ``name`` and
        ``class_dim``); ConfigError naming the key on anything missing, unknown or invalid."""
        if preset.get("arch", DD_ARCH) != DD_ARCH:
            raise ConfigError(f"model arch must be {DD_ARCH} or {foldnet.ARCH}")
        missing = [k for k in ARCH_KEYS if k not in preset]
        if missing:
            raise ConfigError(f"model preset lacks {', '.join(missing)}")
        known = (*ARCH_KEYS, "name", "class_dim", "arch")
        unknown = [str(k) for k in preset if k not in known]
        if unknown:
            raise ConfigError(
                f"model preset has unknown key(s) {', '.join(unknown)}; a preset has "
                f"{', '.join(known)}"
            )
        channels = preset["channels"]
        if not isinstance(channels, list | tuple):
            raise ConfigError(f"model channels must be a list of whole numbers, got {channels!r}")
        config = cls(
            io_channels=_whole("io_channels", preset["io_channels"]),
            depth=_whole("depth", preset["depth"]),
            channels=tuple(_whole("channels", c, "whole numbers") for c in channels),
            n_attn_layers=_whole("n_attn_layers", preset["n_attn_layers"]),
            kernel_size=_whole("kernel_size", preset["kernel_size"]),
            name=str(preset.get("name", DEFAULT_NAME)),
            class_dim=_whole("class_dim", preset.get("class_dim", DEFAULT_CLASS_DIM)),
        )
        config.check()
        return config

    def check(self) -> None:
        """The rules a U-Net of this layout must follow."""
        if self.depth < 2:
            raise ConfigError(f"model depth must be at least 2, got {self.depth}")
        if len(self.channels) < self.depth:
            raise ConfigError(
                f"model channels needs {self.depth} entries, has {len(self.channels)}"
            )
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"model kernel_size must be odd, got {self.kernel_size}")
        if self.io_channels < 1 or min(self.channels) < 1:
            raise ConfigError("model io_channels and channels must be positive")
        if self.n_attn_layers < 0 or self.class_dim < 1:
            raise ConfigError("model n_attn_layers must not be negative, class_dim positive")
        for level in attention_levels(self.depth, self.n_attn_layers):
            for c in self.channels[level - 2 : level]:  # attention on c and on the c_prev output
                if c % HEAD_CHANNELS:
                    raise ConfigError(
                        f"model level {level} has attention, so its channels must be multiples "
                        f"of {HEAD_CHANNELS}: got {c}"
                    )

    def describe(self) -> str:
        return f"Dance Diffusion's 1-D U-Net (depth {self.depth})"

    def arch(self) -> dict[str, Any]:
        """The U-Net's own keyword arguments (Dance Diffusion's names)."""
        return {
            "io_channels": self.io_channels,
            "depth": self.depth,
            "channels": list(self.channels),
            "n_attn_layers": self.n_attn_layers,
            "kernel_size": self.kernel_size,
        }

    def as_preset(self) -> dict[str, Any]:
        """The preset as a plain dict: what a checkpoint stores (and loads back)."""
        return {"name": self.name, **self.arch(), "class_dim": self.class_dim}


ModelConfig = UNetConfig | foldnet.FoldConfig


def config_from_preset(preset: Mapping[str, Any]) -> ModelConfig:
    """The architecture a preset describes: ``arch: fold`` or (default) Dance Diffusion's."""
    if preset.get("arch") == foldnet.ARCH:
        return foldnet.FoldConfig.from_preset(preset)
    return UNetConfig.from_preset(preset)


def _whole(key: str, value: Any, what: str = "a whole number") -> int:
    """``value`` as an int; YAML's 5.0 passes, 4.5, true or "5" do not."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ConfigError(f"model {key} must be {what}, got {value!r}")
    return int(value)


def attention_levels(depth: int, n_attn_layers: int) -> list[int]:
    """Levels (1 = full rate) with attention; the original's rule gives n_attn_layers + 2."""
    first = depth - n_attn_layers - 1
    return [i for i in range(2, depth + 1) if n_attn_layers > 0 and i >= first]


class DiffusionAttnUnet1D(nn.Module):
    """Dance Diffusion's U-Net; keys ``timestep_embed.weight`` and ``net.*`` as the original.

    Level ``i`` (1 = full rate) has ``channels[i - 1]`` channels; levels 2..depth each halve the
    rate, so lengths must be multiples of ``2 ** (depth - 1)`` (see :func:`valid_length`).
    """

    def __init__(
        self,
        io_channels: int = 2,
        depth: int = 14,
        channels: Sequence[int] = (128, 128, 256, 256) + (512,) * 10,
        n_attn_layers: int = 4,
        kernel_size: int = 5,
    ):
        super().__init__()
        cfg = UNetConfig.from_preset(
            {
                "io_channels": io_channels,
                "depth": depth,
                "channels": list(channels),
                "n_attn_layers": n_attn_layers,
                "kernel_size": kernel_size,
            }
        )
        self.depth, self.channels, k = cfg.depth, list(cfg.channels[: cfg.depth]), cfg.kernel_size
        self.timestep_embed = FourierFeatures(1, FOURIER_FEATURES)
        attn = set(attention_levels(depth, n_attn_layers))

        def attention(c: int, level: int) -> nn.Module:
            return SelfAttention1d(c, c // HEAD_CHANNELS) if level in attn else nn.Identity()

        block: nn.Module = nn.Identity()
        for i in range(depth, 1, -1):
            c, c_prev = self.channels[i - 1], self.channels[i - 2]
            block = SkipBlock(
                Downsample1d(),
                ResConvBlock(c_prev, c, c, k),
                attention(c, i),
                ResConvBlock(c, c, c, k),
                attention(c, i),
                ResConvBlock(c, c, c, k),
                attention(c, i),
                block,
                ResConvBlock(c * 2 if i != depth else c, c, c, k),
                attention(c, i),
                ResConvBlock(c, c, c, k),
                attention(c, i),
                ResConvBlock(c, c, c_prev, k),
                attention(c_prev, i),
                Upsample1d(),
            )
        c = self.channels[0]
        self.net = nn.Sequential(
            ResConvBlock(io_channels + FOURIER_FEATURES, c, c, k),
            ResConvBlock(c, c, c, k),
            ResConvBlock(c, c, c, k),
            block,
            ResConvBlock(c * 2, c, c, k),
            ResConvBlock(c, c, c, k),
            ResConvBlock(c, c, io_channels, k, is_last=True),
        )
        with torch.no_grad():
            for param in self.net.parameters():
                param.mul_(INIT_SCALE)

    def forward(self, x: Tensor, t: Tensor, biases: Sequence[Tensor] | None = None) -> Tensor:
        """v for noisy audio ``x`` [B, io, N] at noise level ``t`` [B]; N must be valid.

        ``biases``: one [B, channels[i], 1] tensor per level, added after its first conv block
        (class conditioning); None runs the original network unchanged.
        """
        features = self.timestep_embed(t[:, None]).to(x.dtype)
        h = torch.cat([x, features[..., None].expand(-1, -1, x.shape[2])], dim=1)
        return run_level(self.net, self.net[0](h), biases, start=1)


def valid_length(n: int, depth: int) -> int:
    """The shortest length >= n that a U-Net of this depth accepts.

    Each of the depth - 1 downsamplings halves the length exactly only when it is even, so the
    length must be a multiple of 2 ** (depth - 1). The deepest upsampler reflect-pads its input
    by 2 samples, which PyTorch allows only for inputs longer than 2, so the deepest level needs
    at least 3 samples: 3 * 2 ** (depth - 1) (24576 for Dance Diffusion's depth 14).
    """
    if n < 1:
        raise ValueError(f"length must be positive, got {n}")
    step = 2 ** (depth - 1)
    return max(3 * step, -(-n // step) * step)


def infer_preset(state_dict: dict[str, Tensor]) -> dict[str, Any]:
    """Read io_channels, depth, channels, attention levels and kernel size off U-Net weights.

    Keys are relative to the U-Net (``net.0.main.0.weight``...), e.g. a DD checkpoint's
    ``diffusion_ema.*`` with the prefix removed.
    """
    try:
        first = state_dict["net.0.main.0.weight"]  # [c0, io + 16, k]
        last = state_dict["net.6.main.3.weight"]  # [io, c0, k]
    except KeyError as e:
        raise ValueError(f"not a Dance Diffusion U-Net: no {e.args[0]}") from None
    channels, attn, prefix = [int(first.shape[0])], [], "net.3"
    while f"{prefix}.main.1.main.0.weight" in state_dict:
        channels.append(int(state_dict[f"{prefix}.main.1.main.0.weight"].shape[0]))
        attn.append(f"{prefix}.main.2.qkv_proj.weight" in state_dict)
        prefix += ".main.7"
    depth = len(channels)
    n_attn = 0
    if any(attn):
        first_attn = attn.index(True) + 2  # level of the shallowest attention
        n_attn = max(depth - first_attn - 1, 1)
    return {
        "io_channels": int(last.shape[0]),
        "depth": depth,
        "channels": channels,
        "n_attn_layers": n_attn,
        "kernel_size": int(first.shape[2]),
    }


# --------------------------------------------------------------------------- the denoiser


class ClassConditioning(nn.Module):
    """Class embedding (+ a null class for classifier-free guidance) -> one bias per level.

    The projections start at zero, so at load the network is exactly the unconditional one; the
    projection weights get gradients at once and the embedding once they move.
    """

    def __init__(self, num_classes: int, dim: int, level_channels: Sequence[int]):
        super().__init__()
        self.embed = nn.Embedding(num_classes + 1, dim)
        self.proj = nn.ModuleList(nn.Linear(dim, c) for c in level_channels)
        for p in self.proj.parameters():
            nn.init.zeros_(p)

    def forward(self, labels: Tensor) -> list[Tensor]:
        e = self.embed(labels)
        return [proj(e)[..., None] for proj in self.proj]


class Denoiser(nn.Module):
    """v-prediction on clips of any length and channel count the dataset has.

    ``config``: the architecture. ``class_names`` empty = unconditional, no conditioning
    parameters at all (the shape of an original Dance Diffusion checkpoint). ``preset`` is the
    config as the plain dict a checkpoint stores.
    """

    def __init__(
        self,
        config: ModelConfig,
        class_names: Sequence[str],
        sample_rate: int,
        length: int,
        data_channels: int,
    ):
        super().__init__()
        self.config = config
        self.class_names = [str(c) for c in class_names]
        if len(set(self.class_names)) != len(self.class_names):
            raise ConfigError(f"class names repeat: {self.class_names}")
        self.preset = config.as_preset()
        self.sample_rate, self.length = int(sample_rate), int(length)
        self.data_channels = int(data_channels)
        # Set by training.checkpoints for an original Dance Diffusion checkpoint, which records
        # no sample rate or clip length (so sampling may set them).
        self.from_dance_diffusion = False
        self.schedule = config.schedule  # the noise schedule training and sampling follow
        io = config.io_channels
        if self.data_channels not in (1, io):
            raise ConfigError(
                f"{self.data_channels}-channel data cannot feed a {io}-channel model "
                "(mono data works with any model; otherwise the counts must match)"
            )
        self.unet: nn.Module
        self.cond: ClassConditioning | None = None
        if isinstance(config, foldnet.FoldConfig):  # conditions itself (FiLM), null class too
            self.unet = foldnet.FoldUNet(config, len(self.class_names) + 1, sample_rate)
        else:
            self.unet = DiffusionAttnUnet1D(**config.arch())
            if self.class_names:
                self.cond = ClassConditioning(
                    len(self.class_names), config.class_dim, self.unet.channels
                )

    @property
    def null_label(self) -> int | None:
        """Index of the null (unconditional) class, or None for an unconditional model."""
        return len(self.class_names) if self.class_names else None

    @property
    def length_counts(self) -> Tensor | None:
        """[classes, bins]: hit lengths seen per class (preset ``lengths``), else None."""
        return getattr(self.unet, "length_counts", None)

    def forward(
        self, x: Tensor, t: Tensor, labels: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor:
        """x [B, data_channels, N] at noise level t [B] in [0, 1] -> v of the same shape.

        labels [B]: class indices, ``null_label`` for unconditional; None = the null class.
        lengths [B]: the hits' lengths in seconds (NaN or None: not said), for a preset with
        ``lengths: true``.
        """
        b, c, n = x.shape
        if c != self.data_channels:
            raise ValueError(f"expected {self.data_channels}-channel audio, got {c} channels")
        t = t.expand(b) if t.ndim == 0 else t
        io = self.config.io_channels
        if c != io:  # mono data, wider model: the same signal on every channel
            x = x.expand(-1, io, -1)
        if isinstance(self.config, foldnet.FoldConfig):
            if labels is None or not self.class_names:
                labels = torch.full((b,), len(self.class_names), device=x.device)
            v = foldnet.as_v(self.unet(x, t, labels, lengths), x, t, self.config.predict)
            return v.mean(dim=1, keepdim=True) if c != io else v
        if lengths is not None:
            raise ValueError("this model is not conditioned on length (preset lengths)")
        pad = valid_length(n, self.config.depth) - n
        if pad:
            x = F.pad(x, (0, pad))
        biases = None
        if self.cond is not None:
            if labels is None:
                labels = torch.full((b,), len(self.class_names), device=x.device)
            biases = self.cond(labels)
        v = self.unet(x, t, biases)[..., :n]
        return v.mean(dim=1, keepdim=True) if c != io else v


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
