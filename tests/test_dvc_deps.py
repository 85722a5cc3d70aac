"""Every project module a DVC stage's command runs is among the stage's deps.

DVC re-runs a stage only when a dep changes: a module the stage imports but does not list
(a new helper split out of a listed one, say) can change what the stage writes while
`dvc repro` reports nothing to do. The imports are read from the source (every ``import``
anywhere in a module, lazy ones inside functions too), followed through the project's own
packages.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "crawlers", "pipeline", "training", "bench")


def _module_file(name: str) -> Path | None:
    """The file of project module ``name`` (a package's ``__init__.py``), None if not ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (``from pkg import mod`` counts mod if it is one)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if _module_file(name) is not None}


def _closure(module: str) -> set[Path]:
    """Every project file that running ``python -m module`` may import, itself included."""
    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        parts = name.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]  # packages' __init__
        todo.extend([*parents, *_imports(path)])
    return seen


def _stages() -> list:  # pytest.param entries, one per stage that runs a module
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = []
    for name, stage in stages.items():
        match = re.search(r"-m ([\w.]+)", stage["cmd"])
        if match:
            deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
            out.append(pytest.param(name, match.group(1), deps, id=name))
    return out


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


@pytest.mark.parametrize(("stage", "module", "deps"), _stages())
def test_a_stage_lists_every_module_it_runs(stage: str, module: str, deps: list[str]) -> None:
    missing = sorted(
        str(p.relative_to(REPO))
        for p in _closure(module)
        if not _covered(p, deps) and p.name != "__init__.py"
    )
    assert not missing, f"dvc.yaml stage {stage} runs {module} but does not list {missing}"


def test_the_import_walk_finds_lazy_imports_and_packages() -> None:
    """The walk itself: ``training.evaluate`` imports ``training.page`` inside a function,
    and the fold network's patches come through ``training.foldnet``."""
    files = {str(p.relative_to(REPO)) for p in _closure("training.evaluate")}
    assert {"training/page.py", "training/foldnet.py", "training/patches.py"} <= files
    assert "core/params.py" in files and "bench/sample.py" not in files
