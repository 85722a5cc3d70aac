"""normalize: resample, mix to the target channel count, remove DC, set the level.

Every clip leaves this stage at ``audio.sample_rate`` with ``audio.channels`` channels and a
peak of ``normalize.peak_db`` dBFS (or a loudness of ``normalize.lufs`` with ``mode: lufs``).
"""

from __future__ import annotations

from core.errors import Reject
from core.params import Params
from pipeline import audio
from pipeline.command import Command, run_command
from pipeline.runner import Job, Output, Result


def process(jobs: list[Job], params: Params) -> list[Result]:
    a, n = params.audio, params.normalize
    results: list[Result] = []
    for job in jobs:
        assert job.audio is not None
        try:
            y, sr = audio.normalize(
                job.audio,
                job.sr,
                sample_rate=a.sample_rate,
                channels=a.channels,
                dc_cutoff_hz=n.dc_cutoff_hz,
                resample_quality=n.resample_quality,
                silence_db=n.silence_db,
                mode=n.mode,
                peak_db=n.peak_db,
                lufs=n.lufs,
            )
        except Reject as rej:
            results.append(rej)
            continue
        results.append([Output(f"{job.row['uid']}.wav", y, sr)])
    return results


COMMAND = Command("normalize", __doc__, process, outside=True)


def main(argv: list[str] | None = None) -> int:
    return run_command(COMMAND, argv)


if __name__ == "__main__":
    raise SystemExit(main())
