"""``scrapy crawl freesound``: the allowed HQ previews of each class, through the Freesound API.

    FREESOUND_API_KEY=... scrapy crawl freesound -a classes=kick,snare -a max_per_class=200

For each class (default ``label.classes``; ``max_per_class`` default ``freesound.max_per_class``)
it searches with that class's query and the configured filter (crawlers.freesound, the rules
it shares with the API client), follows ``next`` with the key in the header, and keeps the
first ``max_per_class`` results that pass the license / generative-AI / length rules *and* land
(a missing preview or a refused file makes room for the next result), in result order: the
same sounds ``python -m crawlers.freesound_api download`` picks, with the same metadata, in
``data/raw/freesound/`` (crawlers.rawstore). A class the store already holds is not searched
again, so a second run makes no request at all.

Resuming: run the same command again (with or without ``-s JOBDIR=...``). Every search is
walked again from page 1 (cheap: one request per 150 results) and stored sounds are skipped,
so a crawl killed at any moment, even with SIGKILL, ends like an uninterrupted one. Requests
an earlier run left queued in JOBDIR carry that run's id and are ignored (a killed run's torn
queue is dropped before the crawl starts, see StoreSpider.check_jobdir).

Determinism with parallel downloads: at most ``max_per_class - stored`` previews of a class are
in flight, and another result is tried only when one fails. The results tried are therefore
always a prefix of the result list that holds no more than ``max_per_class`` successes, which
is exactly the set a one-at-a-time client takes, whatever order the downloads finish in.
Downloads are *landed* in result order, too (a preview that arrives early waits for those
ranked before it): landing decides which of two identical files is kept (sha256), and the
earlier-ranked one must win, in every run. So the spider lands its previews itself, with the
files pipeline's own :func:`crawlers.pipelines.land`; the pipeline then only counts them.
Classes are handled one after the other, so a sound found by two classes belongs to the first.

A 401/403 stops the crawl with one line (exit 1); 429 and 5xx are retried with backoff by
crawlers.middlewares; a preview that is missing (404) is logged and skipped.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import scrapy
from scrapy.exceptions import CloseSpider

from crawlers import freesound as fs
from crawlers.freesound_api import Unauthorized
from crawlers.items import Download
from crawlers.middlewares import AUTH_META
from crawlers.pipelines import land
from crawlers.spiders import StoreSpider, describe_failure
from pipeline.config import ConfigError

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

API_SLOT = "freesound-api"  # download slot of API requests: requests_per_minute
PREVIEW_SLOT = "freesound-previews"  # download slot of preview files: downloads_per_minute
# Requests leave a slot at least 60/rate seconds apart; 2% more keeps a rolling minute within
# the limit also as the server's clock sees it (arrival times jitter by milliseconds).
RATE_MARGIN = 1.02
# API requests: the key goes on at download time; robots.txt governs the website, not the
# API (see settings.py); the rate is the slot's, which AutoThrottle must not lower.
API_META = {
    AUTH_META: True,
    "dont_obey_robotstxt": True,
    "download_slot": API_SLOT,
    "autothrottle_dont_adjust_delay": True,
    "handle_httpstatus_list": [401, 403],
}
PREVIEW_META = {
    "dont_obey_robotstxt": True,  # preview URLs handed out by the API for download
    "download_slot": PREVIEW_SLOT,
    "autothrottle_dont_adjust_delay": True,
}


@dataclass
class ClassRun:
    """One class's progress through its search results."""

    label: str
    query: str
    n: int
    candidates: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)  # ids met in this search
    ok: int = 0  # stored now or before
    in_flight: int = 0  # previews requested, not yet landed (or failed)
    launched: int = 0  # sequence number of the next preview requested
    landed: int = 0  # sequence number of the next preview to land
    arrived: dict[int, Download] = field(default_factory=dict)  # downloaded, waiting to land
    next_url: str | None = None
    next_rank: int = 0  # results (nulls dropped) before the next page
    page_pending: bool = True
    done: bool = False


