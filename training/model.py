"""The denoiser: Dance Diffusion's 1-D attention U-Net plus optional class conditioning.

``DiffusionAttnUnet1D`` rebuilds Harmonai's network (sample-generator,
``audio_diffusion/models.py`` and ``blocks.py``) module for module, so its ``state_dict`` has
the same keys and shapes as the public Dance Diffusion checkpoints and gives the same output.
Three changes leave the weights and the maths untouched: the cubic resampling runs as a
depthwise convolution (the original builds a dense channels x channels kernel that is zero off
the diagonal, 512x the work at the deep levels), attention runs through
``scaled_dot_product_attention`` (the original's ``d**-0.25`` on both q and k is its scale), and
the noise-level features stay in float32 under autocast.

``Denoiser`` is what training, sampling and ``training.checkpoints.load_model`` use: it pads a
clip to a length the U-Net accepts and crops back, maps mono data onto a stereo network, and
adds class conditioning whose every output weight starts at zero, so an unconditional
checkpoint gives exactly its original output until fine-tuning moves those weights.

Hyper-parameters come from ``params.yaml`` (``model.presets``); nothing here hard-codes one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.config import ConfigError, section

# Facts of the original architecture (not knobs: a checkpoint's layout depends on them).
FOURIER_FEATURES = 16  # FourierFeatures(1, 16): noise-level features concatenated to the input
HEAD_CHANNELS = 32  # SelfAttention1d(c, c // 32): one head per 32 channels
INIT_SCALE = 0.5  # the original multiplies every weight of `net` by 0.5 after init
# Resampling kernels of the original (blocks._kernels['cubic']); padded by len // 2 - 1.
CUBIC = (
    -0.01171875,
    -0.03515625,
    0.11328125,
    0.43359375,
    0.43359375,
    0.11328125,
    -0.03515625,
    -0.01171875,
)
PRESET_KEYS = ("io_channels", "depth", "channels", "n_attn_layers", "kernel_size")
DEFAULT_CLASS_DIM = 128


# --------------------------------------------------------------------------- blocks


class ResConvBlock(nn.Module):
    """conv-GroupNorm(1)-GELU twice plus a 1x1 skip when the width changes (original layout)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, kernel_size: int, is_last: bool = False):
        super().__init__()
        pad = kernel_size // 2
        self.main = nn.Sequential(
            nn.Conv1d(c_in, c_mid, kernel_size, padding=pad),
            nn.GroupNorm(1, c_mid),
            nn.GELU(),
            nn.Conv1d(c_mid, c_out, kernel_size, padding=pad),
            nn.GroupNorm(1, c_out) if not is_last else nn.Identity(),
            nn.GELU() if not is_last else nn.Identity(),
        )
        self.skip = nn.Conv1d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x) + self.skip(x)


class SelfAttention1d(nn.Module):
    """Pre-norm multi-head self-attention over time with a residual (original layout)."""

    def __init__(self, channels: int, n_head: int):
        super().__init__()
        if n_head < 1 or channels % n_head:
            raise ValueError(f"attention needs channels divisible into heads: {channels}/{n_head}")
        self.n_head = n_head
        self.norm = nn.GroupNorm(1, channels)
        self.qkv_proj = nn.Conv1d(channels, channels * 3, 1)
        self.out_proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        n, c, s = x.shape
        # [n, 3c, s] -> [n, 3 * heads, s, c // heads]; q, k, v are the three channel thirds.
        qkv = self.qkv_proj(self.norm(x)).view(n, 3 * self.n_head, c // self.n_head, s)
        q, k, v = qkv.transpose(2, 3).chunk(3, dim=1)
        y = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(d) == d**-0.25 on q and k
        return x + self.out_proj(y.transpose(2, 3).reshape(n, c, s))


class _Resample(nn.Module):
    """Shared part of the cubic down- and up-sampler: the kernel buffer and reflect padding."""

    def __init__(self, gain: float):
        super().__init__()
        kernel = torch.tensor(CUBIC) * gain
        self.pad = kernel.shape[0] // 2 - 1
        self.register_buffer("kernel", kernel)  # persistent: DD checkpoints hold it

    def weight(self, x: Tensor) -> Tensor:
        """The per-channel (depthwise) kernel; the original's dense one is zero off-diagonal."""
        return self.kernel.to(x.dtype).expand(x.shape[1], 1, -1)


class Downsample1d(_Resample):
    def __init__(self) -> None:
        super().__init__(1.0)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (self.pad, self.pad), mode="reflect")
        return F.conv1d(x, self.weight(x), stride=2, groups=x.shape[1])


