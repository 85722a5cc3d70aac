"""Downloader middlewares and HTTP cache storage of the crawlers project.

- :class:`FreesoundAuthMiddleware` puts the API key on a request only while it is on the wire.
- :class:`BackoffRetryMiddleware` is Scrapy's retry middleware with a wait before each retry.
- :class:`KeylessCacheStorage` is the file-system HTTP cache without credentials.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.extensions.httpcache import FilesystemCacheStorage
from scrapy.http import Headers

from crawlers.freesound import rules

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

log = logging.getLogger(__name__)

AUTH_META = "freesound_auth"  # request.meta flag: this request goes to the API with the key
NOT_BEFORE = "retry_not_before"  # request.meta: wall-clock time before which it is not sent
_SECRET_HEADERS = (b"Authorization", b"Proxy-Authorization")


class FreesoundAuthMiddleware:
    """Adds ``Authorization: Token <key>`` to API requests as they leave, removes it on return.

    A request object outlives its download: a retry or a redirect copies it, ``JOBDIR``
    pickles queued requests to disk, the HTTP cache writes request headers next to the
    response. A key set by the spider would be in every one of those copies. Placed at 950,
    after the HTTP cache (900) and before the downloader, this middleware is the last to see
    a request going out and the first to see it come back, so the header exists only while
    the request is on the wire. Only requests flagged with ``meta["freesound_auth"]`` whose
    URL lies under the API base get the key: a redirect elsewhere never carries it.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FreesoundAuthMiddleware:
        return cls(rules.api_url())

    def process_request(self, request: Request) -> None:
        if not request.meta.get(AUTH_META):
            return None
        if not rules.is_api_url(request.url, self.base_url):
            log.warning("not sending the API key to %s: outside %s", request.url, self.base_url)
            return None
        try:
            key = rules.api_key()
        except rules.MissingKey as exc:
            raise IgnoreRequest(str(exc)) from None
        request.headers.update(rules.auth_header(key))
        return None

    def process_response(self, request: Request, response: Response) -> Response:
        _strip(request)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        _strip(request)
        return None


def _strip(request: Request) -> None:
    if request.meta.get(AUTH_META):
        request.headers.pop(b"Authorization", None)


def retry_after(response: Response) -> float | None:
    """Seconds a reply asks to wait (see ``rules.wait_hint``), or None."""
    value = response.headers.get(b"Retry-After")
    header = value.decode("latin-1") if value else None
    return rules.wait_hint(response.status, header, response.body)


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retries (same settings, stats and logging), with a wait before each retry.

    Scrapy's own middleware re-sends a failed request at once, which against a rate-limited
    API only earns more 429s. Here a retry waits ``RETRY_BACKOFF_BASE * 2**(n-1)`` seconds
    (capped at ``RETRY_BACKOFF_MAX``), or what the server's ``Retry-After`` says (up to
    ``RETRY_AFTER_MAX``; beyond that the reply is handed on, not retried). A 429 also holds
    back every other request to the same download slot for that long: the limit is the
    client's, not the request's. The wait happens in ``process_request``, so it works the same
    for requests that went through the scheduler (and ``JOBDIR``: the time is stored in
    ``meta``) and for downloads the item pipeline makes directly.
    """

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.base = settings.getfloat("RETRY_BACKOFF_BASE", 2.0)
        self.cap = settings.getfloat("RETRY_BACKOFF_MAX", 120.0)
        self.after_max = settings.getfloat("RETRY_AFTER_MAX", 600.0)
        self._paused_until: dict[str, float] = {}

    def backoff(self, retry_times: int) -> float:
        """Seconds to wait before the ``retry_times``-th retry."""
        return min(self.cap, self.base * 2 ** max(0, retry_times - 1))

    def _slot(self, request: Request) -> str:
        slot = request.meta.get("download_slot")
        if slot is None:
            slot = self.crawler.engine.downloader.get_slot_key(request)
        return str(slot)

    async def process_request(self, request: Request) -> None:
        until = max(
            float(request.meta.get(NOT_BEFORE, 0.0)),
            self._paused_until.get(self._slot(request), 0.0),
        )
        wait = until - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        return None

    def process_response(self, request: Request, response: Response) -> Request | Response:
        asked = retry_after(response) if response.status in self.retry_http_codes else None
        if asked is not None and asked > self.after_max and not request.meta.get("dont_retry"):
            log.warning(
                "HTTP %d from %s asks to wait %.0f s (over RETRY_AFTER_MAX): not retried",
                response.status,
                request.url,
                asked,
            )
            return response
        result = super().process_response(request, response)
        if isinstance(result, Request):
            wait = asked if asked is not None else self.backoff(result.meta["retry_times"])
            self._hold(result, wait, f"HTTP {response.status}")
            if response.status == 429:
                slot = self._slot(request)
                self._paused_until[slot] = max(
                    self._paused_until.get(slot, 0.0), time.time() + wait
                )
        return result

    def process_exception(
        self, request: Request, exception: Exception
    ) -> Request | Response | None:
        result = super().process_exception(request, exception)
        if isinstance(result, Request):
            self._hold(result, self.backoff(result.meta["retry_times"]), type(exception).__name__)
        return result

    def _hold(self, request: Request, wait: float, why: str) -> None:
        request.meta[NOT_BEFORE] = time.time() + wait
        log.info(
            "%s from %s: retry %d in %.1f s",
            why,
            request.url,
            request.meta.get("retry_times", 0),
            wait,
        )


class KeylessCacheStorage(FilesystemCacheStorage):
    """The file-system HTTP cache, never writing credential headers of a request.

    The auth middleware already removes the key before the cache sees a request; this is the
    second lock on the same door, for a request that got a credential some other way.
    """

    def store_response(self, spider: Spider, request: Request, response: Response) -> None:
        if any(h in request.headers for h in _SECRET_HEADERS):
            headers: Any = Headers(request.headers)
            for h in _SECRET_HEADERS:
                headers.pop(h, None)
            request = request.replace(headers=headers)
        super().store_response(spider, request, response)
