"""crawlers.middlewares: the key exists only on the wire, retries wait, the cache keeps no key."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler
from twisted.internet.error import ConnectionRefusedError

from crawlers import middlewares as mw
from crawlers.spiders.freesound import API_SLOT, PREVIEW_SLOT, RATE_MARGIN, FreesoundSpider

BASE = "https://freesound.test/apiv2"
KEY = "k-0123456789abcdef"


def _crawler(**settings: Any) -> Any:
    crawler = get_crawler(Spider, settings)
    crawler.spider = crawler._create_spider("test")
    return crawler


@pytest.fixture
def auth(monkeypatch: pytest.MonkeyPatch) -> mw.FreesoundAuthMiddleware:
    monkeypatch.setenv("FREESOUND_API_KEY", KEY)
    return mw.FreesoundAuthMiddleware(BASE)


def _api(url: str = f"{BASE}/search/?query=kick") -> Request:
    return Request(url, meta={mw.AUTH_META: True})


def test_key_is_added_at_download_time_and_removed_after(auth: mw.FreesoundAuthMiddleware) -> None:
    request = _api()
    assert b"Authorization" not in request.headers
    auth.process_request(request)
    assert request.headers[b"Authorization"] == f"Token {KEY}".encode()
    response = Response(request.url, status=200, request=request)
    assert auth.process_response(request, response) is response
    assert b"Authorization" not in request.headers

    failed = _api()
    auth.process_request(failed)
    assert auth.process_exception(failed, ConnectionRefusedError()) is None
    assert b"Authorization" not in failed.headers


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.freesound.test/previews/1-hq.mp3",  # another host
        "http://freesound.test/apiv2/search/",  # not https
        "https://freesound.test:8443/apiv2/search/",  # another port
        "https://freesound.test/apiv2x/search/",  # not under the base path
        "https://freesound.test/people/x/sounds/1/",  # the website
    ],
)
def test_key_goes_to_the_api_only(auth: mw.FreesoundAuthMiddleware, url: str) -> None:
    request = _api(url)  # flagged, e.g. a redirect that kept the request's meta
    auth.process_request(request)
    assert b"Authorization" not in request.headers


def test_unflagged_requests_are_left_alone(auth: mw.FreesoundAuthMiddleware) -> None:
    request = Request(f"{BASE}/search/", headers={"Authorization": "Basic user-set"})
    auth.process_request(request)
    auth.process_response(request, Response(request.url, request=request))
    assert request.headers[b"Authorization"] == b"Basic user-set"


def test_without_a_key_the_request_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FREESOUND_API_KEY", raising=False)
    with pytest.raises(IgnoreRequest, match="FREESOUND_API_KEY is not set"):
        mw.FreesoundAuthMiddleware(BASE).process_request(_api())


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({}, None), ({"Retry-After": "7"}, 7.0), ({"Retry-After": "soon"}, None)],
)
def test_retry_after(headers: dict[str, str], wait: float | None) -> None:
    assert mw.retry_after(Response("http://x/", status=429, headers=headers)) == wait


def test_retry_after_as_a_date() -> None:
    date = formatdate(time.time() + 30, usegmt=True)
    got = mw.retry_after(Response("http://x/", status=503, headers={"Retry-After": date}))
    assert got is not None and 25 <= got <= 31


def test_backoff_doubles_up_to_the_cap() -> None:
    retry = mw.BackoffRetryMiddleware.from_crawler(
        _crawler(RETRY_BACKOFF_BASE=0.5, RETRY_BACKOFF_MAX=3.0)
    )
    assert [retry.backoff(n) for n in (1, 2, 3, 4, 9)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def _retry(**settings: Any) -> mw.BackoffRetryMiddleware:
    return mw.BackoffRetryMiddleware.from_crawler(
        _crawler(RETRY_BACKOFF_BASE=4.0, RETRY_TIMES=2, **settings)
    )


def test_a_429_is_retried_later_and_pauses_its_slot() -> None:
    retry = _retry()
    request = Request("http://api.test/search/", meta={"download_slot": "api"})
    t0 = time.time()
    again = retry.process_response(request, Response(request.url, status=429, request=request))
    assert isinstance(again, Request) and again.meta["retry_times"] == 1
    assert t0 + 4.0 <= again.meta[mw.NOT_BEFORE] <= time.time() + 4.0
    assert retry._paused_until["api"] >= t0 + 4.0  # other requests to the slot wait too
    second = retry.process_response(again, Response(again.url, status=429, request=again))
    assert isinstance(second, Request) and second.meta[mw.NOT_BEFORE] >= t0 + 8.0
    final = Response(again.url, status=429, request=second)
    assert retry.process_response(second, final) is final  # RETRY_TIMES spent: handed on


def test_retry_after_is_honoured_unless_it_is_too_long() -> None:
    retry = _retry(RETRY_AFTER_MAX=60)
    request = Request("http://api.test/x")
    t0 = time.time()
    again = retry.process_response(
        request, Response(request.url, status=503, headers={"Retry-After": "20"})
    )
    assert isinstance(again, Request)
    assert t0 + 20 <= again.meta[mw.NOT_BEFORE] <= time.time() + 20
    daily = Response(request.url, status=429, headers={"Retry-After": "86400"})
    assert retry.process_response(request, daily) is daily


def test_a_dropped_connection_is_retried_with_backoff() -> None:
    retry = _retry()
    request = Request("http://api.test/x")
    again = retry.process_exception(request, ConnectionRefusedError())
    assert isinstance(again, Request) and again.meta[mw.NOT_BEFORE] > time.time() + 3


def test_process_request_waits_until_the_retry_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    retry = _retry()
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(mw.asyncio, "sleep", fake_sleep)
    due = Request("http://api.test/x", meta={mw.NOT_BEFORE: time.time() + 5, "download_slot": "a"})
    now = Request("http://api.test/y", meta={"download_slot": "b"})
    paused = Request("http://api.test/z", meta={"download_slot": "a"})
    retry._paused_until["a"] = time.time() + 3
    for request in (due, now, paused):
        assert asyncio.run(retry.process_request(request)) is None
    assert len(waits) == 2
    assert 4 < waits[0] <= 5 and 2 < waits[1] <= 3


def test_the_cache_stores_no_credentials(tmp_path: Path) -> None:
    crawler = _crawler(HTTPCACHE_DIR=str(tmp_path))
    storage = mw.KeylessCacheStorage(crawler.settings)
    storage.open_spider(crawler.spider)
    request = Request(
        f"{BASE}/search/", headers={"Authorization": f"Token {KEY}", "X-Other": "kept"}
    )
    response = Response(request.url, status=200, body=b"{}", request=request)
    storage.store_response(crawler.spider, request, response)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written
    assert not any(KEY.encode() in p.read_bytes() for p in written)
    assert any(b"X-Other" in p.read_bytes() for p in written)
    assert request.headers[b"Authorization"]  # the caller's request is not changed
    cached = storage.retrieve_response(crawler.spider, Request(f"{BASE}/search/"))
    assert cached is not None and cached.body == b"{}"


def test_the_api_slot_keeps_to_the_rate_limit(params: dict[str, Any]) -> None:
    """N requests/min in params.yaml -> one API request at a time, 60/N seconds apart."""
    cfg = params["freesound"]
    settings = Settings({"PARAMS_FILE": str(Path(__file__).parents[2] / "params.yaml")})
    FreesoundSpider.update_settings(settings)
    slots = settings.getdict("DOWNLOAD_SLOTS")
    delay = 60 / cfg["requests_per_minute"] * RATE_MARGIN
    assert RATE_MARGIN > 1
    assert slots[API_SLOT] == {"concurrency": 1, "delay": delay, "jitter": 0}
    assert slots[PREVIEW_SLOT]["delay"] == pytest.approx(60 / cfg["downloads_per_minute"])
    assert settings.getint("RETRY_TIMES") == cfg["max_retries"]
    assert settings.getfloat("RETRY_BACKOFF_BASE") == cfg["backoff_s"]

    override = Settings({"PARAMS_FILE": settings["PARAMS_FILE"]})
    override.set("FREESOUND_REQUESTS_PER_MINUTE", 30, priority="cmdline")
    override.set("RETRY_TIMES", 9, priority="cmdline")
    FreesoundSpider.update_settings(override)
    assert override.getdict("DOWNLOAD_SLOTS")[API_SLOT]["delay"] == 2.0 * RATE_MARGIN
    assert override.getint("RETRY_TIMES") == 9  # the command line wins over params.yaml
