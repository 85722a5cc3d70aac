"""pad: make every clip exactly ``audio.duration`` seconds long.

Short clips get zeros after the sound; long ones are cut at the end with a
``pad.fade_out_ms`` fade. The start, where the attack is, is never cut.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.runner import Job, Output, Result
from pipeline.trim import fade


def fix_length(x: np.ndarray, n: int, sr: int, fade_out_ms: float) -> np.ndarray:
    """``[c, m]`` in, ``[c, n]`` out: zero-pad the end, or crop it with a fade-out."""
    m = x.shape[1]
    if m <= n:
        return np.pad(x, ((0, 0), (0, n - m))).astype(np.float32)
    y = x[:, :n].copy()
    k = min(n, round(fade_out_ms * sr / 1000))
    if k > 0:
        y[:, -k:] *= fade(k, rising=False)
    return y


def target_samples(audio: dict[str, Any]) -> int:
    return round(float(audio["duration"]) * int(audio["sample_rate"]))


def process(jobs: list[Job], params: dict[str, Any]) -> list[Result]:
    n = target_samples(params["audio"])
    fade_ms = float(params["pad"]["fade_out_ms"])
    return [
        [Output(f"{job.row['uid']}.wav", fix_length(job.audio, n, job.sr, fade_ms), job.sr)]
        for job in jobs
        if job.audio is not None
    ]


def main(argv: list[str] | None = None) -> int:
    from pipeline import stage_cli

    return stage_cli.main("pad", process, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
