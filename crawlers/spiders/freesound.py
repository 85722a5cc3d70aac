"""``scrapy crawl freesound``: the allowed HQ previews of each class, through the Freesound API.

    FREESOUND_API_KEY=... scrapy crawl freesound -a classes=kick,snare -a max_per_class=200

For each class (default ``label.classes``; ``max_per_class`` default ``freesound.max_per_class``)
it searches with that class's query and the configured filter (crawlers.freesound.rules),
follows ``next`` with the key in the header, and keeps the first ``max_per_class`` results that
the admission it shares with the API client lets through
(crawlers.freesound.admission.ClassSearch) *and* that land (a missing preview or a refused file
makes room for the next result), in result order: the same sounds ``python -m
crawlers.freesound_api download`` picks, with the same metadata, in ``data/raw/freesound/``
(crawlers.rawstore). A class the store already holds is not searched again, so a second run
makes no request at all.

Resuming: run the same command again (with or without ``-s JOBDIR=...``). Every search is
walked again from page 1 (cheap: one request per 150 results) and stored sounds are skipped,
so a crawl killed at any moment, even with SIGKILL, ends like an uninterrupted one. Requests
an earlier run left queued in JOBDIR carry that run's id and are ignored (a killed run's torn
queue is dropped before the crawl starts, see StoreSpider.check_jobdir).

Determinism with parallel downloads: at most ``max_per_class - stored`` previews of a class are
in flight (requested, or downloaded and not yet landed), and another result is tried only when
one fails. The results tried are therefore always a prefix of the result list that holds no
more than ``max_per_class`` successes, which is exactly the set a one-at-a-time client takes,
whatever order the downloads finish in. Previews are *landed* in result order, too: landing
decides which of two identical files is kept (sha256), and the earlier-ranked one must win, in
every run. The spider yields its previews to the item pipeline (crawlers.pipelines, the only
code that stores files) in rank order, holding back one that arrives early until those ranked
before it have been yielded; Scrapy hands yielded items to the pipeline in that order. The
pipeline reports each outcome back (:meth:`FreesoundSpider.landed`), and only then does the
spider count the preview as stored or launch the next candidate. Classes are handled one after
the other, so a sound found by two classes belongs to the first.

A 401/403 stops the crawl with one line (exit 1); 429 and 5xx are retried with backoff by
crawlers.middlewares; a preview that is missing (404) is logged and skipped.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import scrapy
from scrapy.exceptions import CloseSpider

from core.errors import ConfigError
from core.params import Params
from crawlers.freesound import rules
from crawlers.freesound.admission import Candidate, ClassSearch, Fetch, Present, Skip
from crawlers.freesound.client import Unauthorized
from crawlers.items import Download
from crawlers.middlewares import AUTH_META
from crawlers.spiders.base import StoreSpider, describe_failure

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

    search: ClassSearch  # ranks, repeats and what the store holds: shared with the API client
    n: int
    candidates: deque[Candidate] = field(default_factory=deque)
    ok: int = 0  # stored now or before
    in_flight: int = 0  # previews requested whose outcome the pipeline has not reported yet
    launched: int = 0  # sequence number of the next preview requested
    released: int = 0  # sequence number of the next preview to yield to the pipeline
    arrived: dict[int, Download] = field(default_factory=dict)  # downloaded, waiting their turn
    landing: deque[Download] = field(default_factory=deque)  # yielded, outcome not reported
    next_url: str | None = None
    page_pending: bool = True
    done: bool = False

    @property
    def label(self) -> str:
        return self.search.label


class FreesoundSpider(StoreSpider):
    """Search the Freesound API per class and store the allowed HQ previews."""

    name = "freesound"

    @classmethod
    def options(cls, spargs: dict[str, str], params: Params) -> dict[str, Any]:
        cfg = params.freesound
        classes = rules.parse_classes(spargs.get("classes"), params.label.classes)
        raw = spargs.get("max_per_class", cfg.max_per_class)
        try:
            n = int(str(raw))
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"max_per_class must be a whole number of at least 1, not {raw!r}")
        return {"cfg": replace(cfg, max_per_class=n), "classes": classes, "n": n}

    @classmethod
    def preflight(cls, spargs: dict[str, str], settings: BaseSettings) -> None:
        super().preflight(spargs, settings)
        try:
            rules.api_key()
        except rules.MissingKey as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def params_settings(cls, params: Params, settings: BaseSettings) -> dict[str, Any]:
        """The API's rate limit and the retry, timeout and size knobs of ``freesound``."""
        cfg = params.freesound
        rpm = float(settings.get("FREESOUND_REQUESTS_PER_MINUTE") or cfg.requests_per_minute)
        dpm = float(settings.get("FREESOUND_DOWNLOADS_PER_MINUTE") or cfg.downloads_per_minute)
        slots = dict(settings.getdict("DOWNLOAD_SLOTS"))
        # One API request at a time, evenly spaced (no jitter): any rolling minute holds at
        # most rpm requests, retries included.
        slots.setdefault(
            API_SLOT, {"concurrency": 1, "delay": 60.0 / rpm * RATE_MARGIN, "jitter": 0}
        )
        slots.setdefault(PREVIEW_SLOT, {"concurrency": 4, "delay": 60.0 / dpm, "jitter": 0})
        return {
            "DOWNLOAD_SLOTS": slots,
            "RETRY_TIMES": cfg.max_retries,
            "RETRY_BACKOFF_BASE": cfg.backoff_s,
            "DOWNLOAD_TIMEOUT": cfg.timeout_s,
            "DOWNLOAD_MAXSIZE": cfg.max_file_bytes,
        }

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> FreesoundSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        assert isinstance(spider, FreesoundSpider)
        spider.cfg = spider.opts["cfg"]
        spider.base = rules.api_url()
        # Requests queued by an earlier run (JOBDIR) carry another run id and are ignored:
        # this run walks every search again from page 1 (see the module docstring).
        spider.run_id = uuid.uuid4().hex
        spider.todo = deque(spider.opts["classes"])
        spider.runs = {}
        spider.expected_total = len(spider.opts["classes"]) * spider.opts["n"]
        return spider

    def max_bytes(self) -> int:
        return self.params.freesound.max_file_bytes

    # ------------------------------------------------------------------ classes

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for request in self.next_class():
            yield request

    def next_class(self) -> Iterator[scrapy.Request]:
        """Start the next class that still needs sounds (at most one search at a time)."""
        while self.todo:
            run = ClassRun(ClassSearch(self.todo.popleft(), self.cfg, self.store), self.opts["n"])
            self.runs[run.label] = run
            if run.search.complete():
                self.logger.info("%s: %d sounds already stored, not searched", run.label, run.n)
                self.count("present", run.n)
                self.finish(run, run.n)
                continue
            query = urlencode(rules.search_params(run.search.query, self.cfg))
            yield self.search_request(run, rules.search_url(self.base) + "?" + query)
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
            meta={**API_META, "run": self.run_id, "label": run.label},
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
            detail = rules.error_detail(response.body)
            self.close_message = str(Unauthorized(response.status, detail))
            self.logger.error(self.close_message)
            raise CloseSpider("unauthorized")
        run.page_pending = False
        try:
            results, nxt = rules.parse_page(response.json())
        except (ValueError, rules.FreesoundError) as exc:
            self.fail(f"{run.label}: unreadable search page {response.url}: {exc}")
            results, nxt = [], None
        for result in results:
            screened = run.search.screen(result)
            if isinstance(screened, Skip):
                self.crawler.stats.inc_value(f"skipped/{screened.reason}")
            else:
                run.candidates.append(screened)
        if nxt and not rules.is_api_url(nxt, self.base):
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
            decision = run.search.admit(run.candidates.popleft())
            if isinstance(decision, Skip):
                self.crawler.stats.inc_value(f"skipped/{decision.reason}")
            elif isinstance(decision, Present):
                self.count("present")
                run.ok += 1
            else:
                yield self.preview_request(run, decision)
        if run.ok >= run.n:
            self.finish(run, run.ok)
            yield from self.next_class()
        elif not run.candidates and not run.page_pending:
            if run.next_url and run.ok + run.in_flight < run.n:
                yield self.search_request(run, run.next_url)
            elif not run.next_url and not run.in_flight:
                self.finish(run, run.ok)
                yield from self.next_class()

    def preview_request(self, run: ClassRun, fetch: Fetch) -> scrapy.Request:
        meta = {**PREVIEW_META, "run": self.run_id, "label": run.label, "seq": run.launched}
        run.launched += 1
        run.in_flight += 1
        return self.file_request(fetch.url, fetch.sid, fetch.record, fetch.ext, meta=meta)

    def got_file(self, response: Response) -> Iterator[Download]:
        run = self.current(response.meta)
        if run is not None:  # else a preview queued by an earlier run: this run fetches again
            yield from self.release(run, response.meta["seq"], self.file_item(response))

    def file_failed(self, failure: Failure) -> Iterator[Download]:
        meta = failure.request.meta  # type: ignore[attr-defined]
        run = self.current(meta)
        if run is not None:
            yield from self.release(run, meta["seq"], self.failed_item(failure))

    def release(self, run: ClassRun, seq: int, item: Download) -> Iterator[Download]:
        """Yield the previews that are next in line to the pipeline, in the order they were
        requested (rank order); one that arrived early waits here for its turn."""
        run.arrived[seq] = item
        while run.released in run.arrived:
            ready = run.arrived.pop(run.released)
            run.released += 1
            run.landing.append(ready)
            yield ready

    def landed(self, item: Download) -> None:
        """The pipeline's outcome of a preview: count it, then launch what it allows (requests
        go to the engine directly: this is not a callback that could yield them)."""
        run = self.runs.get(str(item.record.get("label", "")))
        at = next((i for i, x in enumerate(run.landing) if x is item), None) if run else None
        if run is None or at is None:
            return
        if at:  # Scrapy hands items on in the order they are yielded; say so if it did not
            self.fail(f"{run.label}: preview {item.id} was landed before one ranked above it")
        del run.landing[at]
        run.in_flight -= 1
        if item.status == "stored":
            run.ok += 1
        for request in self.pump(run):
            self.crawler.engine.crawl(request)

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
