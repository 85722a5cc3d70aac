"""Shared fixtures: the repository's real params.yaml, as a mapping and as checked sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import params as core_params

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def params() -> dict[str, Any]:
    """A fresh copy of params.yaml's mapping for every test, so a test may change it freely
    (``core.params.parse`` turns it into the checked sections the code takes)."""
    return core_params.read_yaml(REPO_ROOT / "params.yaml")


@pytest.fixture
def typed(params: dict[str, Any]) -> core_params.Params:
    """params.yaml as the checked, typed sections every entry point passes down."""
    return core_params.parse(params)
