"""params.yaml for the pipeline: read once per entry point and checked (core.params)."""

from __future__ import annotations

import os
from typing import Any

from core import params as core_params
from core.errors import ConfigError

PARAMS_FILE = core_params.PARAMS_FILE

__all__ = ["ConfigError", "PARAMS_FILE", "load_params", "section"]


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml and check every key (ConfigError, one line, on anything unusable)."""
    raw = core_params.read_yaml(path)
    core_params.parse(raw, os.path.basename(str(path)))
    return raw


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """Return one top-level section, failing with the section's name rather than a KeyError."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"params.yaml has no '{name}' section")
    return value
