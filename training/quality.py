"""How good generated one-shots are, as numbers that can be read against real drums.

Pure numpy/scipy: arrays in, figures out, no files, no model. Audio is mono float
``[samples]`` at one rate; embeddings are ``[n, d]``. Every figure here has a real-data
counterpart (evaluate.py computes both), because a distance means nothing alone:
- **distances** between sets of embeddings: Fréchet distance (Gaussian fit, as FAD) and the
  kernel distance (unbiased MMD² with a Gaussian kernel, as KAD), each with a bootstrap interval;
- **diversity**: the mean pairwise distance within a set;
- **envelope**: attack time, how far the level falls by 0.5-1 s, spectral centroid;
- **near-copies**: the highest onset-aligned normalized cross-correlation and log-mel
  similarity of a sound to any training sound;
- **validity**: NaN, silence, clipping, DC offset, a click at the start, length;
- **tone**: how far each frequency stands out of its neighbourhood in a hit's spectrum, so a
  narrow line that every generated sound carries and real ones do not can be found.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

EPS = 1e-12
DECAY_FLOOR_DB = -80.0  # a tail this far under the hit is silence: no lower figure means more
RING_DB = 40.0  # a hit rings until its 5 ms level stays this far under its loudest (trim's default)


# ----------------------------------------------------------------------------- distances


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings ``[n, d]``:
    ``|mu_a - mu_b|² + tr(C_a + C_b - 2 (C_a C_b)^½)``. With fewer samples than dimensions
    the covariances are singular; a tiny ridge keeps the square root defined."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu = a.mean(0) - b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    ridge = 1e-6 * np.eye(ca.shape[0])
    root = np.real(linalg.sqrtm((ca + ridge) @ (cb + ridge)))
    return float(max(0.0, mu @ mu + np.trace(ca + cb - 2.0 * root)))


def median_bandwidth(x: np.ndarray) -> float:
    """The median distance between distinct points of ``x`` (the usual kernel bandwidth)."""
    d = _pairwise(x, x)
    iu = np.triu_indices(len(x), 1)
    return float(np.median(d[iu])) if len(iu[0]) else 1.0


def kernel_distance(a: np.ndarray, b: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD² between two sets under a Gaussian kernel of ``bandwidth`` (KAD without
    its x1000 scale): 0 in expectation when both come from one distribution, whatever the
    sample sizes, and it may dip below 0 by chance."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m, n = len(a), len(b)
    if m < 2 or n < 2:
        return float("nan")
    g = -1.0 / (2.0 * bandwidth**2)
    kaa, kbb, kab = (np.exp(g * _pairwise(x, y) ** 2) for x, y in ((a, a), (b, b), (a, b)))
    return float(
        (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
        + (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
        - 2.0 * kab.mean()
    )


def bootstrap(
    fn: Callable[[np.ndarray, np.ndarray], float],
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    rounds: int = 100,
    level: float = 0.9,
) -> tuple[float, float]:
    """A ``level`` percentile interval of ``fn(a*, b)`` over resamples ``a*`` of ``a``."""
    values = [fn(a[rng.integers(0, len(a), len(a))], b) for _ in range(rounds)]
    lo, hi = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def diversity(x: np.ndarray) -> float:
    """Mean distance between distinct members of a set (0 for one sound copied)."""
    if len(x) < 2:
        return float("nan")
    d = _pairwise(x, x)
    return float(d[np.triu_indices(len(x), 1)].mean())


def _pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    sq = (x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2.0 * x @ y.T
    return np.sqrt(np.maximum(sq, 0.0))


# ----------------------------------------------------------------------------- envelope


def frame_db(x: np.ndarray, sr: int, frame_ms: float = 5.0) -> np.ndarray:
    """RMS level in dBFS of consecutive ``frame_ms`` frames."""
    n = max(1, round(frame_ms * sr / 1000))
    k = len(x) // n
    if k == 0:
        return np.array([-200.0])
    frames = x[: k * n].reshape(k, n).astype(np.float64)
    return 10.0 * np.log10(np.maximum((frames**2).mean(1), 1e-20))


def onset(x: np.ndarray, threshold_db: float = 40.0) -> int:
    """First sample within ``threshold_db`` of the clip's peak (0 for silence)."""
    a = np.abs(x)
    top = float(a.max()) if a.size else 0.0
    if top <= 0:
        return 0
    return int(np.flatnonzero(a >= top * 10 ** (-threshold_db / 20))[0])


