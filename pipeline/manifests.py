"""Manifests and the rejects list: the tables every stage reads and writes.

A stage's folder holds its files and ``manifest.csv`` (one row per file, CONTRACT's columns
first); ``rejects.csv`` beside the stage folders lists every input a stage refused, with the
reason, and traces it back to the collected file.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import Reject
from core.files import Row, read_csv, write_csv

# Columns every manifest carries (CONTRACT), in this order; stages may add more after them.
MANIFEST_COLUMNS = [
    "path",
    "label",
    "source",
    "source_id",
    "license",
    "attribution",
    "variant",
    "sample_rate",
    "num_samples",
]
# ``source`` and ``source_id`` trace a refusal at a later stage back to the collected file.
REJECT_COLUMNS = ["path", "stage", "reason", "detail", "source", "source_id"]
REJECTS_NAME = "rejects.csv"  # the shared list, beside the stage folders (data/rejects.csv)


def read_manifest(path: Path) -> list[Row]:
    """Rows of a manifest, as strings; a missing manifest means the previous stage never ran."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the previous stage first (dvc repro)")
    return read_csv(path)


def display_path(path: Path) -> str:
    """A path as a user recognises it: relative to the repo root when inside it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return os.path.abspath(path)
    return os.path.abspath(path) if rel.split(os.sep, 1)[0] == os.pardir else rel


def update_rejects(stage: str, rejects: list[Row], path: Path) -> None:
    """Replace this stage's rows in the shared rejects list, keeping every other stage's rows."""
    kept = [r for r in read_csv(path) if r.get("stage") != stage] if path.is_file() else []
    write_csv(path, kept + rejects, REJECT_COLUMNS)


def reject_row(stage: str, path: str, row: Row, rej: Reject) -> Row:
    """One rejects-list row; ``source``/``source_id`` trace it back to the collected file."""
    return {
        "path": path,
        "stage": stage,
        "reason": rej.code,
        "detail": rej.detail,
        "source": row.get("source", ""),
        "source_id": row.get("source_id", ""),
    }
