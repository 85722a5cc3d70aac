"""The building blocks of Dance Diffusion's U-Net (sample-generator's ``blocks.py``), layer for
layer, so ``training.model.DiffusionAttnUnet1D`` has the original's state-dict keys.

Three changes leave the weights and the maths untouched: the cubic resampling runs as a
depthwise convolution (the original builds a dense channels x channels kernel that is zero off
the diagonal, 512x the work at the deep levels), attention runs through
``scaled_dot_product_attention`` (the original's ``d**-0.25`` on both q and k is its scale), and
the noise-level features stay in float32 under autocast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
        return torch.cat([run_level(self.main, h, biases, start=2), x], dim=1)


def run_level(seq: nn.Sequential, h: Tensor, biases: Sequence[Tensor] | None, start: int) -> Tensor:
    """Apply ``seq[start:]`` after adding this level's bias; pass deeper biases on."""
    if biases is not None:
        h = h + biases[0]
    for layer in seq[start:]:
        if isinstance(layer, SkipBlock):
            h = layer(h, None if biases is None else biases[1:])
        else:
            h = layer(h)
    return h