class Upsample1d(_Resample):
    def __init__(self) -> None:
        super().__init__(2.0)

    def forward(self, x: Tensor) -> Tensor:
        p = (self.pad + 1) // 2
        x = F.pad(x, (p, p), mode="reflect")
        return F.conv_transpose1d(
            x, self.weight(x), stride=2, padding=self.pad * 2 + 1, groups=x.shape[1]
        )


class FourierFeatures(nn.Module):
    """Random Fourier features of the noise level (std 1, as the original)."""

    def __init__(self, in_features: int, out_features: int, std: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features // 2, in_features) * std)

    def forward(self, t: Tensor) -> Tensor:
        # t @ weight.T written as a product and a sum: autocast leaves those in float32 (a bf16
        # matmul would put the phase off by up to ~0.1 rad); for one input feature it is exact.
        f = ((2 * math.pi * t.float()).unsqueeze(-2) * self.weight.float()).sum(-1)
        return torch.cat([f.cos(), f.sin()], dim=-1)


class SkipBlock(nn.Module):
    """One U-Net level: downsample, convs (+attention), the inner level, convs, upsample.

    ``main`` keeps the original's Sequential indices (so the keys match); ``forward`` walks it
    by hand to add the level's class bias after its first conv block.
    """

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, biases: Sequence[Tensor] | None = None) -> Tensor:
        h = self.main[1](self.main[0](x))
        return torch.cat([_run(self.main, h, biases, start=2), x], dim=1)


def _run(seq: nn.Sequential, h: Tensor, biases: Sequence[Tensor] | None, start: int) -> Tensor:
    """Apply ``seq[start:]`` after adding this level's bias; pass deeper biases on."""
    if biases is not None:
        h = h + biases[0]
    for layer in seq[start:]:
        if isinstance(layer, SkipBlock):
            h = layer(h, None if biases is None else biases[1:])
        else:
            h = layer(h)
    return h


# --------------------------------------------------------------------------- the U-Net


