"""The install is pinned (issue 10): requirements.lock fixes the version of every package, and
the environment the tests run in is the locked one, so a fresh clone makes the same data."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_is_pinned_in_the_lock() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [*project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    locked = _locked()
    names = {_norm(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in declared}
    assert names - set(locked) == set()


def test_the_installed_versions_are_the_locked_ones() -> None:
    wrong = {}
    for name, version in _locked().items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong[name] = (version, None)
            continue
        if have.split("+")[0] != version.split("+")[0]:
            wrong[name] = (version, have)
    assert wrong == {}, "run `make setup` (or `make lock` after changing dependencies)"


def test_make_installs_from_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "pip install -q -r $(LOCK)" in makefile and "--no-deps -e ." in makefile
