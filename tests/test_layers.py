"""The layers hold (core < crawlers < pipeline < training < bench, the pure audio maths without
files, the model without params.yaml, the data side without torch), and `lint-imports` really
catches a forbidden import: one is planted in a copy of the tree and must be refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "crawlers", "pipeline", "training", "bench")
LINT = Path(sys.executable).parent / "lint-imports"


def _copy(dest: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=root,
        env={"PATH": str(LINT.parent), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_its_layers() -> None:
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/files.py", "import pipeline.runner", "Layers"),
        ("crawlers/rawstore.py", "from training import model", "Layers"),
        ("pipeline/audio.py", "from core import files", "pure audio maths"),
        ("training/model.py", "from core.params import Params", "model knows nothing"),
        ("pipeline/runner.py", "import torch", "load no torch"),
    ],
)
def test_a_forbidden_import_is_caught(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = _copy(tmp_path)
    target = root / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # planted\n")
    done = _lint(root)
    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout
