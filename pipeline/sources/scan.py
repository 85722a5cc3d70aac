"""Every source's files as collect rows: checked from their header, hashed, duplicates refused.

Files on disk (local folders and downloads) are referenced where they lie, never copied. Each
gets its size, header and sha256, cached in an index by path, size and mtime: ``collect`` runs
on every ``dvc repro``, and with the index re-scanning a large unchanged library costs a
``stat`` per file and reads nothing. The same content found twice, from any source, is kept
once (sources and folders in configured order).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import astuple
from pathlib import Path

from core import audio_io
from core.audio_io import Header, Limits
from core.errors import ConfigError, Reject
from core.files import Row, replacing, sha256_file
from core.params import Params
from pipeline.manifests import display_path, reject_row
from pipeline.sources import demo, local


def uid_for(source: str, source_id: str) -> str:
    """A short, file-system-safe id that never contains names taken from outside."""
    return f"{source}-{hashlib.sha1(f'{source}:{source_id}'.encode()).hexdigest()[:12]}"


class FileIndex:
    """sha256 and header of each local file, by (path, size, mtime)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, list] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.data = {}
        self.used: set[str] = set()

    def get(self, file: Path) -> tuple[str, Header]:
        """The file's sha256 and header; raises Reject for a file no setting can make usable."""
        st = file.stat()
        key = str(file)
        self.used.add(key)
        hit = self.data.get(key)
        if not (hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns):
            try:
                header: list = list(astuple(audio_io.read_header(file)))
            except Reject as rej:
                header = ["reject", rej.code, rej.detail]
            hit = [st.st_size, st.st_mtime_ns, sha256_file(file), header]
            self.data[key] = hit
        if hit[3][0] == "reject":
            raise Reject(hit[3][1], hit[3][2])
        return hit[2], Header(*hit[3])

    def save(self) -> None:
        # Only files seen in this scan: deleted or moved files do not pile up.
        kept = {k: v for k, v in self.data.items() if k in self.used}
        with replacing(self.path) as tmp:
            tmp.write_text(json.dumps(kept), encoding="utf-8")


def _local_candidates(params: Params) -> list[Row]:
    rows = local.local_rows(params.collect.local_dirs, params.collect.extensions)
    for row in rows:
        # The same relative path can exist in two libraries: the uid comes from the full path.
        row["uid"] = uid_for("local", row["src"])
    return rows


def _file_rows(
    candidates: list[Row], limits: Limits, out_dir: Path, index: FileIndex, seen: dict
) -> tuple[list[Row], list[Row]]:
    """Files on disk (local or downloaded), referenced where they lie, hashed (cached),
    checked from their header; content already ``seen`` (any source) is refused."""
    rows: list[Row] = []
    rejects: list[Row] = []
    for row in candidates:
        src = Path(row.pop("src"))
        row["path"] = os.path.relpath(src, out_dir)
        try:
            if not src.is_file():
                raise Reject("not_a_file", "path is a directory or special file")
            digest, header = index.get(src)
            audio_io.check_limits(header, limits)
        except Reject as rej:
            rejects.append(reject_row("collect", display_path(src), row, rej))
            continue
        except OSError as exc:
            rejects.append(
                reject_row("collect", display_path(src), row, Reject("unreadable", str(exc)))
            )
            continue
        if digest in seen:
            dup = Reject("duplicate", f"same content as {seen[digest]}")
            rejects.append(reject_row("collect", display_path(src), row, dup))
            continue
        seen[digest] = row["source_id"]
        row.update(
            sha256=digest,
            size=str(header.size),
            sample_rate=str(header.sample_rate),
            num_samples=str(header.frames),
            channels=str(header.channels),
        )
        rows.append(row)
    return rows, rejects


def gather(
    params: Params, raw_root: Path, out_dir: Path, index_file: Path
) -> tuple[list[Row], list[Row]]:
    """Rows for every source in ``collect.sources``, plus refusals found before any file is
    opened as audio. ``raw_root`` holds the downloads (``freesound``, ``crawl``); row paths
    are relative to ``out_dir``."""
    sources = params.collect.sources
    rows: list[Row] = []
    rejects: list[Row] = []
    index = FileIndex(index_file)
    seen: dict[str, str] = {}
    for source in sources:
        if source == "demo":
            rows += demo.rows(params.collect.demo.per_class, params.collect.demo.seed)
            continue
        if source == "local":
            candidates = _local_candidates(params)
        elif source == "freesound":
            # Imported here: the demo and local paths then never load the network client.
            from pipeline.sources.freesound import freesound_rows

            candidates = freesound_rows(params, raw_root)
        else:
            from pipeline.sources.crawl import crawl_rows

            candidates = crawl_rows(params, raw_root)
        found, refused = _file_rows(candidates, Limits.of(params.collect), out_dir, index, seen)
        rows += found
        rejects += refused
    if any(s != "demo" for s in sources):
        index.save()
    if not rows and not rejects:
        raise ConfigError(f"collected nothing from {', '.join(sources)} (collect.sources)")
    for row in rows:
        row.setdefault("label", "")
        row["variant"] = "original"
        row.setdefault("uid", uid_for(row["source"], row["source_id"]))
    return rows, rejects
