"""Shared fixtures: the repository's real params.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_params

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def params() -> dict[str, Any]:
    """A fresh copy of params.yaml for every test, so a test may change it freely."""
    return load_params(REPO_ROOT / "params.yaml")
