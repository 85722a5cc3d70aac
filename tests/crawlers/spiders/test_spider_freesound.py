"""``scrapy crawl freesound`` as a subprocess against the fake Freesound server.

The fake catalogue (fake_freesound.default_sounds) puts these kicks in the filtered search,
in order: 1001, 1002, null, 1005 (opted out of AI training), 1006 (preview 404), 1009 (same
audio as 1001), 1010 (preview 500 once), 1011 (preview cut short once), 1012, 1013, 1014.
With page_size 4 the crawl pages through ``next`` (page 2 answers 429 once).
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from crawl_helpers import REPO, clean_env, crawl, crawl_cmd, files, records

from core.provenance import one_line

KICKS_IN_ORDER = ["1001", "1002", "1010", "1011", "1012", "1013", "1014"]
# CONTRACT: the keys every metadata.jsonl object must have.
CONTRACT_KEYS = {"id", "name", "username", "license", "url", "tags", "duration", "query"}
CONTRACT_KEYS |= {"label", "file", "sha256", "retrieved_at"}


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """The repo's params.yaml with small search pages, so a crawl follows ``next``, and no
    rate limit or long backoff against the local server (for the API client too)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["freesound"].update(
        page_size=4, requests_per_minute=60000, downloads_per_minute=60000, backoff_s=0.05
    )
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def _env(server: Any, key: str | None = None) -> dict[str, str]:
    return clean_env(
        FREESOUND_API_KEY=server.key if key is None else key, FREESOUND_API_URL=server.url
    )


def _kicks(n: int) -> list[str]:
    return ["-a", "classes=kick", "-a", f"max_per_class={n}"]


def _crawl(server: Any, raw: Path, params_file: Path, n: int, *more: str, **kw: Any):
    env = kw.pop("env", None) or _env(server)
    return crawl("freesound", raw, *_kicks(n), *more, env=env, PARAMS_FILE=str(params_file), **kw)


def _comparable(folder: Path) -> dict[str, dict[str, Any]]:
    """Records without the retrieval time, which differs between two crawls."""
    return {
        sid: {k: v for k, v in rec.items() if k != "retrieved_at"}
        for sid, rec in records(folder).items()
    }


def test_collects_exactly_the_first_n_allowed_sounds_then_nothing(
    fake_freesound: Any, tmp_path: Path, params_file: Path
) -> None:
    raw = tmp_path / "raw"
    result = _crawl(fake_freesound, raw, params_file, 5)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    store = raw / "freesound"
    wanted = KICKS_IN_ORDER[:5]
    assert files(store) == {f"{sid}.mp3" for sid in wanted}
    recs = records(store)
    assert sorted(recs, key=int) == wanted
    assert [json.loads(line)["id"] for line in (store / "metadata.jsonl").open()] == [
        int(s) for s in wanted
    ]  # compacted: one line per sound, sorted by id
    for sid, rec in recs.items():
        sound = fake_freesound.by_id[int(sid)]
        assert rec.keys() >= CONTRACT_KEYS
        assert rec["id"] == int(sid) and rec["file"] == f"{sid}.mp3"
        data = (store / rec["file"]).read_bytes()
        assert rec["sha256"] == hashlib.sha256(data).hexdigest()
        assert data == fake_freesound.previews[int(sid)]
        assert rec["name"] == one_line(sound.name)
        assert rec["username"] == sound.username
        assert rec["license"] == sound.license
        assert rec["url"] == fake_freesound.sound_url(int(sid))
        assert rec["tags"] == sound.tags and rec["duration"] == sound.duration
        assert (rec["label"], rec["query"], rec["source"]) == ("kick", "kick drum", "freesound")
        assert rec["attribution"] == (
            f"{rec['name']} by {sound.username} -- {rec['url']} -- License: {rec['license_name']}"
        )
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["retrieved_at"])
    assert recs["1002"]["name"] == 'Kick "Boom" Deep.wav'  # a newline from the web is gone
    assert recs["1002"]["license_name"] == "CC BY 4.0"

    reqs = fake_freesound.requests
    api = fake_freesound.api_requests()
    assert api and all(r.had_auth and r.auth_via == "header" for r in api)
    assert not any(r.auth_via for r in fake_freesound.preview_requests())  # key: API only
    assert [r.status for r in api if r.query.get("page") == "2"] == [429, 200]
    assert {r.query.get("page", "1") for r in api} == {"1", "2", "3"}
    assert not any(r.path.startswith("/people/") for r in reqs)  # the website is not crawled
    assert "/previews/1005-hq.mp3" not in {r.path for r in reqs}  # opted out: never fetched
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("freesound: kick 5/5; 5 stored"), summary

    fake_freesound.reset()
    again = _crawl(fake_freesound, raw, params_file, 5)
    assert again.returncode == 0, again.stderr
    assert fake_freesound.requests == []  # every class complete: no search, no download
    assert records(store) == recs  # untouched, retrieval times included
    assert "0 stored, 5 already present" in again.stdout


