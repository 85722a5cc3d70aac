"""The fold network's view of a waveform: patches as channels, and the masks that scale the
noisy input's frequencies patch by patch.

Pure tensor functions (no weights): ``fold`` and ``unfold`` move between ``[B, C, N]`` and
``[B, C * size, N / size]``; ``block_mask`` and ``lapped_mask`` apply one gain per patch and
frequency, on a DCT of each patch or on MDCT frames that overlap by a patch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def fold(x: Tensor, size: int) -> Tensor:
    """[B, C, N] -> [B, C * size, N / size]: channel ``c * size + j`` at position k holds
    sample ``k * size + j`` of channel c (N must be a multiple of size)."""
    b, c, n = x.shape
    return x.view(b, c, n // size, size).transpose(2, 3).reshape(b, c * size, n // size)


def unfold(h: Tensor, channels: int) -> Tensor:
    """The inverse of :func:`fold`: [B, C * size, M] -> [B, C, M * size]."""
    b, cs, m = h.shape
    return h.view(b, channels, cs // channels, m).transpose(2, 3).reshape(b, channels, -1)


def dct_matrix(n: int) -> Tensor:
    """The orthonormal DCT-II as an [n, n] matrix (row k = frequency k): its transpose is the
    inverse."""
    i = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (i[None, :] + 0.5) * i[:, None] / n) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.float()


def mdct_matrix(n: int) -> Tensor:
    """The MDCT of frames of 2n samples under a sine window, as an [n, 2n] matrix: frames
    hopping by n, analysed by it and overlap-added through its transpose, give the signal
    back exactly (time-domain aliasing cancels between neighbours, Princen-Bradley)."""
    i = torch.arange(2 * n, dtype=torch.float64)
    k = torch.arange(n, dtype=torch.float64)
    window = torch.sin(math.pi * (i + 0.5) / (2 * n))
    phase = math.pi / n * (i[None, :] + 0.5 + n / 2) * (k[:, None] + 0.5)
    return (math.sqrt(2.0 / n) * window[None, :] * torch.cos(phase)).float()


def block_mask(folded: Tensor, gains: Tensor, dct: Tensor) -> Tensor:
    """Each patch of ``folded`` [B, C * f, P] through the DCT ``dct`` [f, f], its coefficients
    times ``gains`` [B, C * f, P] (channel c * f + k: frequency k), and back."""
    b, _, steps = folded.shape
    f = dct.shape[0]
    coeffs = torch.einsum("kf,bifs->biks", dct, folded.view(b, -1, f, steps))
    out = torch.einsum("kf,biks->bifs", dct, gains.view_as(coeffs) * coeffs)
    return out.reshape(b, -1, steps)


def lapped_mask(folded: Tensor, gains: Tensor, mdct: Tensor) -> Tensor:
    """:func:`block_mask` on lapped frames: each frame spans two patches under the sine window
    of ``mdct`` [f, 2f] (an MDCT hopping one patch), gained, and overlap-added back; a frame's
    gains are the mean of its two patches'. Patch by patch the blocks are cut with edges: a
    real hat's two lowest bins removed per patch leave a staircase at -16 dB in 300-1,300 Hz
    (the hat's own is -55 dB); lapped, -45 dB."""
    b, _, steps = folded.shape
    f = mdct.shape[0]
    padded = F.pad(folded.view(b, -1, f, steps), (1, 1))  # a silent patch at each end
    frames = torch.cat([padded[..., :-1], padded[..., 1:]], dim=2)  # [B, C, 2f, P + 1]
    g = F.pad(gains, (1, 1), mode="replicate").view(b, -1, f, steps + 2)
    coeffs = torch.einsum("kn,bins->biks", mdct, frames) * (g[..., :-1] + g[..., 1:]) / 2
    back = torch.einsum("kn,biks->bins", mdct, coeffs)
    return (back[:, :, f:, :-1] + back[:, :, :f, 1:]).reshape(b, -1, steps)
