"""augment: keep every original and add ``augment.variants`` variants of it.

Which variants a clip gets is drawn by a RNG seeded from ``augment.seed`` and the clip's id,
so it never depends on chunking or core count, and the same input and settings always give
byte-identical files. The kinds:
``phase_flip`` (polarity inversion), ``pitch`` (pyrubberband, within
±``augment.pitch_semitones`` on a ``augment.pitch_step`` grid), ``saturate`` (tanh drive) and
``gain``. Variants never clip and keep the exact length of the original.

Pitch shifting dominates the cost, so only the ``pitch`` kind runs rubberband (about one run per
clip at 3 variants, against one per variant in a naive loop), and only over the sounding part
of the clip. Each clip gets its own run: batching several clips as channels of one run was
measured slower with rubberband 3.1 (its multi-channel mode costs more per channel than the
process start it saves) and made a clip's variant depend on its batch-mates.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import pyrubberband

from pipeline.runner import Job, Output, Result

KINDS = ("phase_flip", "pitch", "saturate", "gain")
PARAMETRIC = ("pitch", "saturate", "gain")


def stable_seed(text: str) -> int:
    """A seed from text that is the same in every process and Python run (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def plan_variants(key: str, n: int, aug: dict[str, Any]) -> list[tuple[str, float]]:
    """The ``n`` (kind, amount) pairs for one clip: distinct kinds first, repeats only if needed."""
    kinds = [k for k in aug["kinds"] if k in KINDS]
    if n and not kinds:
        raise ValueError(f"augment.kinds must name some of {', '.join(KINDS)}")
    rng = np.random.default_rng([int(aug["seed"]), stable_seed(key)])
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    extra = [k for k in kinds if k in PARAMETRIC] or kinds
    picks = order[:n] + [extra[i] for i in rng.integers(0, len(extra), max(0, n - len(order)))]
    plan: list[tuple[str, float]] = []
    for kind in picks:
        # A repeated (kind, amount) would give two variants one file name: draw again, and if
        # the kind has no distinct value left, write fewer variants rather than a duplicate.
        for _ in range(_DRAWS):
            variant = (kind, _amount(kind, rng, aug))
            if variant not in plan:
                plan.append(variant)
                break
    return plan


_DRAWS = 100


def _amount(kind: str, rng: np.random.Generator, aug: dict[str, Any]) -> float:
    if kind == "pitch":
        step = float(aug["pitch_step"])
        # floor, not round: every grid point must lie within ±pitch_semitones.
        steps = max(1, int(np.floor(float(aug["pitch_semitones"]) / step + 1e-9)))
        k = int(rng.integers(1, steps + 1)) * (1 if rng.random() < 0.5 else -1)
        return round(k * step, 4)
    if kind == "saturate":
        lo, hi = aug["saturation"]
        return round(float(rng.uniform(lo, hi)), 2)
    if kind == "gain":
        lo, hi = aug["gain_db"]
        return round(float(rng.uniform(lo, hi)), 2)
    return 0.0


def variant_name(kind: str, amount: float) -> str:
    """``phase_flip``, ``pitch_+1.50``, ``saturate_0.30``, ``gain_-3.00``."""
    if kind == "phase_flip":
        return kind
    if kind == "pitch":
        return f"pitch_{amount:+.2f}"
    return f"{kind}_{amount:.2f}"


def _peak(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


def limit(x: np.ndarray, ceiling: float = 1.0) -> np.ndarray:
    """Scale down (never up) so the peak is at most ``ceiling``."""
    p = _peak(x)
    return (x * (ceiling / p)).astype(np.float32) if p > ceiling else x.astype(np.float32)


def match_peak(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Give ``y`` the peak of ``ref``: a variant should differ in colour, not in level."""
    p = _peak(y)
    return y if p == 0 else (y * (_peak(ref) / p)).astype(np.float32)


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
    """Pitch-shift one ``[c, n]`` clip with rubberband; same length and peak as the input.

    rubberband's cost grows with length, so only the sounding part (plus ``tail_ms`` for the
    shifted sound to ring out, faded) is processed; the zero padding after it stays zero.

    The frequency ratio is rounded to 4 decimals (at most 0.1 cent off): rubberband's
    resampler is 2-15x slower on ratios without a short decimal form, such as 2**(1.5/12).
    """
    n = x.shape[1]
    tail = round(tail_ms * sr / 1000)
    m = min(n, sounding_length(x) + tail)
    if m == 0:
        return x.copy()
    # pyrubberband hands rubberband a 16-bit file; half level leaves room for the overshoot a
    # pitch shift adds to a transient, so nothing clips in there. match_peak restores the level.
    fast = 12.0 * math.log2(round(2.0 ** (semitones / 12.0), 4))
    y = pyrubberband.pitch_shift(0.5 * x[:, :m].T, sr, fast, rbargs=rbargs)
    y = np.atleast_2d(np.asarray(y, dtype=np.float32).T)[:, :m]
    if m < n:
        k = min(tail, m)
        y[:, m - k :] *= np.cos(np.linspace(0.0, np.pi / 2, k, dtype=np.float32)) ** 2
    y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return limit(match_peak(np.ascontiguousarray(y), x))


def rubberband_args(aug: dict[str, Any]) -> dict[str, str]:
    """``augment.rubberband_args`` (e.g. ``{"--crisp": "6"}``) as pyrubberband expects them."""
    return {str(k): str(v) for k, v in (aug.get("rubberband_args") or {}).items()}


def process(jobs: list[Job], params: dict[str, Any]) -> list[Result]:
    aug = params["augment"]
    n = int(aug["variants"])
    outputs: list[list[Output]] = []
    for job in jobs:
        x = job.audio
        assert x is not None
        base = f"{job.row['label']}/{job.row['uid']}"
        outs = [Output(f"{base}.wav", fields={"variant": "original"})]
        for kind, amount in plan_variants(job.row["uid"], n, aug):
            if kind == "phase_flip":
                y = phase_flip(x)
            elif kind == "pitch":
                y = pitch_shift(x, job.sr, amount, rubberband_args(aug))
            else:
                y = {"saturate": saturate, "gain": gain}[kind](x, amount)
            name = variant_name(kind, amount)
            outs.append(Output(f"{base}__{name}.wav", limit(y), job.sr, {"variant": name}))
        outputs.append(outs)
    return list(outputs)


def main(argv: list[str] | None = None) -> int:
    from pipeline import report, stage_cli

    return stage_cli.main("augment", process, __doc__, argv, after=report.write_report)


if __name__ == "__main__":
    raise SystemExit(main())
