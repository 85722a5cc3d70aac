"""Freesound API client: search, and download the allowed HQ previews per class.

    python -m crawlers.freesound_api search --class kick
    python -m crawlers.freesound_api download --classes kick,snare --max-per-class 200

For each class it searches with that class's query (``freesound.query``) and the filter built
from ``freesound`` in params.yaml (short single hits, allowed licenses), follows ``next``
(which carries no token: the ``Authorization: Token`` header goes with every API request, and
only to the API's own host), and takes the first ``max_per_class`` results that pass the
license / generative-AI / length rules and land safely, in result order. Downloads go to
``data/raw/freesound/`` (one ``<id>.mp3`` per sound and ``metadata.jsonl``) through
:class:`crawlers.rawstore.RawStore`; a class that already has its sounds is not searched
again, so a second run makes no request and downloads nothing.

API requests are spaced to ``freesound.requests_per_minute`` (Freesound allows 60/min and
2000/day by default), preview downloads to ``freesound.downloads_per_minute``. 429, 5xx,
dropped connections and cut-off downloads are retried with exponential backoff (honouring
``Retry-After`` or the "available in N seconds" of a 429's detail); a 404 preview is logged and
skipped; 401 stops the run with one line (exit 2). The key is read from ``FREESOUND_API_KEY``
only and never printed, logged or written.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from tqdm import tqdm

from crawlers import freesound as fs
from crawlers.rawstore import RawStore
from pipeline.config import ConfigError, load_params

log = logging.getLogger("crawlers.freesound_api")

RAW_DIR = Path("data/raw") / fs.SOURCE
USER_AGENT = "oneshot-diffusion/0.1 (drum one-shot dataset builder)"
MAX_BACKOFF_S = 60.0  # longest wait between two tries when the server names no time
MAX_WAIT_S = 300.0  # a server asking for longer (the daily limit) ends the run instead
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


class Unauthorized(fs.FreesoundError):
    """The API refused the key: nothing else will work, so the run stops."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.args = (
            f"Freesound refused the API key (HTTP {status}: {self.detail}); check "
            f"{fs.KEY_ENV} (create a key at {fs.APPLY_URL})",
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
    """Seconds a reply asks to wait (see ``freesound.wait_hint``)."""
    return fs.wait_hint(resp.status_code, resp.headers.get("Retry-After"), resp.content)


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


