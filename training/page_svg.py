"""The listening page's drawings as inline SVG: the map of real and generated sounds and the
training curves. Inline, so the page opens from disk with no script library and no network
(`dvc plots show` loads Vega from a CDN and draws blank offline); coordinates are rounded so
the same inputs give the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

# Okabe-Ito: tells classes apart for colour-blind eyes too.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#999933", "#000000"]
MAP_W, MAP_H, MAP_PAD = 1000, 540, 20
CHART_W, CHART_H = 540, 200
SMOOTH_FROM = 50  # points from which a curve is drawn smoothed over its faint raw line
CHART_POINTS = 400  # longer curves are drawn as this many buckets (mean line, min-max band)


@dataclass(frozen=True)
class Point:
    """One sound on the map: its 2-D position, class, whether it is generated, the id of the
    <audio> element that plays it, and its tooltip."""

    x: float
    y: float
    cls: str
    generated: bool
    audio: str
    label: str


def colour(classes: list[str], cls: str) -> str:
    return PALETTE[classes.index(cls) % len(PALETTE)] if cls in classes else "#666666"


def _fit(xy: np.ndarray, width: float, height: float, pad: float) -> np.ndarray:
    """Scale points into the box, the same scale on both axes (a t-SNE map has no units but
    its distances are meant the same way across and up)."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    scale = min((width - 2 * pad) / span[0], (height - 2 * pad) / span[1])
    centre = (lo + hi) / 2
    out = (xy - centre) * scale
    out[:, 0] += width / 2
    out[:, 1] = height / 2 - out[:, 1]
    return out


def _n(x: float) -> str:
    """A coordinate: one decimal, no trailing zeros (small, stable bytes)."""
    s = f"{x:.1f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def map_svg(points: list[Point], classes: list[str]) -> str:
    """The scatter of real (faint circles) and generated (outlined diamonds) sounds; each mark
    names the <audio> element it plays (the page's script does the playing)."""
    if not points:
        return ""
    xy = _fit(np.array([[p.x, p.y] for p in points], float), MAP_W, MAP_H, MAP_PAD)
    marks = []
    order = sorted(range(len(points)), key=lambda i: points[i].generated)  # generated on top
    for i in order:
        p, (x, y) = points[i], xy[i]
        c = colour(classes, p.cls)
        common = (
            f'class="pt {"gen" if p.generated else "real"}" data-audio="{escape(p.audio)}" '
            f'data-x="{_n(x)}" data-y="{_n(y)}" tabindex="0" role="button" '
            f'aria-label="{escape(p.label)}"'
        )
        if p.generated:
            d = f"M{_n(x)} {_n(y - 7)}l7 7l-7 7l-7-7z"
            marks.append(
                f'<path {common} d="{d}" fill="{c}"><title>{escape(p.label)}</title></path>'
            )
        else:
            marks.append(
                f'<circle {common} cx="{_n(x)}" cy="{_n(y)}" r="4.5" fill="{c}">'
                f"<title>{escape(p.label)}</title></circle>"
            )
    ring = '<circle id="ring" r="12" cx="0" cy="0" visibility="hidden"/>'
    return (
        f'<svg class="map" viewBox="0 0 {MAP_W} {MAP_H}" width="{MAP_W}" height="{MAP_H}" '
        f'role="img" aria-label="map of real and generated sounds">'
        f'<rect width="{MAP_W}" height="{MAP_H}" class="bg"/>{"".join(marks)}{ring}</svg>'
    )


def map_legend(classes: list[str]) -> str:
    """Which colour is which class, which mark is real and which generated."""
    items = [
        f'<span><svg width="12" height="12"><circle cx="6" cy="6" r="5" '
        f'fill="{colour(classes, c)}"/></svg>{escape(c)}</span>'
        for c in classes
    ]
    items.append(
        '<span><svg width="14" height="14"><circle class="real" cx="7" cy="7" r="4.5" '
        'fill="#888"/></svg>real (training originals)</span>'
    )
    items.append(
        '<span><svg width="16" height="16"><path class="gen" d="M8 1l7 7l-7 7l-7-7z" '
        'fill="#888"/></svg>generated</span>'
    )
    return f'<div class="legend">{"".join(items)}</div>'


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.4g}"


def _buckets(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean, min and max of ``y`` in CHART_POINTS consecutive buckets of a long curve."""
    if len(x) <= CHART_POINTS:
        return x, y, y, y
    edges = np.linspace(0, len(x), CHART_POINTS + 1).astype(int)
    parts = [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
    mean = np.array([y[s].mean() for s in parts])
    return (
        np.array([x[s].mean() for s in parts]),
        mean,
        np.array([y[s].min() for s in parts]),
        np.array([y[s].max() for s in parts]),
    )


def smooth(y: np.ndarray) -> np.ndarray:
    """A centred moving average over 1/25 of the curve (shorter at the ends)."""
    k = max(3, len(y) // 25) | 1
    kernel = np.ones(k)
    return np.convolve(y, kernel, "same") / np.convolve(np.ones_like(y), kernel, "same")


def chart_svg(title: str, steps: np.ndarray, values: np.ndarray) -> str:
    """A line chart of one logged curve against the training step (a band shows the spread
    where many steps share a pixel)."""
    keep = np.isfinite(values)
    steps, values = np.asarray(steps, float)[keep], np.asarray(values, float)[keep]
    if len(steps) == 0:
        return ""
    x, mean, low, high = _buckets(steps, values)
    left, right, top, bottom = 54, 12, 26, 28
    w, h = CHART_W - left - right, CHART_H - top - bottom
    x0, x1 = float(x.min()), float(x.max()) if x.max() > x.min() else float(x.min()) + 1
    y0, y1 = float(low.min()), float(high.max())
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def sx(v: np.ndarray | float) -> np.ndarray:
        return left + (np.asarray(v) - x0) / (x1 - x0) * w

    def sy(v: np.ndarray | float) -> np.ndarray:
        return top + h - (np.asarray(v) - y0) / (y1 - y0) * h

    def path(xs: np.ndarray, ys: np.ndarray) -> str:
        return " ".join(f"{_n(a)},{_n(b)}" for a, b in zip(sx(xs), sy(ys), strict=True))

    parts = [f'<text x="{left}" y="16" class="title">{escape(title)}</text>']
    for t in _ticks(y0, y1):
        yy = _n(float(sy(t)))
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{yy}" y2="{yy}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy}" class="yt">{_label(t)}</text>')
    for t in _ticks(x0, x1):
        parts.append(
            f'<text x="{_n(float(sx(t)))}" y="{CHART_H - 8}" class="xt">{_label(t)}</text>'
        )
    if high is not low:
        band = path(x, high) + " " + path(x[::-1], low[::-1])
        parts.append(f'<polygon points="{band}" class="band"/>')
    if len(x) >= SMOOTH_FROM:  # a noisy curve: faint as logged, bold smoothed
        parts.append(f'<polyline points="{path(x, mean)}" class="raw"/>')
        mean = smooth(mean)
    parts.append(f'<polyline points="{path(x, mean)}" class="line"/>')
    if len(x) == 1:
        parts.append(
            f'<circle cx="{_n(float(sx(x[0])))}" cy="{_n(float(sy(mean[0])))}" r="3" class="dot"/>'
        )
    return (
        f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" width="{CHART_W}" '
        f'height="{CHART_H}" role="img" aria-label="{escape(title)}">{"".join(parts)}</svg>'
    )
