"""pad: make every clip exactly ``audio.duration`` seconds long.

Short clips get zeros after the sound; long ones are cut at the end with a
``pad.fade_out_ms`` fade. The start, where the attack is, is never cut.
"""

from __future__ import annotations

from core.params import Params
from pipeline import audio
from pipeline.command import Command, run_command
from pipeline.runner import Job, Output, Result


def clip_samples(params: Params) -> int:
    """Samples of every clip from this stage on."""
    return round(params.audio.duration * params.audio.sample_rate)


def process(jobs: list[Job], params: Params) -> list[Result]:
    n = clip_samples(params)
    fade_ms = params.pad.fade_out_ms
    return [
        [Output(f"{job.row['uid']}.wav", audio.fix_length(job.audio, n, job.sr, fade_ms), job.sr)]
        for job in jobs
        if job.audio is not None
    ]


COMMAND = Command("pad", __doc__, process)


def main(argv: list[str] | None = None) -> int:
    return run_command(COMMAND, argv)


if __name__ == "__main__":
    raise SystemExit(main())
