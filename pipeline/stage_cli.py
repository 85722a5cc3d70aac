"""Command line shared by every stage module: ``python -m pipeline.<stage> [--workers N]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import runner
from pipeline.audio_io import Limits
from pipeline.config import ConfigError, load_params, section

DATA = Path("data")
# Folder each stage writes; the next stage reads the manifest in the previous one.
STAGE_DIRS = {
    "collect": DATA / "collected",
    "normalize": DATA / "normalized",
    "trim": DATA / "trimmed",
    "pad": DATA / "padded",
    "label": DATA / "labeled",
    "augment": DATA / "augmented",
}
ORDER = list(STAGE_DIRS)


def parse_args(name: str, doc: str | None, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m pipeline.{name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings come from params.yaml; run all stages with `dvc repro`.",
    )
    parser.add_argument("--params", default="params.yaml", help="parameters file (params.yaml)")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: runner.workers)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def input_rows(name: str) -> tuple[list[runner.Row], Path]:
    """The previous stage's manifest rows and the folder their paths are relative to."""
    prev = STAGE_DIRS[ORDER[ORDER.index(name) - 1]]
    return runner.read_manifest(prev / "manifest.csv"), prev


def make_stage(
    name: str, process: runner.ProcessFn, params: dict[str, Any], **kw: Any
) -> runner.Stage:
    audio = section(params, "audio")
    return runner.Stage(
        name=name,
        process=process,
        params=params,
        limits=Limits.from_params(section(params, "collect")),
        subtype=str(audio.get("subtype", "FLOAT")),
        **kw,
    )


def main(
    name: str,
    process: runner.ProcessFn,
    doc: str | None,
    argv: list[str] | None = None,
    *,
    read: str = "audio",
    rows: Callable[[dict[str, Any]], tuple[list[runner.Row], Path]] | None = None,
    after: Callable[[runner.StageResult, dict[str, Any]], None] | None = None,
    pre_rejects: list[runner.Row] | None = None,
) -> int:
    """Run one stage from params.yaml; bad settings exit 2 with one line, never a traceback."""
    args = parse_args(name, doc, argv)
    result = None
    try:
        params = load_params(args.params)
        settings = section(params, "runner")
        in_rows, in_dir = rows(params) if rows else input_rows(name)
        stage = make_stage(name, process, params, read=read)
        result = runner.run(
            stage,
            in_rows,
            in_dir,
            STAGE_DIRS[name],
            workers=args.workers if args.workers is not None else int(settings["workers"]),
            chunk_size=int(settings["chunk_size"]),
            progress=not args.no_progress,
            pre_rejects=pre_rejects,
        )
        if after:
            after(result, params)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = (
            f"{STAGE_DIRS[name]}/ and data/rejects.csv are as they were"
            if result is None
            else "its report may be incomplete: run it again"
        )
        print(f"{name}: interrupted; {kept}", file=sys.stderr)
        return 130
    if result.n_in and not result.rows:
        print(f"{name}: error: every input was refused; see data/rejects.csv", file=sys.stderr)
        return 1
    return 0
