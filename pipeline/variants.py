"""The augment stage's maths: seeded variant plans and the variants themselves, arrays in,
arrays out (as ``pipeline.audio``, which holds every other stage's maths; an import-linter
contract in pyproject.toml keeps both free of files, stages and settings).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from pipeline.audio import limit, match_peak

VARIANT_KINDS = ("phase_flip", "pitch", "saturate", "gain")
PARAMETRIC = ("pitch", "saturate", "gain")
_DRAWS = 100  # tries for a variant that is not a repeat


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
