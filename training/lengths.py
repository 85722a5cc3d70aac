"""A hit's length as a condition of the model: how long a one-shot rings.

A closed and an open hat, a tight and a boomy kick, are the same class; which one a sound
becomes is decided at high noise, where a denoiser sees only the class and answers with the
average of both, so every generated hat rang half open (issue 13: decay 60 dB above the data,
diversity 0.1 of real). So the ``fold`` preset with ``lengths: true`` is told the length, as
Stable Audio is told a clip's seconds: the seconds from the hit's onset until its energy has
fallen ``trim.threshold_db`` under the peak, measured as the trim stage measures it
(:func:`pipeline.audio.sound_bounds`). Training measures every clip it reads; sampling draws a
length per sound from the lengths the model saw in its class (a histogram kept in the
checkpoint, at quantiles that spread every set of sounds over it), or takes the one a user
asks for. With ``length_map`` the network also gets the length as two input channels, the
time since the clip's start over the asked length at every position: the embedding says a
number to every block, the map says where the ring must have ended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.errors import Reject
from pipeline.audio import sound_bounds

LOG2_LOW, LOG2_HIGH = -8.0, 2.0  # lengths kept between 4 ms and 4 s (log2 seconds)
BINS = 80  # the histogram's bins over that range: an eighth of an octave each
FREQS = 8  # sine/cosine pairs of the length's features


@dataclass(frozen=True)
class Measure:
    """The trim stage's definition of a hit, applied to clips the model trains on."""

    sample_rate: int
    threshold_db: float
    window_ms: float
    gap_ms: float
    floor_db: float

    def __call__(self, audio: Tensor) -> Tensor:
        """Lengths in seconds [B] of clips [B, C, N] (NaN for a silent clip: no length)."""
        out = torch.full((audio.shape[0],), math.nan)
        clips = audio.detach().float().cpu().numpy()
        for i, clip in enumerate(clips):
            try:
                lo, hi = sound_bounds(
                    clip,
                    self.sample_rate,
                    self.threshold_db,
                    self.window_ms,
                    self.gap_ms,
                    self.floor_db,
                )
            except Reject:
                continue
            out[i] = (hi - lo) / self.sample_rate
        return out


def _bin(lengths: Tensor) -> Tensor:
    u = (lengths.double().clamp_min(1e-9).log2() - LOG2_LOW) / (LOG2_HIGH - LOG2_LOW)
    return (u * BINS).long().clamp(0, BINS - 1)


def histogram(lengths: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Counts [num_classes, BINS] of the lengths seen per class (NaN lengths skipped)."""
    counts = torch.zeros(num_classes, BINS)
    keep = ~lengths.isnan()
    flat = labels[keep].long() * BINS + _bin(lengths[keep])
    counts.view(-1).index_add_(0, flat, torch.ones(len(flat)))
    return counts


def quantiles(counts: Tensor, u: Tensor) -> Tensor | None:
    """The lengths in seconds at quantiles ``u`` [n] in [0, 1) of one class's histogram
    [BINS] (uniform in log length inside a bin); None when the class saw none."""
    c = counts.detach().double().cpu()
    total = float(c.sum())
    if total <= 0:
        return None
    edges = torch.cat([torch.zeros(1, dtype=torch.float64), c.cumsum(0)]) / total
    target = u.double().cpu().clamp(0.0, 1.0 - 1e-12)
    bins = (torch.searchsorted(edges, target, right=True) - 1).clamp(0, BINS - 1)
    lo, hi = edges[bins], edges[bins + 1]
    inside = ((target - lo) / (hi - lo).clamp_min(1e-12)).clamp(0.0, 1.0)
    v = (bins.double() + inside) / BINS
    return (2.0 ** (LOG2_LOW + v * (LOG2_HIGH - LOG2_LOW))).float()


def features(lengths: Tensor) -> Tensor:
    """Sine/cosine features [B, 2 * FREQS] of the log length (NaN rows stay NaN)."""
    u = lengths.float().clamp(2.0**LOG2_LOW, 2.0**LOG2_HIGH).log2()
    scale = math.pi / (LOG2_HIGH - LOG2_LOW) * 2.0 ** torch.arange(FREQS, device=u.device)
    angle = u[:, None] * scale[None]
    return torch.cat([angle.sin(), angle.cos()], dim=1)


def describe(counts: Tensor) -> str:
    """The median length of a histogram, in ms, for the model card and logs."""
    c = counts.detach().double().cpu().numpy()
    if c.sum() <= 0:
        return "none"
    mid = np.searchsorted(np.cumsum(c), c.sum() / 2)
    return f"{1000 * 2.0 ** (LOG2_LOW + (mid + 0.5) / BINS * (LOG2_HIGH - LOG2_LOW)):.0f} ms"
