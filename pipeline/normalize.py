"""normalize: resample, mix to the target channel count, remove DC, set the level.

Every clip leaves this stage at ``audio.sample_rate`` with ``audio.channels`` channels and a
peak of ``normalize.peak_db`` dBFS (or a loudness of ``normalize.lufs`` with ``mode: lufs``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyloudnorm
import soxr
from scipy.signal import butter, lfilter, lfilter_zi

from pipeline.errors import Reject
from pipeline.runner import Job, Output, Result


def db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def peak(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


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
    x = x - np.median(x, axis=1, keepdims=True)
    b, a = butter(2, cutoff_hz / (sr / 2), btype="highpass")
    zi = lfilter_zi(b, a)
    out = np.empty_like(x)
    for ch in range(x.shape[0]):
        out[ch], _ = lfilter(b, a, x[ch], zi=zi * x[ch, 0])
    return out.astype(np.float32)


def peak_normalize(x: np.ndarray, peak_db: float) -> np.ndarray:
    p = peak(x)
    return x if p == 0 else (x * (db_to_amp(peak_db) / p)).astype(np.float32)


def loudness_normalize(x: np.ndarray, sr: int, lufs: float, ceiling_db: float) -> np.ndarray:
    """ITU-R BS.1770 loudness to ``lufs``, never peaking above ``ceiling_db``.

    Clips shorter than one 400 ms gating block are measured zero-padded to one block.
    """
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
    x: np.ndarray, sr: int, audio: dict[str, Any], norm: dict[str, Any]
) -> tuple[np.ndarray, int]:
    """The whole stage on one clip: ``[c, n]`` at ``sr`` in, target layout and level out."""
    target_sr = int(audio["sample_rate"])
    y = mix_channels(x.astype(np.float32), int(audio["channels"]))
    # DC first, at the source rate: resampling a file that starts on an offset rings at the edge.
    y = remove_dc(y, sr, float(norm["dc_cutoff_hz"]))
    y = resample(y, sr, target_sr, str(norm.get("resample_quality", "VHQ")))
    level = 20 * np.log10(max(peak(y), 1e-12))
    if level < float(norm["silence_db"]):
        raise Reject("silent", f"peak {level:.1f} dBFS < normalize.silence_db {norm['silence_db']}")
    if norm["mode"] == "lufs":
        y = loudness_normalize(y, target_sr, float(norm["lufs"]), float(norm["peak_db"]))
    elif norm["mode"] == "peak":
        y = peak_normalize(y, float(norm["peak_db"]))
    else:
        raise ValueError(f"normalize.mode must be 'peak' or 'lufs', not {norm['mode']!r}")
    return y, target_sr


def process(jobs: list[Job], params: dict[str, Any]) -> list[Result]:
    results: list[Result] = []
    for job in jobs:
        assert job.audio is not None
        try:
            y, sr = normalize(job.audio, job.sr, params["audio"], params["normalize"])
        except Reject as rej:
            results.append(rej)
            continue
        results.append([Output(f"{job.row['uid']}.wav", y, sr)])
    return results


def main(argv: list[str] | None = None) -> int:
    from pipeline import stage_cli

    return stage_cli.main("normalize", process, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
