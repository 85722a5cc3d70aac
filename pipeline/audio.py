"""The audio maths of every stage but augment's (``pipeline.variants``): arrays in, arrays out.

scipy, soxr and pyloudnorm are imported by the functions that need them, so a stage loads only
what it uses (a stage's start-up is part of every `dvc repro`).

Audio is float32 ``[channels, samples]``. Nothing here reads or writes a file, knows a stage,
the runner or params.yaml: the stage modules (``pipeline.stages.*``) read the settings and
hand plain values in, and ``training.sample`` brings a user's sound into the model's format
with :func:`conform`. An import-linter contract in pyproject.toml keeps it that way.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import Reject

# ----------------------------------------------------------------------------- levels


def db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def peak(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


def peak_normalize(x: np.ndarray, peak_db: float) -> np.ndarray:
    p = peak(x)
    return x if p == 0 else (x * (db_to_amp(peak_db) / p)).astype(np.float32)


def limit(x: np.ndarray, ceiling: float = 1.0) -> np.ndarray:
    """Scale down (never up) so the peak is at most ``ceiling``."""
    p = peak(x)
    return (x * (ceiling / p)).astype(np.float32) if p > ceiling else x.astype(np.float32)


def match_peak(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Give ``y`` the peak of ``ref``: a variant should differ in colour, not in level."""
    p = peak(y)
    return y if p == 0 else (y * (peak(ref) / p)).astype(np.float32)


def peak_to(clips: np.ndarray, target: float | np.ndarray) -> np.ndarray:
    """Scale each clip of ``[n, C, N]`` so its peak is ``target`` (silent clips stay silent)."""
    peaks = np.abs(clips).reshape(len(clips), -1).max(axis=1)
    scale = np.where(peaks > 0, np.asarray(target) / np.maximum(peaks, 1e-12), 1.0)
    return (clips * scale[:, None, None]).astype(np.float32)


def no_clipping(clips: np.ndarray) -> np.ndarray:
    """Clips of ``[n, C, N]`` that would peak above full scale are scaled down to it, whole
    (never clipped)."""
    peaks = np.abs(clips).reshape(len(clips), -1).max(axis=1)
    return np.where((peaks > 1)[:, None, None], peak_to(clips, 1.0), clips).astype(np.float32)


# ----------------------------------------------------------------------------- normalize


def mix_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Mix ``[c, n]`` audio to ``channels``: average down to mono, duplicate mono up to stereo."""
    c = x.shape[0]
    if c == channels:
        return x
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    if c == 1:
        return np.repeat(x, channels, axis=0)
    # Any other layout: fold to mono first so no channel's content is dropped.
    return np.repeat(x.mean(axis=0, keepdims=True), channels, axis=0)


def resample(x: np.ndarray, sr_in: int, sr_out: int, quality: str = "VHQ") -> np.ndarray:
    """Band-limited resampling with soxr; a no-op when the rates already match."""
    if sr_in == sr_out:
        return x
    import soxr  # here: the stages that never resample do not load it

    y = soxr.resample(np.ascontiguousarray(x.T), sr_in, sr_out, quality=quality)
    return np.ascontiguousarray(np.atleast_2d(y.T if y.ndim == 2 else y[None, :]), dtype=np.float32)


def remove_dc(x: np.ndarray, sr: int, cutoff_hz: float) -> np.ndarray:
    """Subtract the median, then a causal 2nd-order high-pass started in steady state.

    In a one-shot most samples are near-silence, so the median is the constant offset itself;
    taking it out first leaves the silence at zero. The high-pass then removes slow drift; it is
    causal so nothing rings before the attack.
    """
    if cutoff_hz <= 0:
        return x
    from scipy.signal import butter, lfilter

    x = x - np.median(x, axis=1, keepdims=True)
    b, a = butter(2, cutoff_hz / (sr / 2), btype="highpass")
    zi = steady_state(b, a)
    out = np.empty_like(x)
    for ch in range(x.shape[0]):
        out[ch], _ = lfilter(b, a, x[ch], zi=zi * x[ch, 0])
    return out.astype(np.float32)


def steady_state(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The state of ``lfilter(b, a)`` after a constant 1 forever (``scipy.signal.lfilter_zi``),
    by its closed form in plain arithmetic. lfilter_zi solves a linear system with LAPACK, whose
    last bits depend on the BLAS kernel the CPU gets (OpenBLAS's Haswell vs SkylakeX kernels
    wrote different data from the same files): the data stages must not."""
    n = max(len(a), len(b))
    bs = [float(v) / float(a[0]) for v in b] + [0.0] * (n - len(b))
    as_ = [float(v) / float(a[0]) for v in a] + [0.0] * (n - len(a))
    zi = [0.0] * (n - 1)
    if n > 1:
        zi[0] = math.fsum(bs[k] - as_[k] * bs[0] for k in range(1, n)) / math.fsum(as_)
    asum, csum = 1.0, 0.0
    for k in range(1, n - 1):
        asum += as_[k]
        csum += bs[k] - as_[k] * bs[0]
        zi[k] = asum * zi[0] - csum
    return np.array(zi)


