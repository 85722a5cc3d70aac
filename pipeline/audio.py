"""The audio maths of every stage: arrays in, arrays out.

scipy, soxr, pyloudnorm and pyrubberband are imported by the functions that need them, so a
stage loads only what it uses (a stage's start-up is part of every `dvc repro`).

Audio is float32 ``[channels, samples]``. Nothing here reads or writes a file, knows a stage,
the runner or params.yaml: the stage modules (``pipeline.stages.*``) read the settings and
hand plain values in, and ``training.sample`` brings a user's sound into the model's format
with :func:`conform`. An import-linter contract in pyproject.toml keeps it that way.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from core.errors import Reject

VARIANT_KINDS = ("phase_flip", "pitch", "saturate", "gain")
PARAMETRIC = ("pitch", "saturate", "gain")
_DRAWS = 100  # tries for a variant that is not a repeat


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
    from scipy.signal import butter, lfilter, lfilter_zi

    x = x - np.median(x, axis=1, keepdims=True)
    b, a = butter(2, cutoff_hz / (sr / 2), btype="highpass")
    zi = lfilter_zi(b, a)
    out = np.empty_like(x)
    for ch in range(x.shape[0]):
        out[ch], _ = lfilter(b, a, x[ch], zi=zi * x[ch, 0])
    return out.astype(np.float32)


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


def sound_bounds(x: np.ndarray, threshold_db: float) -> tuple[int, int]:
    """First and one-past-last sample whose level is within ``threshold_db`` of the peak."""
    env = np.max(np.abs(x), axis=0)
    top = float(env.max()) if env.size else 0.0
    if top == 0.0:
        raise Reject("silent", "no sample above zero")
    above = np.flatnonzero(env >= top * 10.0 ** (-threshold_db / 20.0))
    return int(above[0]), int(above[-1]) + 1


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
) -> np.ndarray:
    """Cut the silence before and after the sound of ``[c, n]`` audio; the onset ends up
    exactly ``preroll_ms`` from the start, the fade-in stays inside the pre-roll (so the
    transient is untouched), and the tail is cut ``tail_ms`` after the last loud sample."""
    onset, end = sound_bounds(x, threshold_db)
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


# ----------------------------------------------------------------------------- augment


def stable_seed(text: str) -> int:
    """A seed from text that is the same in every process and Python run (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def plan_variants(
    key: str,
    n: int,
    *,
    kinds: list[str],
    seed: int,
    pitch_semitones: float,
    pitch_step: float,
    saturation: tuple[float, float],
    gain_db: tuple[float, float],
) -> list[tuple[str, float]]:
    """The ``n`` (kind, amount) pairs for the clip ``key``: distinct kinds first, repeats only
    if needed, drawn from a generator seeded by ``seed`` and the key alone (so a clip's
    variants never depend on chunking, core count or the other clips)."""
    kinds = [k for k in kinds if k in VARIANT_KINDS]
    if n and not kinds:
        raise ValueError(f"variants need some of {', '.join(VARIANT_KINDS)}")
    rng = np.random.default_rng([seed, stable_seed(key)])
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    extra = [k for k in kinds if k in PARAMETRIC] or kinds
    picks = order[:n] + [extra[i] for i in rng.integers(0, len(extra), max(0, n - len(order)))]
    ranges = {"saturate": saturation, "gain": gain_db}
    plan: list[tuple[str, float]] = []
    for kind in picks:
        # A repeated (kind, amount) would give two variants one file name: draw again, and if
        # the kind has no distinct value left, write fewer variants rather than a duplicate.
        for _ in range(_DRAWS):
            variant = (kind, _amount(kind, rng, pitch_semitones, pitch_step, ranges))
            if variant not in plan:
                plan.append(variant)
                break
    return plan


def _amount(
    kind: str,
    rng: np.random.Generator,
    pitch_semitones: float,
    pitch_step: float,
    ranges: dict[str, tuple[float, float]],
) -> float:
    if kind == "pitch":
        # floor, not round: every grid point must lie within ±pitch_semitones.
        steps = max(1, int(np.floor(pitch_semitones / pitch_step + 1e-9)))
        k = int(rng.integers(1, steps + 1)) * (1 if rng.random() < 0.5 else -1)
        return round(k * pitch_step, 4)
    if kind in ranges:
        lo, hi = ranges[kind]
        return round(float(rng.uniform(lo, hi)), 2)
    return 0.0


def variant_name(kind: str, amount: float) -> str:
    """``phase_flip``, ``pitch_+1.50``, ``saturate_0.30``, ``gain_-3.00``."""
    if kind == "phase_flip":
        return kind
    if kind == "pitch":
        return f"pitch_{amount:+.2f}"
    return f"{kind}_{amount:.2f}"


def phase_flip(x: np.ndarray) -> np.ndarray:
    return (-x).astype(np.float32)


def saturate(x: np.ndarray, amount: float) -> np.ndarray:
    """tanh waveshaping with drive ``1 + 9·amount``, level-matched to the input."""
    drive = 1.0 + 9.0 * amount
    return match_peak(np.tanh(drive * x).astype(np.float32), x)


def gain(x: np.ndarray, db: float) -> np.ndarray:
    return limit(x * np.float32(10.0 ** (db / 20.0)))


def sounding_length(x: np.ndarray) -> int:
    """Samples up to the last non-zero one: what follows is the zero padding ``pad`` added."""
    nz = np.flatnonzero(np.any(x != 0, axis=0))
    return int(nz[-1]) + 1 if nz.size else 0


def pitch_shift(
    x: np.ndarray,
    sr: int,
    semitones: float,
    rbargs: dict[str, str] | None = None,
    tail_ms: float = 100.0,
) -> np.ndarray:
    """Pitch-shift one ``[c, n]`` clip with Rubber Band; same length and peak as the input.

    Rubber Band's cost grows with length, so only the sounding part (plus ``tail_ms`` for the
    shifted sound to ring out, faded) is processed; the zero padding after it stays zero.

    The frequency ratio is rounded to 4 decimals (at most 0.1 cent off): Rubber Band's
    resampler is 2-15x slower on ratios without a short decimal form, such as 2**(1.5/12).
    """
    import pyrubberband

    n = x.shape[1]
    tail = round(tail_ms * sr / 1000)
    m = min(n, sounding_length(x) + tail)
    if m == 0:
        return x.copy()
    # pyrubberband hands rubberband a 16-bit file; half level leaves room for the overshoot a
    # pitch shift adds to a transient, so nothing clips in there. match_peak restores the level.
    fast = 12.0 * math.log2(round(2.0 ** (semitones / 12.0), 4))
    # A copy: pyrubberband stores the shift in the dict it is given (setdefault "--pitch").
    y = pyrubberband.pitch_shift(0.5 * x[:, :m].T, sr, fast, rbargs=dict(rbargs or {}))
    y = np.atleast_2d(np.asarray(y, dtype=np.float32).T)[:, :m]
    if m < n:
        k = min(tail, m)
        y[:, m - k :] *= np.cos(np.linspace(0.0, np.pi / 2, k, dtype=np.float32)) ** 2
    y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return limit(match_peak(np.ascontiguousarray(y), x))


def variant(x: np.ndarray, sr: int, kind: str, amount: float, rbargs: dict[str, str]) -> np.ndarray:
    """One variant of a clip, never clipping, the clip's exact length."""
    if kind == "phase_flip":
        y = phase_flip(x)
    elif kind == "pitch":
        y = pitch_shift(x, sr, amount, rbargs)
    elif kind == "saturate":
        y = saturate(x, amount)
    else:
        y = gain(x, amount)
    return limit(y)
