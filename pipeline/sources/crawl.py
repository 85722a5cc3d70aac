"""The ``crawl`` source: what the Scrapy spiders stored under ``data/raw/<spider>/``.

Every folder of ``data/raw/`` except ``freesound`` (the API's, read by the ``freesound``
source) holds one spider's downloads and its ``metadata.jsonl``. Files are referenced where
they lie; each row carries the record's license and attribution line, so provenance reaches
every later manifest, and so does the uploader's Freesound generative-AI preference
(``gen_ai_preference``, "" when unknown), which the model card counts. Records whose license
is a known one outside ``freesound.licenses``, or whose preference the rules refuse (an
opt-out; non-commercial models only, when non-commercial use is not allowed), are left out;
records of unknown license (a sample-pack page that states none) are kept only if
``crawl.allow_unknown_license``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.files import read_jsonl
from core.params import Params
from core.provenance import attribution, id_order, license_info, one_line
from crawlers.freesound import rules

_SPIDER = re.compile(r"^[a-z][a-z0-9_]*$")


def record_row(rec: dict[str, Any], root: Path, source: str) -> dict[str, str] | None:
    """A collect row (``src`` = the stored file) from one metadata record, or None when the
    record names no stored file of its own."""
    file = rec.get("file")
    sid = str(rec.get("id", ""))
    if not isinstance(file, str) or "/" in file or "\\" in file or file.startswith("."):
        return None
    src = root / file
    if not sid or not src.is_file():
        return None
    _, license_name = license_info(rec.get("license"))
    tags = rec.get("tags")
    url = one_line(rec.get("url") or rec.get("page_url"))
    return {
        "src": str(src.absolute()),
        "source": source,
        "source_id": sid,
        "name": one_line(rec.get("name")),
        # Text only (a zip member's folder, e.g. "Kicks"): the label stage reads it first.
        "folder": one_line(rec.get("folder")),
        "license": one_line(rec.get("license")) or "unknown",
        "license_name": one_line(rec.get("license_name")) or license_name,
        "attribution": one_line(rec.get("attribution"))
        or attribution(rec.get("name", ""), rec.get("username", ""), url, license_name),
        "author": one_line(rec.get("username")),
        "url": url,
        # The label stage reads these when folder and file name name no class.
        "query": one_line(rec.get("query")),
        "tags": " ".join(one_line(t) for t in tags) if isinstance(tags, list) else "",
        "label": one_line(rec.get("label")),
        "retrieved_at": one_line(rec.get("retrieved_at")),
        # What the uploader allows of generative AI (Freesound): the model card's conditions.
        "gen_ai_preference": one_line(rec.get("gen_ai_preference")),
    }


def crawl_rows(params: Params, raw_root: Path) -> list[dict[str, str]]:
    """Rows for every stored file of every spider folder, spiders in name order."""
    cfg = params.freesound
    allow_unknown = params.crawl.allow_unknown_license
    folders = (
        sorted(p for p in raw_root.iterdir() if p.is_dir() and p.name != rules.SOURCE)
        if raw_root.is_dir()
        else []
    )
    folders = [p for p in folders if (p / "metadata.jsonl").is_file() and _SPIDER.match(p.name)]
    if not folders:
        raise ConfigError(
            f"collect.sources has 'crawl' but {raw_root}/ holds no spider output: run "
            "`scrapy crawl freesound_pages -a urls=...` or `scrapy crawl samplepack -a url=...`"
        )
    rows: list[dict[str, str]] = []
    for folder in folders:
        latest = {str(r.get("id")): r for r in read_jsonl(folder / "metadata.jsonl")}
        for sid in sorted(latest, key=id_order):
            rec = latest[sid]
            if license_info(rec.get("license"))[0] == "unknown":
                if not allow_unknown or rules.ai_skip_reason(rec.get("gen_ai_preference"), cfg):
                    continue
            elif rules.record_skip_reason({**rec, "duration": None}, cfg):
                continue
            row = record_row(rec, folder, folder.name)
            if row is not None:
                rows.append(row)
    return rows