class FreesoundSpider(StoreSpider):
    """Search the Freesound API per class and store the allowed HQ previews."""

    name = "freesound"

    @classmethod
    def options(cls, spargs: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        cfg = fs.config(params)
        known = [str(c) for c in (params.get("label") or {}).get("classes") or []]
        classes = fs.parse_classes(spargs.get("classes"), known)
        raw = spargs.get("max_per_class", cfg["max_per_class"])
        try:
            n = int(str(raw))
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"max_per_class must be a whole number of at least 1, not {raw!r}")
        return {"cfg": {**cfg, "max_per_class": n}, "classes": classes, "n": n}

    @classmethod
    def preflight(cls, spargs: dict[str, str], settings: BaseSettings) -> None:
        super().preflight(spargs, settings)
        try:
            fs.api_key()
        except fs.MissingKey as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def params_settings(cls, params: dict[str, Any], settings: BaseSettings) -> dict[str, Any]:
        """The API's rate limit and the retry, timeout and size knobs of ``freesound``."""
        cfg = fs.config(params)
        rpm = float(settings.get("FREESOUND_REQUESTS_PER_MINUTE") or cfg["requests_per_minute"])
        dpm = float(
            settings.get("FREESOUND_DOWNLOADS_PER_MINUTE")
            or cfg.get("downloads_per_minute")
            or cfg["requests_per_minute"]
        )
        slots = dict(settings.getdict("DOWNLOAD_SLOTS"))
        # One API request at a time, evenly spaced (no jitter): any rolling minute holds at
        # most rpm requests, retries included.
        slots.setdefault(
            API_SLOT, {"concurrency": 1, "delay": 60.0 / rpm * RATE_MARGIN, "jitter": 0}
        )
        slots.setdefault(PREVIEW_SLOT, {"concurrency": 4, "delay": 60.0 / dpm, "jitter": 0})
        return {
            "DOWNLOAD_SLOTS": slots,
            "RETRY_TIMES": int(cfg["max_retries"]),
            "RETRY_BACKOFF_BASE": float(cfg["backoff_s"]),
            "DOWNLOAD_TIMEOUT": float(cfg["timeout_s"]),
            "DOWNLOAD_MAXSIZE": int(float(cfg["max_file_mb"]) * 2**20),
        }

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> FreesoundSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        assert isinstance(spider, FreesoundSpider)
        spider.cfg = spider.opts["cfg"]
        spider.base = fs.api_url()
        # Requests queued by an earlier run (JOBDIR) carry another run id and are ignored:
        # this run walks every search again from page 1 (see the module docstring).
        spider.run_id = uuid.uuid4().hex
        spider.todo = deque(spider.opts["classes"])
        spider.runs = {}
        spider.expected_total = len(spider.opts["classes"]) * spider.opts["n"]
        return spider

    def max_bytes(self) -> int:
        return int(float(fs.config(self.params)["max_file_mb"]) * 2**20)

    # ------------------------------------------------------------------ classes

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for request in self.next_class():
            yield request

    def next_class(self) -> Iterator[scrapy.Request]:
        """Start the next class that still needs sounds (at most one search at a time)."""
        while self.todo:
            label = self.todo.popleft()
            run = ClassRun(label, fs.query_for(label, self.cfg), self.opts["n"])
            self.runs[label] = run
            have = len(fs.selected(self.store.records(), label, self.cfg))
            if have >= run.n:
                self.logger.info("%s: %d sounds already stored, not searched", label, run.n)
                self.count("present", run.n)
                self.finish(run, run.n)
                continue
            yield self.search_request(
                run,
                fs.search_url(self.base) + "?" + urlencode(fs.search_params(run.query, self.cfg)),
            )
            return

    def finish(self, run: ClassRun, ok: int) -> None:
        run.done = True
        self.crawler.stats.set_value(f"class/{run.label}", f"{ok}/{run.n}")
        if ok < run.n:
            self.logger.warning("%s: only %d of %d sounds (no more results)", run.label, ok, run.n)
            self.reduce_total(run.n - ok)

    def search_request(self, run: ClassRun, url: str) -> scrapy.Request:
        run.page_pending = True
        return scrapy.Request(
            url,
            callback=self.parse_search,
            errback=self.search_failed,
            dont_filter=True,  # a resumed crawl walks the searches again (JOBDIR's dupefilter)
            priority=1,
            meta={**API_META, "run": self.run_id, "label": run.label, "rank": run.next_rank},
        )

    def current(self, meta: dict[str, Any]) -> ClassRun | None:
        run = self.runs.get(meta.get("label", ""))
        if meta.get("run") != self.run_id or run is None or run.done:
            return None
        return run

    # ------------------------------------------------------------------ search pages

    def parse_search(self, response: Response) -> Iterator[scrapy.Request]:
        run = self.current(response.meta)
        if run is None:
            self.logger.debug("ignored a search page of an earlier run: %s", response.url)
            return
        if response.status in (401, 403):
            self.close_message = str(Unauthorized(response.status, fs.error_detail(response.body)))
            self.logger.error(self.close_message)
            raise CloseSpider("unauthorized")
        run.page_pending = False
        try:
            results, nxt = fs.parse_page(response.json())
        except (ValueError, fs.FreesoundError) as exc:
            self.fail(f"{run.label}: unreadable search page {response.url}: {exc}")
            results, nxt = [], None
        rank = int(response.meta.get("rank", 0))
        for result in results:
            rank += 1
            reason = fs.skip_reason(result, self.cfg)
            sid = fs.sound_id(result)
            if reason is None and sid in run.seen:
                reason = "repeated"  # the same sound twice in one search (paging shifted)
            if reason:
                self.crawler.stats.inc_value(f"skipped/{reason}")
                continue
            run.seen.add(str(sid))
            run.candidates.append((rank, result))
        run.next_rank = rank
        if nxt and not fs.is_api_url(nxt, self.base):
            self.fail(f"{run.label}: 'next' points outside the API ({nxt.split('?')[0]})")
            nxt = None
        run.next_url = nxt
        yield from self.pump(run)

    def search_failed(self, failure: Failure) -> Iterator[scrapy.Request]:
        run = self.current(failure.request.meta)  # type: ignore[attr-defined]
        if run is None:
            return
        self.fail(f"{run.label}: search failed: {describe_failure(failure)}")
        run.page_pending = False
        run.next_url = None
        yield from self.pump(run)

    # ------------------------------------------------------------------ previews

    def pump(self, run: ClassRun) -> Iterator[scrapy.Request]:
        """Launch previews while fewer than ``n`` are stored or in flight; fetch the next page
        when the candidates run out; finish the class and start the next one when done."""
        if run.done:
            return
        while run.ok + run.in_flight < run.n and run.candidates:
            rank, result = run.candidates.popleft()
            sid = str(fs.sound_id(result))
            stored = self.store.record(sid)
            if stored is not None:
                if stored.get("label") != run.label:
                    self.crawler.stats.inc_value("skipped/other_class")
                    continue
                self.store.update(sid, {"query": run.query, "rank": rank})
                self.count("present")
                run.ok += 1
                continue
            refusal = self.store.refusal(sid)
            if refusal:
                self.crawler.stats.inc_value(f"skipped/{refusal}")
                continue
            record = {**fs.sound_record(result, run.label, run.query), "rank": rank}
            url = str(record["preview_url"])
            meta = {**PREVIEW_META, "run": self.run_id, "label": run.label, "seq": run.launched}
            run.launched += 1
            run.in_flight += 1
            yield self.file_request(url, sid, record, fs.preview_extension(url), meta=meta)
        if run.ok >= run.n:
            self.finish(run, run.ok)
            yield from self.next_class()
        elif not run.candidates and not run.page_pending:
            if run.next_url and run.ok + run.in_flight < run.n:
                yield self.search_request(run, run.next_url)
            elif not run.next_url and not run.in_flight:
                self.finish(run, run.ok)
                yield from self.next_class()

    def got_file(self, response: Response) -> Iterator[Download | scrapy.Request]:
        run = self.current(response.meta)
        if run is not None:  # else a preview queued by an earlier run: this run fetches again
            yield from self.arrive(run, response.meta["seq"], self.file_item(response))

    def file_failed(self, failure: Failure) -> Iterator[Download | scrapy.Request]:
        meta = failure.request.meta  # type: ignore[attr-defined]
        run = self.current(meta)
        if run is not None:
            yield from self.arrive(run, meta["seq"], self.failed_item(failure))

    def arrive(
        self, run: ClassRun, seq: int, item: Download
    ) -> Iterator[Download | scrapy.Request]:
        """Land the previews that are next in line, then launch what their outcome allows."""
        run.arrived[seq] = item
        while run.landed in run.arrived:
            ready = run.arrived.pop(run.landed)
            run.landed += 1
            run.in_flight -= 1
            if not ready.status:
                land(ready, self)
            if ready.status == "stored":
                run.ok += 1
            yield ready
        yield from self.pump(run)

    def closed(self, reason: str) -> None:
        if reason == "finished":
            # Every class is done unless a request was lost on the way (it should not be):
            # say so rather than end an incomplete crawl as a success.
            for run in [*self.runs.values()]:
                if not run.done:
                    self.fail(
                        f"{run.label}: the crawl ended with {run.ok} of {run.n} sounds and "
                        "requests still open; run it again to complete the class"
                    )
            if self.todo:
                self.fail(f"the crawl ended before {', '.join(self.todo)} were searched")
        super().closed(reason)
