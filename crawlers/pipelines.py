"""The files pipeline: lands what the spiders downloaded in their RawStore folder.

Spiders fetch files with ordinary Scrapy requests (so robots.txt, delays, retries with
backoff, JOBDIR and the HTTP cache apply to them as to pages) and yield a
:class:`~crawlers.items.Download` with the body. This pipeline hands it to the spider's
:class:`~crawlers.rawstore.RawStore`, which names it by the item's id (never by anything from
the web), writes it under a temporary name, checks size, checksum and that it decodes, refuses
content it already holds, and only then renames it into place and records it. Zip archives
are opened with :mod:`crawlers.archive` and every audio member is landed on its own.

The item's ``status`` tells the feed what happened; once it is set, the spider hears of it
(:meth:`~crawlers.spiders.base.StoreSpider.landed`): the ``freesound`` spider decides from it
whether to try the next search result. This is the only place where spiders' files are stored.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from crawlers.archive import ArchiveRefused, audio_members
from crawlers.items import Download
from crawlers.rawstore import derive_id

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

    from crawlers.spiders.base import StoreSpider

log = logging.getLogger(__name__)


class RawStorePipeline:
    """Lands each Download that comes with a body; counts every Download by its outcome."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RawStorePipeline:
        return cls(crawler)

    @property
    def spider(self) -> StoreSpider:
        return self.crawler.spider  # type: ignore[return-value]

    def open_spider(self) -> None:
        self.crawler.stats.set_value("store/started", time.time())

    def close_spider(self) -> None:
        log.info("%s", summary(self.spider.name, self.crawler.stats))

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, Download):
            return item
        try:
            if item.status:  # not fetched (failed): only counted
                outcome = Counter({item.status.split(":", 1)[0]: 1})
            else:
                outcome = land(item, self.spider)
            for status, n in outcome.items():
                self.spider.count(status, n)
        finally:  # even when landing broke: a spider waiting for the outcome must not hang
            self.spider.landed(item)
        return item


def land(item: Download, spider: StoreSpider) -> Counter[str]:
    """Store a downloaded item's body in ``spider.store``; set its ``status`` and ``files``.

    Returns the outcome per file (``stored``, ``present``, ``refused``): one for a file, one
    per audio member for an archive. The body is dropped afterwards.
    """
    try:
        if item.archive:
            return _land_archive(item, spider)
        store = spider.store
        code = store.land(item.id, item.body, item.ext, item.record)
        if code is None:
            item.status = "stored"
            item.files = [store.record(item.id)["file"]]  # type: ignore[index]
            return Counter(stored=1)
        item.status = f"refused:{code}"
        spider.crawler.stats.inc_value(f"store/refused_reason/{code}")
        return Counter(refused=1)
    finally:
        item.body = b""


def _land_archive(item: Download, spider: StoreSpider) -> Counter[str]:
    store, stats = spider.store, spider.crawler.stats
    try:
        members = audio_members(item.body, spider.archive_limits())
    except ArchiveRefused as exc:
        log.warning("archive %s refused: %s", item.url, exc)
        item.status = f"refused:{exc.code}"
        stats.inc_value(f"store/refused_reason/{exc.code}")
        return Counter(refused=1)
    outcome: Counter[str] = Counter()
    for member in members:
        if member.refused:
            log.warning(
                "archive %s: member %r refused: %s %s",
                item.url,
                member.name[:200],
                member.refused,
                member.detail,
            )
            outcome["refused"] += 1
            stats.inc_value(f"store/refused_reason/{member.refused}")
            continue
        sid = derive_id(item.url, member.name)
        if store.has(sid):
            outcome["present"] += 1
            item.files.append(store.record(sid)["file"])  # type: ignore[index]
            continue
        code = store.land(sid, member.data, member.ext, spider.member_record(item, member, sid))
        if code is None:
            outcome["stored"] += 1
            item.files.append(store.record(sid)["file"])  # type: ignore[index]
        else:
            outcome["refused"] += 1
            stats.inc_value(f"store/refused_reason/{code}")
    if outcome["stored"]:
        item.status = "stored"
    elif outcome["present"]:
        item.status = "present"
    else:
        item.status = "refused:no_usable_audio"
    log.info(
        "archive %s: %d stored, %d already present, %d refused",
        item.url,
        outcome["stored"],
        outcome["present"],
        outcome["refused"],
    )
    return outcome


def summary(name: str, stats: StatsCollector) -> str:
    """One line on what a crawl did, from its stats (printed by the crawl command)."""
    values = stats.get_stats()

    def n(key: str) -> int:
        return int(values.get(key, 0))

    skipped = {k.split("/", 1)[1]: v for k, v in values.items() if k.startswith("skipped/")}
    refused = {
        k.rsplit("/", 1)[1]: v for k, v in values.items() if k.startswith("store/refused_reason/")
    }
    classes = [f"{k.split('/', 1)[1]} {v}" for k, v in values.items() if k.startswith("class/")]
    parts = [f"{n('store/stored')} stored", f"{n('store/present')} already present"]
    if refused:
        parts.append(
            f"{sum(refused.values())} refused ("
            + ", ".join(f"{k} {v}" for k, v in sorted(refused.items()))
            + ")"
        )
    if n("store/failed"):
        parts.append(f"{n('store/failed')} failed")
    if skipped:
        parts.append(
            f"{sum(skipped.values())} skipped ("
            + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
            + ")"
        )
    requests = n("downloader/request_count")
    retries = n("retry/count")
    started = values.get("store/started")
    took = f", {time.time() - started:.1f} s" if isinstance(started, float) else ""
    head = f"{name}: {', '.join(classes)}; " if classes else f"{name}: "
    return f"{head}{', '.join(parts)}; {requests} requests, {retries} retries{took}"