def test_the_spider_and_the_api_client_store_the_same_sounds(
    fake_freesound: Any, tmp_path: Path, params_file: Path
) -> None:
    result = _crawl(fake_freesound, tmp_path / "spider", params_file, 6)
    assert result.returncode == 0, result.stderr
    fake_freesound.reset()
    client = subprocess.run(
        [
            sys.executable,
            "-m",
            "crawlers.freesound_api",
            "--params",
            str(params_file),
            "download",
            "--classes",
            "kick",
            "--max-per-class",
            "6",
            "--out",
            str(tmp_path / "client" / "freesound"),
            "--no-progress",
        ],
        cwd=REPO,
        env=_env(fake_freesound),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert client.returncode == 0, client.stderr
    spider, api = (
        _comparable(tmp_path / "spider" / "freesound"),
        _comparable(tmp_path / "client" / "freesound"),
    )
    assert sorted(spider, key=int) == KICKS_IN_ORDER[:6]
    assert spider == api


def test_without_a_key_one_line_says_how_to_get_one(fake_freesound: Any, tmp_path: Path) -> None:
    env = clean_env(FREESOUND_API_URL=fake_freesound.url)
    result = crawl("freesound", tmp_path / "raw", "-a", "classes=kick", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [
        "error: FREESOUND_API_KEY is not set: create a key at "
        "https://freesound.org/apiv2/apply and run `export FREESOUND_API_KEY=<your key>`"
    ]
    assert fake_freesound.requests == []
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "classes=kick,cowbell"], "unknown class cowbell; known classes: kick, snare"),
        (["-a", "max_per_class=lots"], "max_per_class must be a whole number"),
    ],
)
def test_bad_arguments_are_one_line(
    fake_freesound: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    result = crawl("freesound", tmp_path / "raw", *args, env=_env(fake_freesound))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.errors and message in result.errors[0]
    assert fake_freesound.requests == []


def test_a_refused_key_stops_the_crawl_with_one_line(
    fake_freesound: Any, tmp_path: Path, params_file: Path
) -> None:
    wrong = "not-the-key-7f3a9d"
    raw = tmp_path / "raw"
    result = _crawl(
        fake_freesound,
        raw,
        params_file,
        3,
        "--logfile",
        str(tmp_path / "crawl.log"),
        env=_env(fake_freesound, key=wrong),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert result.errors == [
        "error: Freesound refused the API key (HTTP 401: Invalid token.); check "
        "FREESOUND_API_KEY (create a key at https://freesound.org/apiv2/apply)"
    ]
    assert len(fake_freesound.api_requests()) == 1  # stopped at the first reply
    assert not fake_freesound.preview_requests()
    _assert_secret_absent(wrong, tmp_path, result)


def _assert_secret_absent(secret: str, root: Path, *results: Any) -> None:
    needle = secret.encode()
    scanned = 0
    for path in root.rglob("*"):
        if path.is_file():
            scanned += 1
            assert needle not in path.read_bytes(), f"the key is in {path}"
    assert scanned
    for result in results:
        assert secret not in result.stdout + result.stderr


def test_the_key_is_in_no_file_written(
    fake_freesound: Any, tmp_path: Path, params_file: Path
) -> None:
    """Data, feed, JOBDIR, HTTP cache and a DEBUG log file hold no trace of the key."""
    raw, job, cache = tmp_path / "raw", tmp_path / "job", tmp_path / "httpcache"
    settings = {"JOBDIR": str(job), "HTTPCACHE_ENABLED": "1", "HTTPCACHE_DIR": str(cache)}
    first = _crawl(
        fake_freesound,
        raw,
        params_file,
        4,
        "-L",
        "DEBUG",
        "--logfile",
        str(tmp_path / "crawl.log"),
        **settings,
    )
    assert first.returncode == 0, first.stderr
    assert any(cache.rglob("request_headers"))  # the cache was written
    assert (job / "requests.seen").exists()
    _assert_secret_absent(fake_freesound.key, tmp_path, first)
    # The cache replays the whole crawl: with the store emptied, nothing reaches the server.
    stored = _comparable(raw / "freesound")
    for path in (raw / "freesound").iterdir():
        path.unlink()
    fake_freesound.reset()
    again = _crawl(fake_freesound, raw, params_file, 4, **settings)
    assert again.returncode == 0, again.stderr
    assert "did not stop cleanly" not in again.stderr  # the first run ended cleanly
    assert [r for r in fake_freesound.requests if r.path != "/robots.txt"] == []
    assert _comparable(raw / "freesound") == stored
    _assert_secret_absent(fake_freesound.key, tmp_path, again)


def test_killed_midway_and_resumed_ends_like_an_uninterrupted_crawl(
    fake_freesound: Any, tmp_path: Path, params_file: Path
) -> None:
    n = 6
    reference = _crawl(fake_freesound, tmp_path / "ref", params_file, n)
    assert reference.returncode == 0, reference.stderr
    expected = _comparable(tmp_path / "ref" / "freesound")
    assert sorted(expected, key=int) == KICKS_IN_ORDER[:n]

    fake_freesound.reset()
    fake_freesound.preview_delay = 0.3  # slow enough to be killed mid-crawl
    raw, job = tmp_path / "raw", tmp_path / "job"
    cmd = crawl_cmd("freesound", raw, *_kicks(n), JOBDIR=str(job), PARAMS_FILE=str(params_file))
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=_env(fake_freesound),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    meta = raw / "freesound" / "metadata.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if meta.exists() and len(meta.read_bytes().splitlines()) >= 2:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the crawl ended before it could be killed"
    before = set(files(raw / "freesound"))
    assert 2 <= len(before) < n

    fake_freesound.reset()
    resumed = _crawl(fake_freesound, raw, params_file, n, JOBDIR=str(job))
    assert resumed.returncode == 0, resumed.stderr
    assert "the last run did not stop cleanly" in resumed.stderr  # its torn queue is dropped
    assert _comparable(raw / "freesound") == expected, resumed.stdout + resumed.stderr[-4000:]
    assert files(raw / "freesound") == files(tmp_path / "ref" / "freesound")
    assert not list((raw / "freesound").glob(".tmp-*"))
    fetched = [r.path for r in fake_freesound.preview_requests() if r.status == 200]
    assert not {p.split("/")[-1].split("-")[0] + ".mp3" for p in fetched} & before


def test_a_search_that_keeps_failing_is_reported(
    fake_freesound: Any, tmp_path: Path, params_file: Path
) -> None:
    fake_freesound.fail("/apiv2/search/", 500, times=50, detail="Database unavailable")
    result = _crawl(fake_freesound, tmp_path / "raw", params_file, 3)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.errors == ["error: kick: search failed: HTTP 500: Database unavailable"]
    api = fake_freesound.api_requests()
    assert [r.status for r in api] == [500] * 6  # the first try and max_retries (5) retries
    assert not fake_freesound.preview_requests()


def test_an_unknown_spider_is_one_line(tmp_path: Path) -> None:
    result = crawl("freesnd", tmp_path / "raw")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown spider 'freesnd'; spiders: freesound, freesound_pages, samplepack"
    ]
