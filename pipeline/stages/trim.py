"""trim: cut leading and trailing silence, keeping the attack whole.

The hit is the stretch of sound around the loudest moment on a short-time energy envelope
(``trim.window_ms``; silences shorter than ``trim.gap_ms`` belong to it), so a click before it
or a noise floor after it does not count. The cut before the sound lands ``trim.preroll_ms``
ahead of the hit's first sample within ``trim.threshold_db`` of the peak, with a
``trim.fade_in_ms`` fade inside that pre-roll, so the transient itself is never touched. The
tail is cut ``trim.tail_ms`` after the hit's last sample above the threshold, with a
``trim.fade_out_ms`` fade; a clip that ends on a steady noise floor ends where the sound comes
within ``trim.floor_db`` of it.
"""

from __future__ import annotations

from core.errors import Reject
from core.params import Params
from pipeline import audio
from pipeline.command import Command, run_command
from pipeline.runner import Job, Output, Result


def process(jobs: list[Job], params: Params) -> list[Result]:
    p = params.trim
    results: list[Result] = []
    for job in jobs:
        assert job.audio is not None
        try:
            y = audio.trim(
                job.audio,
                job.sr,
                p.threshold_db,
                p.preroll_ms,
                p.fade_in_ms,
                p.tail_ms,
                p.fade_out_ms,
                p.window_ms,
                p.gap_ms,
                p.floor_db,
            )
        except Reject as rej:
            results.append(rej)
            continue
        results.append([Output(f"{job.row['uid']}.wav", y, job.sr)])
    return results


COMMAND = Command("trim", __doc__, process)


def main(argv: list[str] | None = None) -> int:
    return run_command(COMMAND, argv)


if __name__ == "__main__":
    raise SystemExit(main())
