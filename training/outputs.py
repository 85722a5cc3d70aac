"""The files ``training.sample`` writes: WAVs and the ``samples.csv`` ledger beside them.

Every WAV is written atomically (a killed run leaves whole files or none), and each folder's
``samples.csv`` holds one row per file there: how it was made (mode, class, seed, steps,
sampler, guidance, strength...) and from which checkpoint (its path and sha256). A later run
into the same folder adds its rows and replaces the rows of the files it writes again.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from core.audio_io import write_atomic
from core.files import read_csv, replacing

CSV_NAME = "samples.csv"
CSV_COLUMNS = [
    "path", "mode", "class", "index", "seed", "steps", "rho", "sampler", "guidance", "strength",
    "keep_ms", "weight", "init", "checkpoint", "checkpoint_sha256", "sample_rate",
    "num_samples", "channels", "bit_depth", "device",
]  # fmt: skip
SUBTYPES = {16: "PCM_16", 24: "PCM_24"}  # --bit-depth: the WAV sample format


class WriteError(OSError):
    """A file could not be written (a full disk, a folder that went away): one line, exit 1."""


def write_clips(
    clips: np.ndarray,
    names: list[str],
    out_dir: Path,
    sample_rate: int,
    bit_depth: int,
    rows: list[dict[str, Any]],
) -> list[Path]:
    """The WAVs ``<out_dir>/<name>.wav`` of ``clips`` [n, C, N] (clipped to full scale) and
    their ``rows`` merged into ``out_dir/samples.csv``; returns the WAVs' paths."""
    paths = []
    for clip, name in zip(clips, names, strict=True):
        path = out_dir / f"{name}.wav"
        try:
            write_atomic(path, np.clip(clip, -1.0, 1.0), sample_rate, SUBTYPES[bit_depth])
        except (OSError, sf.SoundFileError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc).split(": ", 1)[-1].strip()
            raise WriteError(f"cannot write {path}: {reason}") from None
        paths.append(path)
    merge_rows(out_dir / CSV_NAME, rows)
    return paths


def merge_rows(table: Path, rows: list[dict[str, Any]]) -> None:
    """Add ``rows`` to the ledger ``table``: a row for a file written again replaces the old
    one, rows of other files already listed stay (sorted by path)."""
    old: dict[str, dict[str, str]] = {}
    if table.is_file():
        old = {r["path"]: r for r in read_csv(table) if r.get("path")}
    for row in rows:
        old[row["path"]] = {k: str(row.get(k, "")) for k in CSV_COLUMNS}
    with replacing(table) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(old[k] for k in sorted(old))
