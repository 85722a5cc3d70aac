"""The augment stage's maths: seeded variant plans and the variants themselves, arrays in,
arrays out (as ``pipeline.audio``, which holds every other stage's maths; an import-linter
contract in pyproject.toml keeps both free of files, stages and settings).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

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


PITCH_ENGINES = ("resample", "pedalboard", "rubberband")

# Rubber Band option flags of the `rubberband` CLI (3.x) as pedalboard.time_stretch keywords, so
# both engines run the same stretcher. The CLI's own defaults: the R2 ("faster") engine unless
# -3, formants shifted unless -F, standard window, crisp transients, compound detector, phase
# lamination. pedalboard's defaults differ (R3 and formants preserved), hence _PB_DEFAULTS.
_PB_DEFAULTS: dict[str, Any] = {
    "high_quality": False,  # OptionEngineFaster (R2), the CLI's default; True = R3 (-3)
    "transient_mode": "crisp",
    "transient_detector": "compound",
    "retain_phase_continuity": True,
    "use_long_fft_window": None,
    "use_time_domain_smoothing": False,
    "preserve_formants": False,
}
_PB_FLAGS: dict[str, dict[str, Any]] = {
    "-2": {"high_quality": False},
    "--fast": {"high_quality": False},
    "-3": {"high_quality": True},
    "--fine": {"high_quality": True},
    "-F": {"preserve_formants": True},
    "--formant": {"preserve_formants": True},
    "--no-transients": {"transient_mode": "smooth"},
    "--bl-transients": {"transient_mode": "mixed"},
    "--no-lamination": {"retain_phase_continuity": False},
    "--smoothing": {"use_time_domain_smoothing": True},
    "--detector-perc": {"transient_detector": "percussive"},
    "--detector-soft": {"transient_detector": "soft"},
    "--window-long": {"use_long_fft_window": True},
    "--window-short": {"use_long_fft_window": False},
    # no effect on an offline shift's samples (threads, RT-only pitch mode, clip restarts)
    **{k: {} for k in ("--no-threads", "--threads", "--pitch-hq", "--ignore-clipping")},
    **{k: {} for k in ("-q", "--quiet", "-P", "--precise", "-L", "--loose")},
}
# `rubberband --full-help`, "Crispness levels"; like the CLI, -c overrides the flags above.
_NO_LAM, _LONG, _SHORT = (
    {"retain_phase_continuity": False},
    {"use_long_fft_window": True},
    {"use_long_fft_window": False},
)
_CRISP: dict[int, dict[str, Any]] = {
    0: {"transient_mode": "smooth", **_NO_LAM, **_LONG},
    1: {"transient_mode": "crisp", "transient_detector": "soft", **_NO_LAM, **_LONG},
    2: {"transient_mode": "smooth", **_NO_LAM},
    3: {"transient_mode": "smooth"},
    4: {"transient_mode": "mixed"},
    5: {},
    6: {"transient_mode": "crisp", **_NO_LAM, **_SHORT},  # "may be good for drums"
}
_CRISP_KEYS = ("-c", "--crisp")
_TOGETHER = "--centre-focus"  # the CLI's channels-together mode; pedalboard's only one


def pedalboard_options(rbargs: Mapping[str, str] | None) -> tuple[dict[str, Any], bool]:
    """``augment.rubberband_args`` as ``pedalboard.time_stretch`` keywords, and whether the
    channels are processed together (``--centre-focus``; else one by one, as the CLI does).

    Raises ``ValueError`` naming an option that has no pedalboard equivalent, so a setting
    is never silently ignored."""
    opts = dict(_PB_DEFAULTS)
    crisp: dict[str, Any] = {}
    for key, value in (rbargs or {}).items():
        if key in _CRISP_KEYS:
            level = int(value) if str(value).strip().lstrip("-").isdigit() else -1
            if level not in _CRISP:
                raise ValueError(f"rubberband_args {key}: crispness is 0-6, got {value!r}")
            crisp = _CRISP[level]
        elif key in _PB_FLAGS:
            opts.update(_PB_FLAGS[key])
        elif key != _TOGETHER:
            known = ", ".join([*_CRISP_KEYS, *_PB_FLAGS, _TOGETHER])
            raise ValueError(
                f"rubberband_args {key} has no pedalboard equivalent (pitch_engine: pedalboard "
                f"takes {known}); use pitch_engine: rubberband or drop it"
            )
    opts.update(crisp)
    return opts, _TOGETHER in (rbargs or {})


def _fit(y: np.ndarray, m: int) -> np.ndarray:
    """``[c, *]`` float32 cut or zero-padded to ``m`` samples."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float32))[:, :m]
    return np.pad(y, ((0, 0), (0, m - y.shape[1])))


