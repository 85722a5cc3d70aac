"""What the project's spiders share: params.yaml, the RawStore folder, argument checks.

Every spider stores files through :class:`crawlers.rawstore.RawStore` in
``<RAW_DIR>/<spider name>/`` (default ``data/raw/<name>/``), reads its knobs from params.yaml
(core.params, checked there), and checks its ``-a`` arguments in :meth:`StoreSpider.options`,
which the ``crawl`` command runs before the crawl starts (see crawlers.commands.crawl), so a
bad argument is one line. Spiders only yield items; the item pipeline (crawlers.pipelines)
lands them in the store and reports each outcome back through :meth:`StoreSpider.landed`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from tqdm import tqdm

from core import params as core_params
from core.cli import show_progress
from core.errors import ConfigError
from core.params import Params
from crawlers.freesound import rules
from crawlers.items import Download
from crawlers.rawstore import RawStore

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from crawlers.archive import Limits as ArchiveLimits
    from crawlers.archive import Member

# In JOBDIR while a crawl runs: found at the start of a run, it means the last one was killed.
RUNNING_MARKER = "crawl.running"


def params_file(settings: BaseSettings) -> Path:
    return Path(settings.get("PARAMS_FILE") or "params.yaml")


def load_params(settings: BaseSettings) -> Params:
    """params.yaml (``PARAMS_FILE``), checked; ConfigError names what is wrong."""
    return core_params.load(params_file(settings))


def http_urls(values: list[str], what: str) -> list[str]:
    """The given URLs, each checked to be http(s) with a host (ConfigError otherwise)."""
    urls = []
    for value in values:
        url = str(value).strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{what}: not an http(s) URL: {url[:200]!r}")
        urls.append(url)
    return list(dict.fromkeys(urls))


def describe_failure(failure: Failure) -> str:
    """One line on why a request failed (HTTP status and the reply's ``detail``, or the
    network error), with the API key redacted."""
    exc = failure.value
    if isinstance(exc, HttpError):
        return f"HTTP {exc.response.status}: {rules.error_detail(exc.response.body)}"
    return rules.redact(f"{type(exc).__name__}: {exc}")[:300]


class StoreSpider(scrapy.Spider):
    """Base of the project's spiders: params.yaml, the RawStore folder, argument checks."""

    params: Params
    opts: dict[str, Any]
    raw_dir: str  # also fills %(raw_dir)s in FEEDS
    store: RawStore
    expected_total: int | None = None  # files the crawl aims at, for the progress bar
    close_message: str = ""  # why the crawl stopped early, for the crawl command
    errors: list[str]  # what went wrong without stopping the crawl (exit code 1)
    jobdir: str | None = None

    @classmethod
    def options(cls, spargs: dict[str, str], params: Params) -> dict[str, Any]:
        """The spider's checked options from its ``-a`` arguments and params.yaml; raises
        ConfigError with one line for anything unusable."""
        return {}

    @classmethod
    def preflight(cls, spargs: dict[str, str], settings: BaseSettings) -> None:
        """Everything that can be checked before crawling (the crawl command calls this)."""
        cls.options(spargs, load_params(settings))

    @classmethod
    def params_settings(cls, params: Params, settings: BaseSettings) -> dict[str, Any]:
        """Scrapy settings that follow from params.yaml (limits, retries, ...)."""
        return {}

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        """Apply :meth:`params_settings` at Scrapy's spider priority: over settings.py, under
        ``-s NAME=VALUE`` on the command line."""
        super().update_settings(settings)
        try:
            values = cls.params_settings(load_params(settings), settings)
        except ConfigError:
            return  # the crawl command's preflight reports it, in one line
        for name, value in values.items():
            settings.set(name, value, priority="spider")

    def max_bytes(self) -> int:
        """The largest file this spider stores."""
        return self.params.crawl.max_file_bytes

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> StoreSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.params = load_params(crawler.settings)
        spider.opts = cls.options({k: str(v) for k, v in kwargs.items()}, spider.params)
        spider.raw_dir = str(Path(crawler.settings.get("RAW_DIR") or "data/raw").resolve())
        spider.store = RawStore(Path(spider.raw_dir) / spider.name, spider.max_bytes())
        spider.errors = []
        spider._bar = None
        spider.jobdir = crawler.settings.get("JOBDIR") or None
        if spider.jobdir:
            spider.check_jobdir(Path(spider.jobdir))
        return spider

    def check_jobdir(self, job: Path) -> None:
        """Drop the request queue a killed run left in JOBDIR, and mark this run as running.

        Scrapy writes its disk queues' state only when a crawl stops cleanly; after a kill
        they are torn (a queue file can be empty, which breaks the next push) or replay old
        requests in place of new ones. A crawl here does not need them: it walks its start
        pages again and skips every file already stored.
        """
        marker = job / RUNNING_MARKER
        if marker.exists():
            shutil.rmtree(job / "requests.queue", ignore_errors=True)
            self.logger.warning(
                "JOBDIR %s: the last run did not stop cleanly (killed?); its request queue is "
                "dropped and this run starts over, skipping the files already stored",
                job,
            )
        job.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{os.getpid()}\n", encoding="utf-8")

    def count(self, status: str, n: int = 1) -> None:
        """Count files by outcome (``stored``, ``present``, ``refused``, ``failed``) in the
        stats (and the summary line) and on the progress bar."""
        self.crawler.stats.inc_value(f"store/{status}", n)
        if self._bar is None:
            # A bar only on a terminal, so logs and pipes stay clean.
            self._bar = tqdm(
                total=self.expected_total, desc=self.name, unit="file", disable=not show_progress()
            )
        if status in ("stored", "present"):
            self._bar.update(n)

    def reduce_total(self, n: int) -> None:
        """Fewer files than expected will come (a class ran out of results)."""
        if self.expected_total is not None:
            self.expected_total -= n
            if self._bar is not None:
                self._bar.total = self.expected_total
                self._bar.refresh()

    def fail(self, message: str) -> None:
        """Log a problem that leaves the crawl incomplete; the crawl command exits 1."""
        self.errors.append(message)
        self.logger.error(message)

    # ------------------------------------------------------------------ file downloads

    def file_request(
        self,
        url: str,
        sid: str,
        record: dict[str, Any],
        ext: str,
        *,
        archive: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> scrapy.Request:
        """A request for a file to store as ``sid``; its response becomes a Download item.

        ``dont_filter``: what decides whether to fetch a file is the store (present files are
        never requested), not JOBDIR's list of seen requests, which a killed crawl leaves
        holding requests that never completed.
        """
        return scrapy.Request(
            url,
            callback=self.got_file,
            errback=self.file_failed,
            dont_filter=True,
            meta={
                "handle_httpstatus_list": [404, 410],
                **(meta or {}),
                "download": {
                    "id": sid,
                    "url": url,
                    "record": record,
                    "ext": ext,
                    "archive": archive,
                },
            },
        )

    def got_file(self, response: Response) -> Iterator[Download]:
        yield self.file_item(response)

    def file_failed(self, failure: Failure) -> Iterator[Download]:
        yield self.failed_item(failure)

    def file_item(self, response: Response) -> Download:
        """The Download of a file response: with its body, or failed when it is missing."""
        item = Download(**response.meta["download"])
        if response.status != 200:
            self.logger.warning("%s not found (HTTP %d): skipped", item.url, response.status)
            item.status = "failed:not_found"
        else:
            item.body = response.body
        return item

    def failed_item(self, failure: Failure) -> Download:
        """The Download of a file request that failed (after its retries)."""
        item = Download(**failure.request.meta["download"])  # type: ignore[attr-defined]
        self.logger.warning("%s failed: %s: skipped", item.url, describe_failure(failure))
        exc = failure.value
        if isinstance(exc, HttpError):
            item.status = f"failed:http_{exc.response.status}"
        elif isinstance(exc, IgnoreRequest):
            item.status = "failed:not_allowed"  # robots.txt, or off the site
        else:
            item.status = "failed:download_error"
        return item

    def landed(self, item: Download) -> None:
        """Called by the item pipeline once it has landed (or counted) a Download and set its
        ``status``: a spider whose next requests depend on that outcome overrides this."""

    def archive_limits(self) -> ArchiveLimits:
        """What a downloaded zip archive may hold (archive spiders only)."""
        raise NotImplementedError(f"{self.name} does not download archives")

    def member_record(self, item: Download, member: Member, sid: str) -> dict[str, Any]:
        """The record of one audio member of a downloaded archive (archive spiders only)."""
        raise NotImplementedError(f"{self.name} does not download archives")

    def closed(self, reason: str) -> None:
        if self._bar is not None:
            self._bar.close()
        self.store.compact()
        if self.jobdir:  # stopped cleanly: Scrapy has saved its queue for the next run
            (Path(self.jobdir) / RUNNING_MARKER).unlink(missing_ok=True)
