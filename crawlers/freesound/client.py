"""The Freesound API over HTTP: rate-limited, retrying, with the key only on API URLs.

API requests are spaced to ``freesound.requests_per_minute`` (Freesound allows 60/min and
2000/day by default), preview downloads to ``freesound.downloads_per_minute``. 429, 5xx,
dropped connections and cut-off downloads are retried with exponential backoff (honouring
``Retry-After`` or the "available in N seconds" of a 429's detail); a 404 preview is logged and
skipped; 401/403 raise :class:`Unauthorized`. The key is never printed, logged or written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests

from core.params import Freesound
from crawlers.freesound import rules
from crawlers.rawstore import RawStore

log = logging.getLogger("crawlers.freesound_api")

USER_AGENT = "oneshot-diffusion/0.1 (drum one-shot dataset builder)"
MAX_BACKOFF_S = 60.0  # longest wait between two tries when the server names no time
MAX_WAIT_S = 300.0  # a server asking for longer (the daily limit) ends the run instead
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


class Unauthorized(rules.FreesoundError):
    """The API refused the key: nothing else will work, so the run stops."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.args = (
            f"Freesound refused the API key (HTTP {status}: {self.detail}); check "
            f"{rules.KEY_ENV} (create a key at {rules.APPLY_URL})",
        )


class _Retry(Exception):
    """A try that may succeed later; ``wait`` is the server's hint in seconds, if any."""

    def __init__(self, what: str, wait: float | None = None, status: int = 0) -> None:
        super().__init__(what)
        self.wait = wait
        self.status = status


class RateLimiter:
    """Spaces calls evenly (no bursts, across threads) so that any rolling minute holds at
    most ``per_minute`` calls *as the server sees them*.

    The server counts arrivals, which lag the calls by a varying delay (a new connection, a
    busy network): calls exactly ``60 / per_minute`` apart can put ``per_minute + 1`` arrivals
    in one minute and earn a 429 (measured: bench/freesound_api.py). So the calls of one
    minute's allowance are spread over ``60 + margin_s`` seconds.
    """

    def __init__(
        self,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin_s: float = 1.0,
    ) -> None:
        self.interval = (60.0 + margin_s) / float(per_minute)
        self.clock = clock
        self.sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self.sleep(start - now)


def retry_after(resp: requests.Response) -> float | None:
    """Seconds a reply asks to wait (see ``rules.wait_hint``)."""
    return rules.wait_hint(resp.status_code, resp.headers.get("Retry-After"), resp.content)


def _expected_bytes(resp: requests.Response) -> int | None:
    """The body's length as the server announced it, when it can be checked (not encoded)."""
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and not resp.headers.get("Content-Encoding"):
        return int(length)
    return None


