"""augment: keep every original and add ``augment.variants`` variants of it.

Which variants a clip gets is drawn by a RNG seeded from ``augment.seed`` and the clip's id,
so it never depends on chunking or core count, and the same input and settings always give
byte-identical files. The kinds: ``phase_flip`` (polarity inversion), ``pitch`` (Rubber Band,
within ±``augment.pitch_semitones`` on a ``augment.pitch_step`` grid), ``saturate`` (tanh
drive) and ``gain``. Variants never clip and keep the exact length of the original. The
dataset report (pipeline.report) is written when the folder is in place.

Pitch shifting dominates the cost, so only the ``pitch`` kind runs Rubber Band, and only over
the sounding part of the clip. Each clip gets its own run: batching several clips as channels
of one run was measured slower with rubberband 3.1 (its multi-channel mode costs more per
channel than the process start it saves) and made a clip's variant depend on its batch-mates.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.params import Params
from pipeline import report, variants
from pipeline.command import Command, run_command
from pipeline.runner import Job, Output, Result


def rubberband_args(args: Mapping[str, Any]) -> dict[str, str]:
    """``augment.rubberband_args`` (e.g. ``{"--crisp": 6}``) as pyrubberband expects them."""
    return {str(k): str(v) for k, v in args.items()}


def process(jobs: list[Job], params: Params) -> list[Result]:
    aug = params.augment
    rbargs = rubberband_args(aug.rubberband_args)
    outputs: list[Result] = []
    for job in jobs:
        x = job.audio
        assert x is not None
        base = f"{job.row['label']}/{job.row['uid']}"
        outs = [Output(f"{base}.wav", fields={"variant": "original"})]
        plan = variants.plan_variants(
            job.row["uid"],
            aug.variants,
            kinds=aug.kinds,
            seed=aug.seed,
            pitch_semitones=aug.pitch_semitones,
            pitch_step=aug.pitch_step,
            saturation=aug.saturation,
            gain_db=aug.gain_db,
        )
        for kind, amount in plan:
            name = variants.variant_name(kind, amount)
            y = variants.variant(x, job.sr, kind, amount, rbargs)
            outs.append(Output(f"{base}__{name}.wav", y, job.sr, {"variant": name}))
        outputs.append(outs)
    return outputs


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reports", type=Path, required=True, help="folder of dataset.md and spectrograms.png"
    )
    parser.add_argument(
        "--attribution", type=Path, required=True, help="where the credit list goes (Markdown)"
    )


COMMAND = Command("augment", __doc__, process, after=report.write_report, options=_options)


def main(argv: list[str] | None = None) -> int:
    return run_command(COMMAND, argv)


if __name__ == "__main__":
    raise SystemExit(main())
