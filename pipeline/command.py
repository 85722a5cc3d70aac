"""The command line every stage shares: ``python -m pipeline.stages.<stage> IN OUT``.

DVC passes each stage its input and output folders (``dvc.yaml``); the shared rejects list is
``rejects.csv`` beside the output folder. Settings come from params.yaml, read and checked
once before anything is touched. Exit codes: 0 done, 1 every input refused, 2 bad settings
or a missing input (one line), 130 interrupted (one line; the previous output is kept).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from core import params as core_params
from core.errors import ConfigError
from core.files import Row
from core.params import Params
from pipeline import manifests, runner


@dataclass(frozen=True)
class Command:
    """One stage's command: its chunk function and what sets it apart from the others.

    ``rows`` lists the inputs (default: the manifest in the input folder) and returns them
    with the folder their paths are relative to and any inputs refused before processing;
    ``after`` writes what the stage adds beside its folder (reports), once it is in place.
    """

    name: str
    doc: str | None
    process: runner.ProcessFn
    read: str = "audio"
    outside: bool = False  # the inputs are the user's files: check them against collect.*
    rows: Callable[[Params, argparse.Namespace], tuple[list[Row], Path, list[Row]]] | None = None
    after: Callable[[runner.StageResult, Params, argparse.Namespace], None] | None = None
    options: Callable[[argparse.ArgumentParser], None] | None = None
    # settings no params.yaml check can judge (they depend on the stage's own maths): raises
    # ConfigError, and runs before any file is touched
    check: Callable[[Params], None] | None = None
    input_help: str = "the previous stage's folder (its manifest.csv is read)"


def parse_args(cmd: Command, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m pipeline.stages.{cmd.name}",
        description=cmd.doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings come from params.yaml; `dvc repro` runs every stage with the folders "
        "dvc.yaml gives it. The shared list of refused inputs is rejects.csv beside OUT.",
    )
    parser.add_argument("input", type=Path, metavar="IN", help=cmd.input_help)
    parser.add_argument("output", type=Path, metavar="OUT", help="the folder this stage writes")
    parser.add_argument("--params", default="params.yaml", help="parameters file (params.yaml)")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: runner.workers)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    if cmd.options:
        cmd.options(parser)
    return parser.parse_args(argv)


def dvc_argv(stage: str, dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    """``IN OUT [options]`` of a stage's command in dvc.yaml: what benchmarks and tests pass
    when they run a stage in process, so no folder is written down twice."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    words = shlex.split(stages[stage]["cmd"])
    return words[words.index(f"pipeline.stages.{stage}") + 1 :]


def previous_rows(args: argparse.Namespace) -> tuple[list[Row], Path, list[Row]]:
    """The input folder's manifest rows (paths are relative to it)."""
    return manifests.read_manifest(args.input / "manifest.csv"), args.input, []


def run_command(cmd: Command, argv: list[str] | None = None) -> int:
    """Run one stage; bad settings exit 2 with one line, never a traceback."""
    args = parse_args(cmd, argv)
    result = None
    try:
        params = core_params.load(args.params)
        if args.workers is not None and args.workers < 0:
            raise ConfigError(f"--workers must be at least 0, got {args.workers}")
        if cmd.check:
            cmd.check(params)
        if params.runner.backend == "ray":
            from pipeline import ray_backend  # ray is optional: imported only when chosen

            ray_backend.preflight(params.runner)
        rows, in_dir, refused = cmd.rows(params, args) if cmd.rows else previous_rows(args)
        stage = runner.Stage(
            cmd.name,
            cmd.process,
            params,
            read=cmd.read,  # type: ignore[arg-type]
            outside=cmd.outside,
        )
        result = runner.run(
            stage,
            rows,
            in_dir,
            args.output,
            workers=params.runner.workers if args.workers is None else args.workers,
            chunk_size=params.runner.chunk_size,
            progress=not args.no_progress,
            pre_rejects=refused,
            rejects_file=args.output.parent / manifests.REJECTS_NAME,
        )
        if cmd.after:
            cmd.after(result, params, args)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"{cmd.name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = (
            f"{args.output}/ and {args.output.parent / manifests.REJECTS_NAME} are as they were"
            if result is None
            else "its report may be incomplete: run it again"
        )
        print(f"{cmd.name}: interrupted; {kept}", file=sys.stderr)
        return 130
    if result.n_in and not result.rows:
        lst = args.output.parent / manifests.REJECTS_NAME
        print(f"{cmd.name}: error: every input was refused; see {lst}", file=sys.stderr)
        return 1
    return 0
