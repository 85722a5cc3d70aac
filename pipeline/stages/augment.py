"""augment: keep every original and add ``augment.variants`` variants of it.

Which variants a clip gets is drawn by a RNG seeded from ``augment.seed`` and the clip's id,
so it never depends on chunking or core count, and the same input and settings always give
byte-identical files. The kinds: ``phase_flip`` (polarity inversion), ``pitch`` (within
±``augment.pitch_semitones`` on a ``augment.pitch_step`` grid), ``saturate`` (tanh
drive) and ``gain``. Variants never clip and keep the exact length of the original. The
dataset report (pipeline.report) is written when the folder is in place.

Pitch shifting dominates the cost, so it runs only over the sounding part of the clip.
``augment.pitch_engine: resample`` (the default) repitches in process as a sampler does (the hit
plays faster or slower; soxr); ``rubberband`` keeps the hit's length with Rubber Band's CLI,
one process per shift; ``pedalboard`` runs Rubber Band in process. The Rubber Band engines use
its R2 engine with the options of ``augment.rubberband_args``; an option the in-process one
cannot honour is refused before any file is touched. Each clip gets its own run: batching
clips as channels of one run made a clip's variant depend on its batch-mates.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.params import Params
from pipeline import variants
from pipeline.command import Command, run_command
from pipeline.runner import Job, Output, Result, StageResult


def rubberband_args(args: Mapping[str, Any]) -> dict[str, str]:
    """``augment.rubberband_args`` (e.g. ``{"--crisp": 6}``) as pyrubberband expects them."""
    return {str(k): str(v) for k, v in args.items()}


def check(params: Params) -> None:
    """The pitch engine is there, and ``augment.rubberband_args`` all mean something to the
    in-process one: a one-line error now, not a traceback from a worker later."""
    engine = params.augment.pitch_engine
    if "pitch" not in params.augment.kinds or not params.augment.variants:
        return
    if engine == "rubberband" and shutil.which("rubberband") is None:
        raise ConfigError("augment.pitch_engine rubberband needs the `rubberband` CLI on PATH")
    if engine == "pedalboard":
        if importlib.util.find_spec("pedalboard") is None:
            raise ConfigError(
                "augment.pitch_engine pedalboard needs `pip install pedalboard` "
                "(or set augment.pitch_engine: rubberband)"
            )
        try:
            variants.pedalboard_options(rubberband_args(params.augment.rubberband_args))
        except ValueError as exc:
            raise ConfigError(f"augment.{exc}") from None


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
            y = variants.variant(x, job.sr, kind, amount, rbargs, aug.pitch_engine)
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


def _report(result: StageResult, params: Params, args: argparse.Namespace) -> None:
    """pipeline.report.write_report, imported only when it runs: it loads pandas and
    matplotlib, a third of a second of start-up that ``--help`` and a refused run never need."""
    from pipeline import report

    report.write_report(result, params, args)


COMMAND = Command("augment", __doc__, process, after=_report, options=_options, check=check)


def main(argv: list[str] | None = None) -> int:
    return run_command(COMMAND, argv)


if __name__ == "__main__":
    raise SystemExit(main())