def loudness_normalize(x: np.ndarray, sr: int, lufs: float, ceiling_db: float) -> np.ndarray:
    """ITU-R BS.1770 loudness to ``lufs``, never peaking above ``ceiling_db``.

    Clips shorter than one 400 ms gating block are measured zero-padded to one block.
    """
    import pyloudnorm

    block = int(0.4 * sr)
    data = x.T.astype(np.float64)
    if data.shape[0] < block:
        data = np.pad(data, ((0, block - data.shape[0]), (0, 0)))
    loudness = pyloudnorm.Meter(sr).integrated_loudness(data)
    if not np.isfinite(loudness):
        return peak_normalize(x, ceiling_db)
    y = x * db_to_amp(lufs - loudness)
    ceiling = db_to_amp(ceiling_db)
    if peak(y) > ceiling:
        y = y * (ceiling / peak(y))
    return y.astype(np.float32)


def normalize(
    x: np.ndarray,
    sr: int,
    *,
    sample_rate: int,
    channels: int,
    dc_cutoff_hz: float,
    resample_quality: str,
    silence_db: float,
    mode: str,
    peak_db: float,
    lufs: float,
) -> tuple[np.ndarray, int]:
    """The ``normalize`` stage on one clip: ``[c, n]`` at ``sr`` in, ``channels`` channels at
    ``sample_rate`` with its peak (``mode`` peak) or loudness (``mode`` lufs) set out.
    A clip whose peak stays below ``silence_db`` is refused as silent."""
    y = mix_channels(x.astype(np.float32), channels)
    # DC first, at the source rate: resampling a file that starts on an offset rings at the edge.
    y = remove_dc(y, sr, dc_cutoff_hz)
    y = resample(y, sr, sample_rate, resample_quality)
    level = 20 * np.log10(max(peak(y), 1e-12))
    if level < silence_db:
        raise Reject("silent", f"peak {level:.1f} dBFS < normalize.silence_db {silence_db:g}")
    if mode == "lufs":
        return loudness_normalize(y, sample_rate, lufs, peak_db), sample_rate
    return peak_normalize(y, peak_db), sample_rate


# ----------------------------------------------------------------------------- trim and pad


def sound_bounds(
    x: np.ndarray, sr: int, threshold_db: float, window_ms: float, gap_ms: float, floor_db: float
) -> tuple[int, int]:
    """First and one-past-last sample of the hit: within ``threshold_db`` of the peak, inside
    the stretch of sound that holds the loudest moment.

    The stretch is found on a short-time energy envelope (RMS over ``window_ms``, every
    millisecond): sound is where the energy is within ``threshold_db`` of its maximum, and two
    stretches of sound closer than ``gap_ms`` are one (a clap's bursts). So an isolated click
    separated from the hit by silence is not the onset, and a noise floor whose peaks reach the
    threshold (its energy lies well below them) does not keep the whole tail. A clip that ends
    on a steady floor (hiss, hum, a generated sound's residue) whose energy reaches the
    threshold would still keep it all: when the last 0.3 s are flat (see :func:`tail_floor`),
    the hit ends where its energy comes within ``floor_db`` of that floor (0 = off). Inside
    the stretch the bounds are exact samples, so the attack is never cut.
    """
    env = np.max(np.abs(x), axis=0)
    top = float(env.max()) if env.size else 0.0
    if top == 0.0:
        raise Reject("silent", "no sample above zero")
    lo, hi = _hit_span(
        np.mean(x.astype(np.float64) ** 2, axis=0), sr, threshold_db, window_ms, gap_ms, floor_db
    )
    above = np.flatnonzero(env[lo:hi] >= top * 10.0 ** (-threshold_db / 20.0))
    if not above.size:  # the loudest sample lies elsewhere than the most energy: keep it all
        above = np.flatnonzero(env >= top * 10.0 ** (-threshold_db / 20.0))
        lo = 0
    return lo + int(above[0]), lo + int(above[-1]) + 1


