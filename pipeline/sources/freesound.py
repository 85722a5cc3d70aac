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

from core.errors import ConfigError
from core.params import Params
from crawlers.freesound import rules
from crawlers.freesound.download import download
from crawlers.rawstore import RawStore
from pipeline.sources.crawl import record_row


def freesound_rows(params: Params, raw_root: Path) -> list[dict[str, str]]:
    """Download what is missing, then one row per selected sound, classes in configured order.

    Every failure (no key, refused key, API error after retries) is a one-line ConfigError.
    """
    cfg = params.freesound
    classes = params.label.classes
    try:
        key = rules.api_key()
    except rules.MissingKey as exc:
        raise ConfigError(f"collect.sources has 'freesound' but {exc}") from None
    store = RawStore(raw_root / rules.SOURCE, cfg.max_file_bytes)
    try:
        summary = download(classes, cfg.max_per_class, cfg, store, key=key, progress=True)
    except rules.FreesoundError as exc:  # Unauthorized included
        raise ConfigError(f"freesound: {exc}") from None
    print(summary.line(), flush=True)
    rows = []
    records = store.records()
    for cls in classes:
        for rec in rules.selected(records, cls, cfg):
            row = record_row(rec, store.root, rules.SOURCE)
            if row is not None:
                rows.append(row)
    return rows
