"""The download run: make a store hold the first ``max_per_class`` allowed sounds per class.

For each class it searches with that class's query (``freesound.query``) and the filter built
from ``freesound`` in params.yaml, follows ``next``, and takes the results that
:class:`~crawlers.freesound.admission.ClassSearch` admits, in result order, until the class
has its sounds. Downloads land through :class:`crawlers.rawstore.RawStore`; a class that
already has its sounds is not searched again, so a second run makes no request.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import requests
from tqdm import tqdm

from core.cli import show_progress
from core.params import Freesound
from crawlers.freesound.admission import ClassSearch, Decision, Fetch, Present
from crawlers.freesound.client import Client
from crawlers.rawstore import RawStore


@dataclass
class Summary:
    """What a download run did."""

    per_class: dict[str, int] = field(default_factory=dict)
    wanted: dict[str, int] = field(default_factory=dict)
    downloaded: int = 0
    already: int = 0
    skipped: Counter = field(default_factory=Counter)
    api_requests: int = 0
    downloads: int = 0  # preview GETs, retries included
    retries: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        classes = ", ".join(
            f"{c} {self.per_class.get(c, 0)}/{n}"
            + ("" if self.per_class.get(c, 0) >= n else " (no more results)")
            for c, n in self.wanted.items()
        )
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()))
        return (
            f"freesound: {classes}; {self.downloaded} downloaded, {self.already} already "
            f"stored, {skipped} skipped{f' ({reasons})' if reasons else ''}; "
            f"{self.api_requests} API requests, {self.retries} retries, {self.seconds:.1f} s"
        )


def download(
    classes: list[str],
    max_per_class: int,
    cfg: Freesound,
    store: RawStore,
    *,
    key: str,
    progress: bool = False,
    base: str | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Make the store hold the first ``max_per_class`` allowed sounds of each class.

    ``progress``: a bar on stderr when it is a terminal. Raises Unauthorized (401/403) and
    FreesoundError (an API error that retries did not cure); the store is compacted however
    the run ends.
    """
    cfg = replace(cfg, max_per_class=int(max_per_class))
    client = Client(cfg, key, base, session, sleep)
    summary = Summary(wanted={c: cfg.max_per_class for c in classes})
    start = time.perf_counter()
    bar = tqdm(
        total=len(classes) * cfg.max_per_class,
        desc="freesound",
        unit="sound",
        disable=not show_progress(progress),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        for cls in classes:
            _download_class(ClassSearch(cls, cfg, store), client, summary, bar)
    finally:
        bar.close()
        store.compact()
        summary.api_requests = client.api_requests
        summary.downloads = client.downloads
        summary.retries = client.retries
        summary.bytes = client.bytes
        summary.seconds = time.perf_counter() - start
    return summary


def _download_class(search: ClassSearch, client: Client, summary: Summary, bar: tqdm) -> None:
    """Take results of one class's search until it has ``max_per_class`` sounds."""
    n, cls = search.cfg.max_per_class, search.label
    if search.complete():  # stored by an earlier run: no request at all
        summary.per_class[cls] = n
        summary.already += n
        bar.update(n)
        return
    count = 0
    for page in client.search_pages(search.query):
        for result in page:
            if count >= n:
                break
            reason = _take(search.decide(result), client, search.store, summary)
            if reason:
                summary.skipped[reason] += 1
                continue
            count += 1
            bar.update(1)
        if count >= n:
            break
    summary.per_class[cls] = count
    if count < n:
        bar.total -= n - count
        bar.refresh()


def _take(decision: Decision, client: Client, store: RawStore, summary: Summary) -> str | None:
    """Carry out one admission decision; None when it filled a slot, else why not."""
    if isinstance(decision, Present):
        summary.already += 1
        return None
    if isinstance(decision, Fetch):
        outcome = client.fetch(decision.url, store, decision.sid, decision.record)
        if outcome is None:
            summary.downloaded += 1
        return outcome
    return decision.reason