class Client:
    """One API key's view of Freesound: rate-limited, retrying, key only on API URLs."""

    def __init__(
        self,
        cfg: dict[str, Any],
        key: str,
        base: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self.base = (base or fs.api_url()).rstrip("/")
        self._key = key
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
        self.session = session
        self.sleep = sleep
        self.api_limit = RateLimiter(float(cfg["requests_per_minute"]), sleep=sleep)
        self.download_limit = RateLimiter(float(cfg["downloads_per_minute"]), sleep=sleep)
        self.timeout = float(cfg["timeout_s"])
        self.max_retries = int(cfg["max_retries"])
        self.backoff = float(cfg["backoff_s"])
        self.api_requests = 0
        self.downloads = 0
        self.retries = 0
        self.bytes = 0

    def __repr__(self) -> str:  # never shows the key
        return f"Client(base={self.base!r})"

    # ------------------------------------------------------------------ plumbing

    def _headers(self, url: str) -> dict[str, str]:
        return fs.auth_header(self._key) if fs.is_api_url(url, self.base) else {}

    def _retrying(self, what: str, attempt_fn: Callable[[], T]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                return attempt_fn()
            except _Retry as exc:
                reason = fs.redact(str(exc), self._key)
                if attempt >= self.max_retries:
                    raise fs.FreesoundError(
                        exc.status, f"{what}: {reason} (gave up after {attempt + 1} tries)"
                    ) from None
                wait = exc.wait
                if wait is None:
                    wait = min(MAX_BACKOFF_S, self.backoff * 2**attempt)
                elif wait > MAX_WAIT_S:
                    raise fs.FreesoundError(
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
            detail = fs.error_detail(resp.content)
            wait = retry_after(resp)
            resp.close()
            raise _Retry(f"HTTP {resp.status_code}: {detail}", wait, resp.status_code)
        return resp

    # ------------------------------------------------------------------ API

    def get_json(self, url: str, params: dict[str, str] | None = None) -> Any:
        """One API request (spaced, retried); 401/403 raise Unauthorized, other errors
        FreesoundError with the reply's ``detail``."""
        if not fs.is_api_url(url, self.base):
            raise fs.FreesoundError(0, f"refusing to send the API key to {url.split('?')[0]}")

        def once() -> Any:
            self.api_limit.acquire()
            self.api_requests += 1
            resp = self._get(url, params, stream=False)
            if resp.status_code in (401, 403):
                raise Unauthorized(resp.status_code, fs.error_detail(resp.content))
            if resp.status_code != 200:
                raise fs.FreesoundError(resp.status_code, fs.error_detail(resp.content))
            try:
                return resp.json()
            except ValueError:
                raise _Retry("reply is not JSON (cut off?)") from None

        return self._retrying("search", once)

    def search_pages(self, query: str) -> Iterator[list[dict[str, Any]]]:
        """The results of each page of a search, ``null`` entries dropped, following ``next``."""
        url: str | None = fs.search_url(self.base)
        params: dict[str, str] | None = fs.search_params(query, self.cfg)
        while url:
            results, nxt = fs.parse_page(self.get_json(url, params))
            yield results
            url, params = nxt, None

    # ------------------------------------------------------------------ previews

    def fetch(self, url: str, store: RawStore, sid: str, record: dict[str, Any]) -> str | None:
        """Download one preview into the store; returns None or why it was not stored
        (``not_found``, ``http_<status>``, or the store's refusal code)."""
        ext = fs.preview_extension(url)

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
                length = resp.headers.get("Content-Length")
                expected = (
                    int(length)
                    if length and length.isdigit() and not resp.headers.get("Content-Encoding")
                    else None
                )
                try:
                    refused = store.land(
                        sid, resp.iter_content(1 << 16), ext, record, expected_bytes=expected
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
        except fs.FreesoundError as exc:
            log.warning("%s: skipped", exc)
            return "failed"


def download(
    classes: list[str],
    max_per_class: int,
    cfg: dict[str, Any],
    store: RawStore,
    session: requests.Session | None = None,
    *,
    key: str | None = None,
    base: str | None = None,
    progress: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Make the store hold the first ``max_per_class`` allowed sounds of each class.

    Raises MissingKey (no key), Unauthorized (401/403) and FreesoundError (an API error that
    retries did not cure); the store is compacted however the run ends.
    """
    cfg = {**cfg, "max_per_class": int(max_per_class)}
    client = Client(cfg, key or fs.api_key(), base, session, sleep)
    summary = Summary(wanted={c: int(max_per_class) for c in classes})
    start = time.perf_counter()
    bar = tqdm(
        total=len(classes) * int(max_per_class),
        desc="freesound",
        unit="sound",
        disable=not progress or None,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        for cls in classes:
            _download_class(cls, cfg, client, store, summary, bar)
    finally:
        bar.close()
        store.compact()
        summary.api_requests = client.api_requests
        summary.downloads = client.downloads
        summary.retries = client.retries
        summary.bytes = client.bytes
        summary.seconds = time.perf_counter() - start
    return summary


def _download_class(
    cls: str, cfg: dict[str, Any], client: Client, store: RawStore, summary: Summary, bar: Any
) -> None:
    n = int(cfg["max_per_class"])
    query = fs.query_for(cls, cfg)
    have = len(fs.selected(store.records(), cls, cfg))
    if have >= n:  # stored by an earlier run: no request at all
        summary.per_class[cls] = n
        summary.already += n
        bar.update(n)
        return
    count = 0
    rank = 0
    seen: set[str] = set()
    for page in client.search_pages(query):
        for result in page:
            if count >= n:
                break
            rank += 1
            reason = fs.skip_reason(result, cfg)
            sid = fs.sound_id(result)
            if reason is None and sid in seen:
                reason = "repeated"  # the same sound twice in one search (paging shifted)
            if reason is None and sid is not None:
                seen.add(sid)
                reason = _take(cls, query, rank, result, sid, cfg, client, store, summary)
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


def _take(
    cls: str,
    query: str,
    rank: int,
    result: dict[str, Any],
    sid: str,
    cfg: dict[str, Any],
    client: Client,
    store: RawStore,
    summary: Summary,
) -> str | None:
    """Count one allowed result for ``cls``: stored already, or downloaded now."""
    stored = store.record(sid)
    if stored is not None:
        if stored.get("label") != cls:
            return "other_class"  # one file, one class: the first class that found it
        store.update(sid, {"query": query, "rank": rank})
        summary.already += 1
        return None
    refusal = store.refusal(sid)
    if refusal:
        return refusal
    record = {**fs.sound_record(result, cls, query), "rank": rank}
    outcome = client.fetch(str(record["preview_url"]), store, sid, record)
    if outcome is None:
        summary.downloaded += 1
    return outcome


# ----------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crawlers.freesound_api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Needs {fs.KEY_ENV} (create a key at {fs.APPLY_URL}); "
        f"{fs.URL_ENV} overrides the API base.",
    )
    parser.add_argument("--params", default="params.yaml", help="parameters file (params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every retry and skip")
    sub = parser.add_subparsers(dest="command", required=True)
    search = sub.add_parser(
        "search",
        help="print matching sounds as JSON lines",
        description="Search one class (or any text) and print one JSON object per result: "
        "the metadata record it would get and `skip`, the reason it would not be taken.",
    )
    search.add_argument("--class", dest="cls", required=True, help="class name, e.g. kick")
    search.add_argument("--query", help="search text (default: freesound.query.<class>)")
    search.add_argument("--limit", type=int, default=15, help="results to print (default 15)")
    search.add_argument("--all", action="store_true", help="also print results that are skipped")
    dl = sub.add_parser(
        "download",
        help="download the allowed HQ previews per class",
        description="Download the first --max-per-class allowed previews of each class into "
        "--out, with metadata.jsonl. Already stored sounds are not fetched again.",
    )
    dl.add_argument("--classes", help="comma-separated classes (default: label.classes)")
    dl.add_argument("--max-per-class", type=int, help="default: freesound.max_per_class")
    dl.add_argument("--out", type=Path, default=RAW_DIR, help=f"folder (default {RAW_DIR})")
    dl.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _search(args: argparse.Namespace, cfg: dict[str, Any], known: list[str]) -> int:
    import json

    cls = fs.parse_classes([args.cls], known)[0]
    query = args.query or fs.query_for(cls, cfg)
    client = Client(cfg, fs.api_key())
    shown = 0
    for page in client.search_pages(query):
        for result in page:
            reason = fs.skip_reason(result, cfg)
            if reason and not args.all:
                continue
            record = fs.sound_record(result, cls, query) if fs.sound_id(result) else result
            print(json.dumps({**record, "skip": reason}, ensure_ascii=False), flush=True)
            shown += 1
            if shown >= args.limit:
                return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="freesound: %(message)s",
        stream=sys.stderr,
    )
    try:
        params = load_params(args.params)
        cfg = fs.config(params)
        known = [str(c) for c in (params.get("label") or {}).get("classes") or []]
        if args.command == "search":
            return _search(args, cfg, known)
        classes = fs.parse_classes(args.classes, known)
        n = args.max_per_class if args.max_per_class is not None else int(cfg["max_per_class"])
        if n < 1:
            raise ConfigError("--max-per-class must be at least 1")
        store = RawStore(args.out, int(float(cfg["max_file_mb"]) * 2**20))
        summary = download(classes, n, cfg, store, progress=not args.no_progress)
    except (fs.MissingKey, Unauthorized, ConfigError) as exc:
        print(f"error: {fs.redact(str(exc))}", file=sys.stderr)
        return 2
    except fs.FreesoundError as exc:
        print(f"error: Freesound API: {fs.redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted (stored files are kept; run again to resume)", file=sys.stderr)
        return 130
    print(summary.line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