class Client:
    """One API key's view of Freesound: rate-limited, retrying, key only on API URLs."""

    def __init__(
        self,
        cfg: Freesound,
        key: str,
        base: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self.base = (base or rules.api_url()).rstrip("/")
        self._key = key
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
        self.session = session
        self.sleep = sleep
        self.api_limit = RateLimiter(cfg.requests_per_minute, sleep=sleep)
        self.download_limit = RateLimiter(cfg.downloads_per_minute, sleep=sleep)
        self.timeout = cfg.timeout_s
        self.max_retries = cfg.max_retries
        self.backoff = cfg.backoff_s
        self.api_requests = 0
        self.downloads = 0
        self.retries = 0
        self.bytes = 0

    def __repr__(self) -> str:  # never shows the key
        return f"Client(base={self.base!r})"

    # ------------------------------------------------------------------ plumbing

    def _headers(self, url: str) -> dict[str, str]:
        return rules.auth_header(self._key) if rules.is_api_url(url, self.base) else {}

    def _retrying(self, what: str, attempt_fn: Callable[[], T]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                return attempt_fn()
            except _Retry as exc:
                reason = rules.redact(str(exc), self._key)
                if attempt >= self.max_retries:
                    raise rules.FreesoundError(
                        exc.status, f"{what}: {reason} (gave up after {attempt + 1} tries)"
                    ) from None
                wait = exc.wait
                if wait is None:
                    wait = min(MAX_BACKOFF_S, self.backoff * 2**attempt)
                elif wait > MAX_WAIT_S:
                    raise rules.FreesoundError(
                        exc.status,
                        f"{what}: {reason}; the server asks to wait {wait:.0f} s "
                        "(daily request limit reached?): try again later",
                    ) from None
                log.warning(
                    "%s: %s; retry %d/%d in %.1f s",
                    what,
                    reason,
                    attempt + 1,
                    self.max_retries,
                    wait,
                )
                self.retries += 1
                self.sleep(wait)
        raise AssertionError("unreachable")

    def _get(self, url: str, params: dict[str, str] | None, stream: bool) -> requests.Response:
        try:
            resp = self.session.get(
                url, params=params, headers=self._headers(url), timeout=self.timeout, stream=stream
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code in RETRY_STATUSES:
            detail = rules.error_detail(resp.content)
            wait = retry_after(resp)
            resp.close()
            raise _Retry(f"HTTP {resp.status_code}: {detail}", wait, resp.status_code)
        return resp

    # ------------------------------------------------------------------ API

    def get_json(self, url: str, params: dict[str, str] | None = None) -> Any:
        """One API request (spaced, retried); 401/403 raise Unauthorized, other errors
        FreesoundError with the reply's ``detail``."""
        if not rules.is_api_url(url, self.base):
            raise rules.FreesoundError(0, f"refusing to send the API key to {url.split('?')[0]}")

        def once() -> Any:
            self.api_limit.acquire()
            self.api_requests += 1
            resp = self._get(url, params, stream=False)
            if resp.status_code in (401, 403):
                raise Unauthorized(resp.status_code, rules.error_detail(resp.content))
            if resp.status_code != 200:
                raise rules.FreesoundError(resp.status_code, rules.error_detail(resp.content))
            try:
                return resp.json()
            except ValueError:
                raise _Retry("reply is not JSON (cut off?)") from None

        return self._retrying("search", once)

    def search_pages(self, query: str) -> Iterator[list[dict[str, Any]]]:
        """The results of each page of a search, ``null`` entries dropped, following ``next``."""
        url: str | None = rules.search_url(self.base)
        params: dict[str, str] | None = rules.search_params(query, self.cfg)
        while url:
            results, nxt = rules.parse_page(self.get_json(url, params))
            yield results
            url, params = nxt, None

    # ------------------------------------------------------------------ previews

    def fetch(self, url: str, store: RawStore, sid: str, record: dict[str, Any]) -> str | None:
        """Download one preview into the store; returns None or why it was not stored
        (``not_found``, ``http_<status>``, ``failed`` or the store's refusal code)."""
        ext = rules.preview_extension(url)

        def once() -> str | None:
            self.download_limit.acquire()
            self.downloads += 1
            resp = self._get(url, None, stream=True)
            with resp:
                if resp.status_code == 404:
                    log.warning("preview of %s not found (404): skipped", sid)
                    return "not_found"
                if resp.status_code != 200:
                    log.warning("preview of %s: HTTP %d: skipped", sid, resp.status_code)
                    return f"http_{resp.status_code}"
                try:
                    refused = store.land(
                        sid,
                        resp.iter_content(1 << 16),
                        ext,
                        record,
                        expected_bytes=_expected_bytes(resp),
                    )
                except (requests.RequestException, OSError) as exc:
                    raise _Retry(f"download cut off: {type(exc).__name__}") from None
                if refused == "incomplete":
                    raise _Retry("download cut off (short body)")
                if refused is None:
                    path = store.path(sid)
                    self.bytes += path.stat().st_size if path else 0
                return refused

        try:
            return self._retrying(f"preview {sid}", once)
        except rules.FreesoundError as exc:
            log.warning("%s: skipped", exc)
            return "failed"
