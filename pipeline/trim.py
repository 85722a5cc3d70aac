"""trim: cut leading and trailing silence, keeping the attack whole.

The cut before the sound lands ``trim.preroll_ms`` ahead of the first sample that rises above
``trim.threshold_db`` below the peak, with a ``trim.fade_in_ms`` fade inside that pre-roll, so
the transient itself is never touched. The tail is cut ``trim.tail_ms`` after the last sample
above the threshold, with a ``trim.fade_out_ms`` fade.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import Reject
from pipeline.runner import Job, Output, Result


def _envelope(x: np.ndarray) -> np.ndarray:
    return np.max(np.abs(x), axis=0)


def sound_bounds(x: np.ndarray, threshold_db: float) -> tuple[int, int]:
    """First and one-past-last sample whose level is within ``threshold_db`` of the peak."""
    env = _envelope(x)
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
    """Trim ``[c, n]`` audio; the onset ends up exactly ``preroll_ms`` from the start."""
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


def process(jobs: list[Job], params: dict[str, Any]) -> list[Result]:
    p = params["trim"]
    results: list[Result] = []
    for job in jobs:
        assert job.audio is not None
        try:
            y = trim(
                job.audio,
                job.sr,
                float(p["threshold_db"]),
                float(p["preroll_ms"]),
                float(p["fade_in_ms"]),
                float(p["tail_ms"]),
                float(p["fade_out_ms"]),
            )
        except Reject as rej:
            results.append(rej)
            continue
        results.append([Output(f"{job.row['uid']}.wav", y, job.sr)])
    return results


def main(argv: list[str] | None = None) -> int:
    from pipeline import stage_cli

    return stage_cli.main("trim", process, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
