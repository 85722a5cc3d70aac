"""The API client's HTTP side: the key only in the header and only to the API, retries with
backoff and their limits, the rate limiter, a refused key."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from download_helpers import fast_cfg, run_download
from fake_freesound import FakeFreesound

from crawlers.freesound import rules
from crawlers.freesound.client import USER_AGENT, Client, RateLimiter, Unauthorized, retry_after
from crawlers.freesound.download import download
from crawlers.rawstore import RawStore


def test_key_goes_only_to_the_api_in_the_header(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    run_download(fake_freesound, tmp_path / "fs", ["kick"], 5)
    api_reqs = fake_freesound.api_requests()
    pages = sorted({r.query.get("page", "1") for r in api_reqs})
    assert pages == ["1", "2", "3"]  # pages 2 and 3 came from `next`, which has no token
    assert all(r.had_auth and r.auth_via == "header" for r in api_reqs)
    assert all("token" not in r.query for r in fake_freesound.requests)
    previews = fake_freesound.preview_requests()
    assert previews and all(r.auth_via == "" for r in previews)
    assert {r.user_agent for r in fake_freesound.requests} == {USER_AGENT}


def test_page_size_is_capped_at_150(fake_freesound: FakeFreesound, tmp_path: Path) -> None:
    run_download(fake_freesound, tmp_path / "fs", ["kick"], 2, fast_cfg(page_size=1000))
    (first,) = fake_freesound.api_requests()
    assert first.query["page_size"] == "150"
    assert first.query["fields"].split(",") == list(rules.FIELDS)


def test_persistent_server_errors_give_up_with_the_detail(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    fake_freesound.fail("/apiv2/search/", 503, times=10, detail="Service down")
    waits: list[float] = []
    gave_up = "HTTP 503: Service down .*gave up after 4 tries"
    with pytest.raises(rules.FreesoundError, match=gave_up):
        run_download(fake_freesound, tmp_path / "fs", ["kick"], 3, waits=waits)
    assert waits == pytest.approx([0.001, 0.002, 0.004])  # exponential backoff
    assert len(fake_freesound.api_requests()) == 4


def test_daily_limit_stops_instead_of_waiting(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    detail = "Request was throttled. Expected available in 43200 seconds."
    fake_freesound.fail("/apiv2/search/", 429, times=5, detail=detail)
    waits: list[float] = []
    with pytest.raises(rules.FreesoundError, match="wait 43200 s .*try again later"):
        run_download(fake_freesound, tmp_path / "fs", ["kick"], 3, waits=waits)
    assert waits == []


def test_wrong_key_raises_unauthorized(fake_freesound: FakeFreesound, tmp_path: Path) -> None:
    store = RawStore(tmp_path / "fs", 20 * 2**20)
    with pytest.raises(Unauthorized) as info:
        download(["kick"], 2, fast_cfg(), store, key="wrong-key", base=fake_freesound.url)
    assert "Invalid token." in str(info.value) and "wrong-key" not in str(info.value)
    assert len(fake_freesound.requests) == 1  # no retry of a refused key


def test_next_leaving_the_api_host_is_refused(tmp_path: Path) -> None:
    client = Client(fast_cfg(), "k", base="https://freesound.org/apiv2")
    with pytest.raises(rules.FreesoundError, match="refusing to send the API key"):
        client.get_json("https://evil.example/apiv2/search/?&page=2")


def test_retry_after_header_and_detail() -> None:
    resp = requests.Response()
    resp.status_code = 429
    resp._content = b'{"detail": "Request was throttled. Expected available in 7 seconds."}'
    assert retry_after(resp) == 7.0
    resp.headers["Retry-After"] = "3"
    assert retry_after(resp) == 3.0
    resp.headers["Retry-After"] = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after(resp) == 0.0
    resp.status_code = 503
    del resp.headers["Retry-After"]
    assert retry_after(resp) is None


def test_rate_limiter_spaces_requests_to_the_limit() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(60, clock=lambda: now[0], sleep=sleep)
    stamps = []
    for _ in range(120):
        limiter.acquire()
        stamps.append(now[0])
    assert stamps[:3] == pytest.approx([0.0, 61 / 60, 122 / 60])
    # No rolling minute ever holds more than 60 requests, even if each arrives up to 1 s late
    # and the earlier one on time.
    assert max(sum(1 for t in stamps if s <= t < s + 60.999) for s in stamps) == 60


def test_client_respects_the_server_rate_limit(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    """At the configured pace (simulated clock) the server's 60/min limit is never hit."""
    fake_freesound.clear_quirks()
    clock = [0.0]
    cfg = fast_cfg(requests_per_minute=60, page_size=1)
    client = Client(cfg, fake_freesound.key, base=fake_freesound.url)
    client.api_limit = RateLimiter(60, clock=lambda: clock[0], sleep=lambda s: None)
    pages = list(client.search_pages("kick"))
    assert len(pages) == len(fake_freesound.api_requests()) > 5
    assert client.api_limit._next == pytest.approx(len(pages) * 61 / 60)  # evenly spaced