def _shift_pedalboard(
    x: np.ndarray, sr: int, semitones: float, rbargs: dict[str, str]
) -> np.ndarray:
    """Rubber Band in process (pedalboard's build of it): no file, no process start."""
    import pedalboard

    opts, together = pedalboard_options(rbargs)

    def run(a: np.ndarray) -> np.ndarray:
        y = pedalboard.time_stretch(
            np.ascontiguousarray(a, dtype=np.float32), float(sr), 1.0, semitones, **opts
        )
        return _fit(y, a.shape[1])

    if together or x.shape[0] == 1:
        return run(x)
    return np.concatenate([run(x[c : c + 1]) for c in range(x.shape[0])])


def _shift_cli(x: np.ndarray, sr: int, semitones: float, rbargs: dict[str, str]) -> np.ndarray:
    """The `rubberband` CLI through pyrubberband: one process and two WAV files per shift."""
    import pyrubberband

    # pyrubberband hands rubberband a 16-bit file; half level leaves room for the overshoot a
    # pitch shift adds to a transient, so nothing clips in there. match_peak restores the level.
    # A copy: pyrubberband stores the shift in the dict it is given (setdefault "--pitch").
    y = pyrubberband.pitch_shift(0.5 * x.T, sr, semitones, rbargs=dict(rbargs))
    return _fit(np.asarray(y, dtype=np.float32).T, x.shape[1])


def _shift_resample(x: np.ndarray, sr: int, semitones: float, rbargs: dict[str, str]) -> np.ndarray:
    """A sampler's repitch: the clip played ``2 ** (semitones / 12)`` times as fast (soxr), so
    it also gets that much shorter or longer, as a drum tuned on an MPC or in any sampler does.
    No phase vocoder, so the attack is not smeared; Rubber Band's options do not apply."""
    import soxr

    ratio = 2.0 ** (semitones / 12.0)
    y = soxr.resample(np.ascontiguousarray(x.T, dtype=np.float32), sr, sr / ratio, "VHQ")
    return _fit(np.asarray(y).T, x.shape[1])


def pitch_shift(
    x: np.ndarray,
    sr: int,
    semitones: float,
    rbargs: dict[str, str] | None = None,
    *,
    engine: str,
    tail_ms: float = 100.0,
) -> np.ndarray:
    """Pitch-shift one ``[c, n]`` clip; same length and peak as the input.

    ``engine``: ``resample`` (a sampler's repitch, in process: the hit gets shorter as it goes
    up, see :func:`_shift_resample`), or Rubber Band, which keeps the hit's length:
    ``pedalboard`` (in process) or ``rubberband`` (the CLI), both its R2 engine with the
    options ``rbargs`` gives (see :func:`pedalboard_options`).

    Rubber Band's cost grows with length, so only the sounding part (plus ``tail_ms`` for the
    shifted sound to ring out, faded) is processed; the zero padding after it stays zero.

    The frequency ratio is rounded to 3 decimals (at most 0.9 cent off): Rubber Band's
    resampler builds a filter per phase of the ratio's fraction, so 2**(1.5/12) costs about
    30x, and 4 decimals (a denominator of 10,000) 1.5-3x, what 3 decimals cost (measured with
    pedalboard's build on 0.5 s clips; issue 14).
    """
    if engine not in PITCH_ENGINES:
        raise ValueError(f"pitch engine must be one of {', '.join(PITCH_ENGINES)}, got {engine!r}")
    n = x.shape[1]
    tail = round(tail_ms * sr / 1000)
    m = min(n, sounding_length(x) + tail)
    if m == 0:
        return x.copy()
    fast = 12.0 * math.log2(round(2.0 ** (semitones / 12.0), 3))
    shift = {"resample": _shift_resample, "pedalboard": _shift_pedalboard}.get(engine, _shift_cli)
    y = shift(x[:, :m], sr, fast, dict(rbargs or {}))
    if m < n:
        k = min(tail, m)
        y[:, m - k :] *= np.cos(np.linspace(0.0, np.pi / 2, k, dtype=np.float32)) ** 2
    y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return limit(match_peak(np.ascontiguousarray(y), x))


def variant(
    x: np.ndarray,
    sr: int,
    kind: str,
    amount: float,
    rbargs: dict[str, str],
    engine: str,
) -> np.ndarray:
    """One variant of a clip, never clipping, the clip's exact length."""
    if kind == "phase_flip":
        y = phase_flip(x)
    elif kind == "pitch":
        y = pitch_shift(x, sr, amount, rbargs, engine=engine)
    elif kind == "saturate":
        y = saturate(x, amount)
    else:
        y = gain(x, amount)
    return limit(y)
