"""The ``freesound`` source: the API client fills ``data/raw/freesound/``, rows come from it.

Needs ``FREESOUND_API_KEY``. For every class in ``label.classes`` the client makes sure the
store holds the first ``freesound.max_per_class`` allowed sounds (a store that already does
costs no request, so ``dvc repro`` stays quick and works offline once the sounds are there);
then each selected record becomes a row: ``source`` "freesound", ``source_id`` the Freesound
id, ``license`` the deed URL (``license_name`` the short name), ``attribution`` the credit line,
``query`` and ``tags`` for the label stage. Files are referenced where they lie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crawlers import freesound as fs
from crawlers import freesound_api
from crawlers.rawstore import RawStore
from pipeline.config import ConfigError
from pipeline.sources.crawl import RAW_ROOT, record_row


def freesound_rows(params: dict[str, Any], raw_root: Path = RAW_ROOT) -> list[dict[str, str]]:
    """Download what is missing, then one row per selected sound, classes in configured order.

    Every failure (no key, refused key, API error after retries) is a one-line ConfigError.
    """
    cfg = fs.config(params)
    classes = [str(c) for c in (params.get("label") or {}).get("classes") or []]
    if not classes:
        raise ConfigError("collect.sources has 'freesound' but label.classes is empty")
    try:
        key = fs.api_key()
    except fs.MissingKey as exc:
        raise ConfigError(f"collect.sources has 'freesound' but {exc}") from None
    store = RawStore(raw_root / fs.SOURCE, int(float(cfg["max_file_mb"]) * 2**20))
    try:
        summary = freesound_api.download(
            classes, int(cfg["max_per_class"]), cfg, store, key=key, progress=True
        )
    except fs.FreesoundError as exc:  # Unauthorized included
        raise ConfigError(f"freesound: {exc}") from None
    print(summary.line(), flush=True)
    rows = []
    records = store.records()
    for cls in classes:
        for rec in fs.selected(records, cls, cfg):
            row = record_row(rec, store.root, fs.SOURCE)
            if row is not None:
                rows.append(row)
    return rows
