"""The API client against the fake Freesound: the exact sounds and metadata it stores, the
quirks it survives (null results, tokenless ``next``, 429, 500, a cut-off download, a 404
preview), what it never does (send the key anywhere but the API, download twice), and its
command line (one-line errors, exit codes)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from fake_freesound import FakeFreesound

from crawlers import freesound as fs
from crawlers import freesound_api as api
from crawlers.rawstore import METADATA, REFUSED, RawStore

REPO = Path(__file__).resolve().parents[2]
FAST = {
    "page_size": 4,
    "requests_per_minute": 600_000,
    "downloads_per_minute": 600_000,
    "backoff_s": 0.001,
    "max_retries": 3,
    "timeout_s": 10,
    "query": {"kick": "kick drum", "snare": "snare drum"},
}
KICK_FIRST_7 = [1001, 1002, 1010, 1011, 1012, 1013, 1014]


def _cfg(**kw: Any) -> dict[str, Any]:
    return fs.config({"freesound": {**FAST, **kw}})


def _download(
    server: FakeFreesound,
    root: Path,
    classes: list[str],
    n: int,
    cfg: dict[str, Any] | None = None,
    waits: list[float] | None = None,
) -> api.Summary:
    waits = waits if waits is not None else []
    store = RawStore(root, 20 * 2**20)
    return api.download(
        classes, n, cfg or _cfg(), store, key=server.key, base=server.url, sleep=waits.append
    )


def _metadata(root: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (root / METADATA).read_text().splitlines()]


def _audio_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.suffix == ".mp3")


def test_download_takes_exactly_the_first_n_allowed(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    root = tmp_path / "fs"
    waits: list[float] = []
    summary = _download(fake_freesound, root, ["kick"], 5, waits=waits)
    # 1003 (BY-NC) and 1007 (Sampling+) are filtered by license, 1008 by length, 1004 is a
    # null result, 1005 opted out of AI training, 1006's preview 404s, 1009 duplicates 1001.
    assert _audio_files(root) == ["1001.mp3", "1002.mp3", "1010.mp3", "1011.mp3", "1012.mp3"]
    meta = _metadata(root)
    assert [m["id"] for m in meta] == [1001, 1002, 1010, 1011, 1012]
    for m in meta:
        sound = fake_freesound.by_id[m["id"]]
        data = (root / m["file"]).read_bytes()
        assert data == fake_freesound.previews[m["id"]]
        assert m["sha256"] == hashlib.sha256(data).hexdigest()
        assert m["file"] == f"{m['id']}.mp3"
        assert m["license"] == sound.license and m["username"] == sound.username
        assert m["url"] == fake_freesound.sound_url(m["id"])
        assert m["tags"] == sound.tags and m["duration"] == sound.duration
        assert m["label"] == "kick" and m["query"] == "kick drum"
        assert m["retrieved_at"].endswith("Z")
        assert m["source"] == "freesound"
    by_id = {m["id"]: m for m in meta}
    assert by_id[1002]["name"] == 'Kick "Boom" Deep.wav'  # the newline in the name is gone
    assert by_id[1002]["attribution"] == (
        f'Kick "Boom" Deep.wav by beatsmith -- {fake_freesound.sound_url(1002)} -- '
        "License: CC BY 4.0"
    )
    assert by_id[1012]["license_name"] == "CC0 1.0"
    assert [by_id[i]["rank"] for i in (1001, 1002, 1010, 1011, 1012)] == [1, 2, 6, 7, 8]
    assert summary.per_class == {"kick": 5} and summary.downloaded == 5
    assert summary.skipped == {"ai_opt_out": 1, "not_found": 1, "duplicate": 1}
    # The 429 (no Retry-After) waited the "available in 1 second" of its detail; the 500 and
    # the cut-off download were retried with backoff.
    assert waits[0] == 1.0
    assert summary.retries == 3
    statuses = [(r.path, r.status) for r in fake_freesound.requests]
    assert ("/previews/1010-hq.mp3", 500) in statuses
    assert statuses.count(("/previews/1011-hq.mp3", 200)) == 2
    assert ("/previews/1006-hq.mp3", 404) in statuses
    assert (root / REFUSED).is_file() and "duplicate" in (root / REFUSED).read_text()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_key_goes_only_to_the_api_in_the_header(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    _download(fake_freesound, tmp_path / "fs", ["kick"], 5)
    api_reqs = fake_freesound.api_requests()
    pages = sorted({r.query.get("page", "1") for r in api_reqs})
    assert pages == ["1", "2", "3"]  # pages 2 and 3 came from `next`, which has no token
    assert all(r.had_auth and r.auth_via == "header" for r in api_reqs)
    assert all("token" not in r.query for r in fake_freesound.requests)
    previews = fake_freesound.preview_requests()
    assert previews and all(r.auth_via == "" for r in previews)
    assert {r.user_agent for r in fake_freesound.requests} == {api.USER_AGENT}


def test_page_size_is_capped_at_150(fake_freesound: FakeFreesound, tmp_path: Path) -> None:
    _download(fake_freesound, tmp_path / "fs", ["kick"], 2, _cfg(page_size=1000))
    (first,) = fake_freesound.api_requests()
    assert first.query["page_size"] == "150"
    assert first.query["fields"].split(",") == list(fs.FIELDS)


def test_second_run_downloads_nothing_and_asks_nothing(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    root = tmp_path / "fs"
    _download(fake_freesound, root, ["kick"], 5)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.iterdir()}
    fake_freesound.reset()
    summary = _download(fake_freesound, root, ["kick"], 5)
    assert fake_freesound.requests == []
    assert summary.downloaded == 0 and summary.already == 5
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.iterdir()} == before


def test_raising_n_downloads_only_the_new_ones(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    root = tmp_path / "fs"
    _download(fake_freesound, root, ["kick"], 5)
    fake_freesound.reset()
    fake_freesound.clear_quirks()
    summary = _download(fake_freesound, root, ["kick"], 7)
    assert [r.path for r in fake_freesound.preview_requests()] == [
        "/previews/1006-hq.mp3",  # a 404 is not remembered: it may come back
        "/previews/1013-hq.mp3",
        "/previews/1014-hq.mp3",
    ]
    assert summary.downloaded == 2 and summary.already == 5
    assert [m["id"] for m in _metadata(root)] == KICK_FIRST_7


def test_a_sound_belongs_to_the_first_class_that_found_it(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    root = tmp_path / "fs"
    summary = _download(fake_freesound, root, ["kick", "snare"], 8)
    meta = {m["id"]: m for m in _metadata(root)}
    # 2006 is a snare tagged "kick" too: the kick search reaches it first.
    assert sorted(meta) == [*KICK_FIRST_7, 2001, 2003, 2004, 2006]
    assert meta[2006]["label"] == "kick"
    assert summary.skipped["other_class"] == 1
    assert summary.per_class == {"kick": 8, "snare": 3}
    assert "snare 3/8 (no more results)" in summary.line()


def test_license_and_ai_opt_ins(fake_freesound: FakeFreesound, tmp_path: Path) -> None:
    fake_freesound.clear_quirks()
    cfg = _cfg(licenses=["cc0", "cc-by", "cc-by-nc"], allow_ai_opt_out=True)
    _download(fake_freesound, tmp_path / "fs", ["kick"], 5, cfg)
    assert [m["id"] for m in _metadata(tmp_path / "fs")] == [1001, 1002, 1003, 1005, 1010]
    assert (
        'license:("Creative Commons 0" OR "Attribution" OR "Attribution NonCommercial")'
        in (fake_freesound.api_requests()[0].query["filter"])
    )


def test_persistent_server_errors_give_up_with_the_detail(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    fake_freesound.fail("/apiv2/search/", 503, times=10, detail="Service down")
    waits: list[float] = []
    with pytest.raises(fs.FreesoundError, match="HTTP 503: Service down .*gave up after 4 tries"):
        _download(fake_freesound, tmp_path / "fs", ["kick"], 3, waits=waits)
    assert waits == pytest.approx([0.001, 0.002, 0.004])  # exponential backoff
    assert len(fake_freesound.api_requests()) == 4


def test_daily_limit_stops_instead_of_waiting(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    detail = "Request was throttled. Expected available in 43200 seconds."
    fake_freesound.fail("/apiv2/search/", 429, times=5, detail=detail)
    waits: list[float] = []
    with pytest.raises(fs.FreesoundError, match="wait 43200 s .*try again later"):
        _download(fake_freesound, tmp_path / "fs", ["kick"], 3, waits=waits)
    assert waits == []


def test_failing_preview_is_skipped_not_fatal(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    fake_freesound.fail("/previews/1002-hq.mp3", 502, times=10)
    summary = _download(fake_freesound, tmp_path / "fs", ["kick"], 3)
    assert summary.skipped["failed"] == 1
    assert [m["id"] for m in _metadata(tmp_path / "fs")] == [1001, 1010, 1011]


def test_wrong_key_raises_unauthorized(fake_freesound: FakeFreesound, tmp_path: Path) -> None:
    store = RawStore(tmp_path / "fs")
    with pytest.raises(api.Unauthorized) as info:
        api.download(["kick"], 2, _cfg(), store, key="wrong-key", base=fake_freesound.url)
    assert "Invalid token." in str(info.value) and "wrong-key" not in str(info.value)
    assert len(fake_freesound.requests) == 1  # no retry of a refused key


def test_next_leaving_the_api_host_is_refused(tmp_path: Path) -> None:
    client = api.Client(_cfg(), "k", base="https://freesound.org/apiv2")
    with pytest.raises(fs.FreesoundError, match="refusing to send the API key"):
        client.get_json("https://evil.example/apiv2/search/?&page=2")


def test_retry_after_header_and_detail() -> None:
    resp = requests.Response()
    resp.status_code = 429
    resp._content = b'{"detail": "Request was throttled. Expected available in 7 seconds."}'
    assert api.retry_after(resp) == 7.0
    resp.headers["Retry-After"] = "3"
    assert api.retry_after(resp) == 3.0
    resp.headers["Retry-After"] = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert api.retry_after(resp) == 0.0
    resp.status_code = 503
    del resp.headers["Retry-After"]
    assert api.retry_after(resp) is None


def test_rate_limiter_spaces_requests_to_the_limit() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = api.RateLimiter(60, clock=lambda: now[0], sleep=sleep)
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
    cfg = _cfg(requests_per_minute=60, page_size=1)
    client = api.Client(cfg, fake_freesound.key, base=fake_freesound.url)
    client.api_limit = api.RateLimiter(60, clock=lambda: clock[0], sleep=lambda s: None)
    pages = list(client.search_pages("kick"))
    assert len(pages) == len(fake_freesound.api_requests()) > 5
    assert client.api_limit._next == pytest.approx(len(pages) * 61 / 60)  # evenly spaced


# ----------------------------------------------------------------------------- command line


def _params_file(tmp_path: Path, **freesound: Any) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["freesound"].update({**FAST, **freesound})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def _cli(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = api.main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def test_cli_download_and_summary(
    freesound_env: FakeFreesound, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    freesound_env.clear_quirks()
    params = _params_file(tmp_path, page_size=150)
    out_dir = tmp_path / "raw"
    argv = ["--params", str(params), "download", "--classes", "kick", "--max-per-class", "3"]
    code, out, err = _cli([*argv, "--out", str(out_dir), "--no-progress"], capfd)
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("freesound: kick 3/3; 3 downloaded")
    assert _audio_files(out_dir) == ["1001.mp3", "1002.mp3", "1010.mp3"]
    code, out, err = _cli([*argv, "--out", str(out_dir), "--no-progress"], capfd)
    assert code == 0 and "0 downloaded, 3 already stored" in out and "0 API requests" in out


def test_cli_search_prints_json_lines(
    freesound_env: FakeFreesound, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    params = _params_file(tmp_path, page_size=150)
    code, out, err = _cli(["--params", str(params), "search", "--class", "kick", "--all"], capfd)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [
        1001,
        1002,
        1005,
        1006,
        1009,
        1010,
        1011,
        1012,
        1013,
        1014,
        2006,
    ]
    assert {r["id"]: r["skip"] for r in rows}[1005] == "ai_opt_out"
    code, out, _ = _cli(
        ["--params", str(params), "search", "--class", "kick", "--limit", "2"], capfd
    )
    assert [json.loads(x)["id"] for x in out.splitlines()] == [1001, 1002]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FREESOUND_API_KEY": ""}, "FREESOUND_API_KEY is not set: create a key at"),
        ({"FREESOUND_API_KEY": "bad-key-value"}, "Freesound refused the API key (HTTP 401"),
    ],
)
def test_cli_key_problems_are_one_line_exit_2(
    fake_freesound: FakeFreesound,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    env: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.setenv("FREESOUND_API_URL", fake_freesound.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    params = _params_file(tmp_path)
    argv = ["--params", str(params), "download", "--out", str(tmp_path / "raw"), "--no-progress"]
    code, out, err = _cli(argv, capfd)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err
    assert "Traceback" not in err and "bad-key-value" not in out + err
    assert not list((tmp_path / "raw").glob("*.mp3")) if (tmp_path / "raw").exists() else True


def test_cli_api_error_is_one_line_exit_1(
    freesound_env: FakeFreesound, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    freesound_env.fail("/apiv2/search/", 400, times=1, detail="Invalid filter at 'x'")
    params = _params_file(tmp_path)
    argv = ["--params", str(params), "download", "--out", str(tmp_path / "raw"), "--no-progress"]
    code, _, err = _cli(argv, capfd)
    assert code == 1
    assert err == "error: Freesound API: HTTP 400: Invalid filter at 'x'\n"


def test_key_value_is_in_no_file_written(
    freesound_env: FakeFreesound, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    params = _params_file(tmp_path)
    argv = ["--params", str(params), "-v", "download", "--classes", "kick,snare"]
    code, out, err = _cli([*argv, "--out", str(tmp_path / "raw"), "--no-progress"], capfd)
    assert code == 0, err
    key = freesound_env.key.encode()
    assert key not in (out + err).encode()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 5
    for path in written:
        assert key not in path.read_bytes(), path
    assert os.environ["FREESOUND_API_KEY"] == freesound_env.key


def test_a_sound_repeated_on_the_next_page_counts_once(
    fake_freesound: FakeFreesound, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paging can shift while a search is read (a sound uploaded meanwhile): the last result
    of one page comes again at the top of the next. It must not fill a second slot."""
    real = api.Client.search_pages

    def shifted(self: api.Client, query: str):
        last = None
        for page in real(self, query):
            yield ([last] if last is not None else []) + list(page)
            last = page[-1] if page else last

    monkeypatch.setattr(api.Client, "search_pages", shifted)
    summary = _download(fake_freesound, tmp_path, ["kick"], 5)
    assert [r["id"] for r in _metadata(tmp_path)] == KICK_FIRST_7[:5]
    assert summary.per_class == {"kick": 5}
    assert summary.skipped["repeated"] >= 1