def _hit_span(
    power: np.ndarray,
    sr: int,
    threshold_db: float,
    window_ms: float,
    gap_ms: float,
    floor_db: float,
) -> tuple[int, int]:
    """Sample range of the stretch of sound around the energy peak (see sound_bounds)."""
    hop = max(1, round(sr / 1000))
    win = max(hop, round(window_ms * sr / 1000))
    csum = np.concatenate([[0.0], np.cumsum(power)])
    last_start = max(0, len(power) - win)
    starts = np.unique(np.append(np.arange(0, last_start + 1, hop), last_start))
    ends = np.minimum(starts + win, len(power))
    energy = (csum[ends] - csum[starts]) / np.maximum(ends - starts, 1)
    level = energy.max() * 10.0 ** (-threshold_db / 10.0)
    loud = energy >= level
    gap = max(1, round(gap_ms / (1000 * hop / sr)))
    peak = int(np.argmax(energy))
    floor = tail_floor(energy, 1000 * hop / sr) if floor_db > 0 else 0.0
    floor_level = floor * 10.0 ** (floor_db / 10.0)
    if floor_level > level:  # after the peak, the floor is not the hit
        loud = np.concatenate([loud[:peak], energy[peak:] >= floor_level])
    first = last = peak
    quiet = 0
    for i in range(peak - 1, -1, -1):  # back from the peak until gap_ms of silence
        quiet = 0 if loud[i] else quiet + 1
        if quiet >= gap:
            break
        if loud[i]:
            first = i
    quiet = 0
    for i in range(peak + 1, len(loud)):
        quiet = 0 if loud[i] else quiet + 1
        if quiet >= gap:
            break
        if loud[i]:
            last = i
    # A window's energy is an average: a single sample near its edges may still cross the
    # threshold, so the stretch reaches one window further either way.
    return max(0, int(starts[first]) - win), min(len(power), int(ends[last]) + win)


FLOOR_BLOCK_MS = 100.0  # a tail's level is the median energy of a block this long
FLAT_DB = 2.0  # a tail whose last three blocks differ by less is a floor, not a decay
FLOOR_UNDER_DB = 20.0  # and only a floor this far under the loudest moment is cut


def tail_floor(energy: np.ndarray, hop_ms: float) -> float:
    """The energy of the steady floor a clip ends on, 0 when it ends otherwise: the median of
    its last ``FLOOR_BLOCK_MS``, when neither block before it is ``FLAT_DB`` louder (a decay
    of 10 dB/s or faster is the hit's own tail, never cut) and it lies ``FLOOR_UNDER_DB``
    under the loudest moment (a sustained sound is not a floor)."""
    k = max(1, round(FLOOR_BLOCK_MS / hop_ms))
    if len(energy) < 3 * k:
        return 0.0
    last, before, earlier = (
        float(np.median(energy[len(energy) - (i + 1) * k : len(energy) - i * k])) for i in range(3)
    )
    flat = max(before, earlier) <= last * 10.0 ** (FLAT_DB / 10.0)
    deep = last <= energy.max() * 10.0 ** (-FLOOR_UNDER_DB / 10.0)
    return last if last > 0 and flat and deep else 0.0


def fade(n: int, rising: bool) -> np.ndarray:
    """Half-cosine ramp of ``n`` samples: smooth at both ends, so the cut makes no click."""
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float64))
    return (ramp if rising else ramp[::-1]).astype(np.float32)


def trim(
    x: np.ndarray,
    sr: int,
    threshold_db: float,
    preroll_ms: float,
    fade_in_ms: float,
    tail_ms: float,
    fade_out_ms: float,
    window_ms: float,
    gap_ms: float,
    floor_db: float,
) -> np.ndarray:
    """Cut the silence before and after the hit of ``[c, n]`` audio (see sound_bounds); the
    onset ends up exactly ``preroll_ms`` from the start, the fade-in stays inside the pre-roll
    (so the transient is untouched), and the tail is cut ``tail_ms`` after the last loud
    sample of the hit."""
    onset, end = sound_bounds(x, sr, threshold_db, window_ms, gap_ms, floor_db)
    start = max(0, onset - round(preroll_ms * sr / 1000))
    stop = min(x.shape[1], end + round(tail_ms * sr / 1000))
    y = x[:, start:stop].copy()
    if start > 0:
        # The fade stays inside the pre-roll, which is below the threshold by construction.
        n = min(round(fade_in_ms * sr / 1000), onset - start)
        if n > 0:
            y[:, :n] *= fade(n, rising=True)
    if stop < x.shape[1]:
        n = min(round(fade_out_ms * sr / 1000), stop - end)
        if n > 0:
            y[:, -n:] *= fade(n, rising=False)
    return y


def fix_length(x: np.ndarray, n: int, sr: int, fade_out_ms: float) -> np.ndarray:
    """``[c, m]`` in, ``[c, n]`` out: zero-pad the end, or crop it with a fade-out (the start,
    where the attack is, is never cut)."""
    m = x.shape[1]
    if m <= n:
        return np.pad(x, ((0, 0), (0, n - m))).astype(np.float32)
    y = x[:, :n].copy()
    k = min(n, round(fade_out_ms * sr / 1000))
    if k > 0:
        y[:, -k:] *= fade(k, rising=False)
    return y


def conform(
    x: np.ndarray,
    sr: int,
    *,
    sample_rate: int,
    channels: int,
    length: int,
    quality: str,
    fade_out_ms: float,
) -> np.ndarray:
    """Any clip in a model's format: channels mixed, resampled (soxr, as ``normalize``) and
    padded or cut (with ``pad``'s fade) to ``length`` samples at ``sample_rate``."""
    y = resample(mix_channels(x, channels), sr, sample_rate, quality)
    return fix_length(y, length, sample_rate, fade_out_ms)