def envelope(x: np.ndarray, sr: int) -> dict[str, float]:
    """attack_ms: from the onset to the loudest 5 ms frame; decay_db: the level at 0.5-1 s
    against the first 100 ms after the onset (negative: it falls; at most 80 dB, where the
    tail is silent whether it is digital silence or a whisper below hearing); ring_ms: from the
    onset to the end of the last 5 ms frame within ``RING_DB`` of the loudest (how long it
    rings: a closed hat that dies in 90 ms where real ones ring 200 reads the same decay_db,
    both silent by 0.5 s); centroid_hz: the spectral centroid of the first 100 ms (where a
    hit's colour is)."""
    x = np.asarray(x, np.float64)
    start = onset(x)
    db = frame_db(x[start:], sr)
    frame_s = 0.005
    attack_ms = float(np.argmax(db) * frame_s * 1000)
    ring_ms = float((np.flatnonzero(db >= db.max() - RING_DB)[-1] + 1) * frame_s * 1000)
    head = db[: max(1, round(0.1 / frame_s))]
    tail = db[round(0.5 / frame_s) : round(1.0 / frame_s)]
    head_db = 10 * np.log10(np.mean(10 ** (head / 10)))
    tail_db = 10 * np.log10(np.mean(10 ** (tail / 10))) if tail.size else -200.0
    seg = x[start : start + round(0.1 * sr)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) if len(seg) > 1 else np.zeros(1)
    freqs = np.fft.rfftfreq(max(len(seg), 1), 1 / sr)
    centroid = float((spec * freqs).sum() / max(spec.sum(), EPS))
    decay = max(float(tail_db - head_db), DECAY_FLOOR_DB)
    return {"attack_ms": attack_ms, "decay_db": decay, "ring_ms": ring_ms, "centroid_hz": centroid}


# ----------------------------------------------------------------------------- tone

TONE_S = 0.3  # seconds of the hit from its onset: where a line rings against the sound
TONE_FFT = 4096  # about 10.8 Hz per bin at 44.1 kHz: a line fills one or two bins
TONE_NEAR = 16  # bins either side whose median is the neighbourhood a line stands out of


def prominence(x: np.ndarray, sr: int) -> np.ndarray:
    """[TONE_FFT // 2 + 1] dB: how far each frequency of the hit's first ``TONE_S`` seconds
    (Hann frames of ``TONE_FFT`` hopping a quarter, power averaged) stands above the median of
    the ``TONE_NEAR`` bins either side. Broadband sound reads about 0 everywhere; a drum's own
    modes stand out at their own pitch, which varies from hit to hit, so averaged over a set
    they blur, where a line the generator puts at one frequency in every sound does not."""
    x = np.asarray(x, np.float64)
    seg = x[onset(x) :][: round(TONE_S * sr)]
    seg = np.pad(seg, (0, max(0, TONE_FFT - len(seg))))
    hop = TONE_FFT // 4
    starts = range(0, len(seg) - TONE_FFT + 1, hop)
    frames = np.stack([seg[i : i + TONE_FFT] for i in starts]) * np.hanning(TONE_FFT)
    db = 10 * np.log10(np.maximum((np.abs(np.fft.rfft(frames)) ** 2).mean(0), 1e-20))
    padded = np.pad(db, TONE_NEAR, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * TONE_NEAR + 1)
    return db - np.median(windows, axis=1)


# ----------------------------------------------------------------------------- validity


def validity(x: np.ndarray, length: int) -> dict[str, bool]:
    """What makes a file unusable whatever it sounds like. ``click``: the first millisecond-ish
    (32 samples) is not near silence, so the file starts with a step (a click on playback);
    ``dc``: the mean is off zero by more than 1 % of full scale."""
    x = np.asarray(x, np.float64)
    finite = bool(np.isfinite(x).all())
    y = np.nan_to_num(x)
    peak = float(np.abs(y).max()) if y.size else 0.0
    return {
        "nan": not finite,
        "silent": peak < 10 ** (-60 / 20),
        "clipped": int((np.abs(y) >= 0.999).sum()) > 2,
        "dc": abs(float(y.mean())) > 0.01 if y.size else False,
        "click": float(np.abs(y[:32]).max(initial=0.0)) > 0.1,
        "length": len(y) != length,
    }


# ----------------------------------------------------------------------------- near-copies


def aligned(x: np.ndarray, n: int) -> np.ndarray:
    """``n`` samples from the onset on (zero-padded): sounds compare from their attacks."""
    x = np.asarray(x, np.float64)
    seg = x[onset(x) :][:n]
    return np.pad(seg, (0, n - len(seg)))


def spectra(bank: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """FFTs and norms of onset-aligned clips ``[m, n]``, computed once for :func:`max_ncc`."""
    size = 1 << math.ceil(math.log2(2 * bank.shape[-1]))
    return np.fft.rfft(bank, size, axis=-1), np.linalg.norm(bank, axis=-1), size


def max_ncc(a: np.ndarray, bank: tuple[np.ndarray, np.ndarray, int], max_lag: int) -> np.ndarray:
    """Normalized cross-correlation of ``a`` [n] with each clip of ``bank`` (see
    :func:`spectra`) at lags of up to ``max_lag`` samples either way, the best lag per clip:
    1 for the same waveform at any level, about 0 for unrelated sounds."""
    fb, norms, size = bank
    cc = np.fft.irfft(fb * np.conj(np.fft.rfft(a, size))[None, :], size, axis=-1)
    lags = np.concatenate([cc[:, : max_lag + 1], cc[:, size - max_lag :]], axis=1)
    return np.abs(lags).max(axis=1) / np.maximum(norms * np.linalg.norm(a), EPS)


def cosine_rows(a: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Cosine similarity of a vector with each row of ``bank``."""
    a = a - a.mean()
    bank = bank - bank.mean(axis=1, keepdims=True)
    return (bank @ a) / np.maximum(np.linalg.norm(bank, axis=1) * np.linalg.norm(a), EPS)
