"""The pipeline's stage commands with the folders dvc.yaml gives them, for tests that run
stages in a temporary repo folder (read from dvc.yaml, so the tests never restate a path)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType

from pipeline.command import dvc_argv

REPO = Path(__file__).resolve().parents[2]


@cache
def argv(stage: str) -> list[str]:
    """``IN OUT [options]`` of ``python -m pipeline.stages.<stage>`` in dvc.yaml."""
    return dvc_argv(stage, REPO / "dvc.yaml")


def run(module: ModuleType, *extra: str) -> int:
    """Run a stage module's command in the current folder, as `dvc repro` would."""
    return module.main([*argv(module.__name__.rsplit(".", 1)[1]), *extra])