def check_preset(preset: dict[str, Any]) -> dict[str, Any]:
    """Validate a preset's hyper-parameters; return just the architecture keys, typed."""
    missing = [k for k in PRESET_KEYS if k not in preset]
    if missing:
        raise ConfigError(f"model preset lacks {', '.join(missing)}")
    p = {
        "io_channels": int(preset["io_channels"]),
        "depth": int(preset["depth"]),
        "channels": [int(c) for c in preset["channels"]],
        "n_attn_layers": int(preset["n_attn_layers"]),
        "kernel_size": int(preset["kernel_size"]),
    }
    if p["depth"] < 2:
        raise ConfigError(f"model depth must be at least 2, got {p['depth']}")
    if len(p["channels"]) < p["depth"]:
        raise ConfigError(f"model channels needs {p['depth']} entries, has {len(p['channels'])}")
    if p["kernel_size"] < 1 or p["kernel_size"] % 2 == 0:
        raise ConfigError(f"model kernel_size must be odd, got {p['kernel_size']}")
    if p["io_channels"] < 1 or min(p["channels"]) < 1:
        raise ConfigError("model io_channels and channels must be positive")
    for level in attention_levels(p["depth"], p["n_attn_layers"]):
        for c in p["channels"][level - 2 : level]:  # attention on c and on the c_prev output
            if c % HEAD_CHANNELS:
                raise ConfigError(
                    f"model level {level} has attention, so its channels must be multiples of "
                    f"{HEAD_CHANNELS}: got {c}"
                )
    return p


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
        p = check_preset(
            {
                "io_channels": io_channels,
                "depth": depth,
                "channels": list(channels),
                "n_attn_layers": n_attn_layers,
                "kernel_size": kernel_size,
            }
        )
        self.depth, self.channels, k = p["depth"], p["channels"][: p["depth"]], p["kernel_size"]
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
        return _run(self.net, self.net[0](h), biases, start=1)


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

    ``preset``: a dict of the architecture keys (see params.yaml ``model.presets``), with an
    optional ``name`` and ``class_dim``. ``class_names`` empty = unconditional, no
    conditioning parameters at all (the shape of an original Dance Diffusion checkpoint).
    """

    def __init__(
        self,
        preset: dict[str, Any],
        class_names: Sequence[str],
        sample_rate: int,
        length: int,
        data_channels: int,
    ):
        super().__init__()
        arch = check_preset(preset)
        self.class_names = [str(c) for c in class_names]
        if len(set(self.class_names)) != len(self.class_names):
            raise ConfigError(f"class names repeat: {self.class_names}")
        class_dim = int(preset.get("class_dim", DEFAULT_CLASS_DIM))
        self.preset = {"name": str(preset.get("name", "custom")), **arch, "class_dim": class_dim}
        self.sample_rate, self.length = int(sample_rate), int(length)
        self.data_channels = int(data_channels)
        # Set by training.checkpoints for an original Dance Diffusion checkpoint, which records
        # no sample rate or clip length (so sampling may set them).
        self.from_dance_diffusion = False
        io = arch["io_channels"]
        if self.data_channels not in (1, io):
            raise ConfigError(
                f"{self.data_channels}-channel data cannot feed a {io}-channel model "
                "(mono data works with any model; otherwise the counts must match)"
            )
        self.unet = DiffusionAttnUnet1D(**arch)
        self.cond = (
            ClassConditioning(len(self.class_names), class_dim, self.unet.channels)
            if self.class_names
            else None
        )

    @property
    def null_label(self) -> int | None:
        """Index of the null (unconditional) class, or None for an unconditional model."""
        return len(self.class_names) if self.class_names else None

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """x [B, data_channels, N] at noise level t [B] in [0, 1] -> v of the same shape.

        labels [B]: class indices, ``null_label`` for unconditional; None = the null class.
        """
        b, c, n = x.shape
        if c != self.data_channels:
            raise ValueError(f"expected {self.data_channels}-channel audio, got {c} channels")
        t = t.expand(b) if t.ndim == 0 else t
        io = self.preset["io_channels"]
        if c != io:  # mono data, wider model: the same signal on every channel
            x = x.expand(-1, io, -1)
        pad = valid_length(n, self.preset["depth"]) - n
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


def preset_from_params(params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The named preset (default ``model.preset``) from params.yaml, with its name."""
    model = section(params, "model")
    name = str(name or model.get("preset", ""))
    presets = model.get("presets") or {}
    if name not in presets:
        raise ConfigError(f"unknown model preset {name!r}; known: {', '.join(presets) or 'none'}")
    return {"name": name, **presets[name]}


def build_model(params: dict[str, Any], class_names: Sequence[str]) -> Denoiser:
    """A fresh Denoiser for ``model.preset`` and the clip format in ``audio``."""
    audio = section(params, "audio")
    sample_rate = int(audio["sample_rate"])
    return Denoiser(
        preset_from_params(params),
        class_names,
        sample_rate=sample_rate,
        length=round(sample_rate * float(audio["duration"])),
        data_channels=int(audio.get("channels", 1)),
    )
