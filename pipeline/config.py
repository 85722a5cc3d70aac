"""Typed access to ``params.yaml``: the one place every pipeline knob is read from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """A setting in params.yaml is missing or has a value the pipeline cannot use."""


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml; DVC runs stages from the repo root, so the default path is relative."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p} not found: run from the repository root")
    with p.open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{p} must hold a mapping at the top level")
    return params


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """Return one top-level section, failing with the section's name rather than a KeyError."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"params.yaml has no '{name}' section")
    return value
