"""collect: gather one-shots from the sources in ``collect.sources`` into one manifest.

Sources: ``demo`` (the embedded synthesized kit, written to ``data/collected/demo/``),
``local`` (``collect.local_dirs``, indexed where they lie, never copied), ``freesound`` (the
API client downloads into ``data/raw/freesound/``; needs ``FREESOUND_API_KEY``) and ``crawl``
(what the Scrapy spiders stored under ``data/raw/<spider>/``); downloaded files are referenced
where they lie too, with their license and attribution line. Every file is
checked from its header (length, rate, channels, size) and hashed; the same content found
twice is kept once. The manifest records each file's size and sha256, so when a user folder
changes, the manifest changes and DVC re-runs what follows; when nothing changed, the manifest
is byte-identical and DVC skips every later stage. Hashes and headers are cached in
``.cache/collect-index.json`` by path, size and mtime, so an unchanged library is not re-read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import astuple
from pathlib import Path
from typing import Any

from pipeline import audio_io
from pipeline.atomic import replacing, sha256_file
from pipeline.audio_io import Header, Limits
from pipeline.config import ConfigError, section
from pipeline.errors import Reject
from pipeline.runner import Job, Output, Result, Row, display_path, reject_row
from pipeline.sources import demo, local

OUT_DIR = Path("data/collected")
INDEX_FILE = Path(".cache/collect-index.json")
SOURCES = ("demo", "local", "freesound", "crawl")


def uid_for(source: str, source_id: str) -> str:
    """A short, file-system-safe id that never contains names taken from outside."""
    return f"{source}-{hashlib.sha1(f'{source}:{source_id}'.encode()).hexdigest()[:12]}"


def _demo_rows(cfg: dict[str, Any]) -> list[Row]:
    rows = []
    for spec in _demo_specs({"collect": cfg}).values():
        rows.append(
            {
                "path": "",
                "source": "demo",
                "source_id": spec.source_id,
                "name": spec.file_name,
                "folder": spec.cls,
                "license": demo.LICENSE,
                "attribution": (
                    f"{spec.source_id} by oneshot-diffusion -- synthesized demo kit -- "
                    f"License: {demo.LICENSE}"
                ),
            }
        )
    return rows


class _FileIndex:
    """sha256 and header of each local file, by (path, size, mtime).

    ``collect`` runs on every ``dvc repro``; with this index, re-scanning a large unchanged
    library costs a ``stat`` per file and reads nothing.
    """

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


def _local_candidates(cfg: dict[str, Any]) -> list[Row]:
    dirs = cfg.get("local_dirs") or []
    if not dirs:
        raise ConfigError("collect.sources has 'local' but collect.local_dirs is empty")
    rows = local.local_rows(dirs, list(cfg["extensions"]))
    for row in rows:
        # The same relative path can exist in two libraries: the uid comes from the full path.
        row["uid"] = uid_for("local", row["src"])
    return rows


def _file_rows(
    candidates: list[Row], cfg: dict[str, Any], out_dir: Path, index: _FileIndex, seen: dict
) -> tuple[list[Row], list[Row]]:
    """Files on disk (local or downloaded), referenced where they lie, hashed (cached),
    checked from their header; content already ``seen`` (any source) is refused."""
    limits = Limits.from_params(cfg)
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


def gather(params: dict[str, Any], out_dir: Path = OUT_DIR) -> tuple[list[Row], list[Row]]:
    """Rows for every source, plus refusals found before any file is opened as audio.

    Files on disk (local and downloaded) get their size, mtime and sha256 here; a second file
    with the same content, from any source, is refused as ``duplicate`` of the first (sources
    and folders in configured order).
    """
    cfg = section(params, "collect")
    sources = cfg.get("sources") or []
    if not sources:
        raise ConfigError("collect.sources is empty: name at least one of " + ", ".join(SOURCES))
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ConfigError(
            f"collect.sources: unknown source {unknown[0]!r}; choose from {', '.join(SOURCES)}"
        )
    rows: list[Row] = []
    rejects: list[Row] = []
    index = _FileIndex(INDEX_FILE)
    seen: dict[str, str] = {}
    for source in sources:
        if source == "demo":
            rows += _demo_rows(cfg)
            continue
        if source == "local":
            candidates = _local_candidates(cfg)
        elif source == "freesound":
            # Imported here: the demo and local paths then never load the network client.
            from pipeline.sources.freesound import freesound_rows

            candidates = freesound_rows(params)
        else:
            from pipeline.sources.crawl import crawl_rows

            candidates = crawl_rows(params)
        found, refused = _file_rows(candidates, cfg, out_dir, index, seen)
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


def _demo_specs(params: dict[str, Any]) -> dict[str, demo.DemoSpec]:
    d = params["collect"].get("demo") or {}
    return {s.source_id: s for s in demo.plan(int(d.get("per_class", 32)), int(d.get("seed", 0)))}


def process(jobs: list[Job], params: dict[str, Any]) -> list[Result]:
    results: list[Result] = []
    specs = _demo_specs(params) if any(j.row["source"] == "demo" for j in jobs) else {}
    for job in jobs:
        row = job.row
        if row["source"] == "demo":
            spec = specs[row["source_id"]]
            audio = demo.synthesize(spec)
            results.append(
                [
                    Output(
                        f"demo/{spec.cls}/{spec.file_name}",
                        audio,
                        spec.sample_rate,
                        subtype=spec.subtype or None,
                    )
                ]
            )
        elif job.src is not None:
            results.append([Output("", keep="ref")])
        else:
            results.append(Reject("missing", "no file for this row"))
    return results


def main(argv: list[str] | None = None) -> int:
    from pipeline import stage_cli

    pre: list[Row] = []

    def rows(params: dict[str, Any]) -> tuple[list[Row], Path]:
        found, refused = gather(params)
        pre.extend(refused)
        return found, OUT_DIR

    return stage_cli.main(
        "collect", process, __doc__, argv, read="none", rows=rows, pre_rejects=pre
    )


if __name__ == "__main__":
    raise SystemExit(main())
