"""``scrapy crawl freesound_pages`` against the fake Freesound website, and its page parser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crawl_helpers import crawl, files, records

from crawlers.spiders.freesound_pages import parse_sound_page

PACK_501 = ["1001", "1010", "1011", "1012", "1014", "2001", "2003", "3001"]

# The shape of a sound page on freesound.org (templates/sounds/sound.html, BW design).
REAL_PAGE = """<!DOCTYPE html><html><head>
<title>Freesound - "Kick_808 Long.wav" by some_user</title>
<meta property="og:title" content="Kick_808 Long.wav by some_user" />
<meta property="og:audio" content="https://cdn.freesound.org/previews/123/123456_42-lq.mp3" />
<meta property="og:audio:artist" content="some_user" />
<meta property="og:audio:title" content="Kick_808 Long.wav" />
<meta property="og:url" content="https://freesound.org/people/some_user/sounds/123456/" />
</head><body>
<h1><a href="/people/some_user/sounds/123456/">Kick_808 Long.wav</a></h1>
<div class="display-inline-block"><a href="/browse/tags/808/">808</a></div>
<div class="display-inline-block"><a href="/browse/tags/bass-drum/">bass-drum</a></div>
<div class="display-inline-block"><a href="/browse/tags/808/">808</a></div>
<a href="/people/some_user/packs/777/">Pack</a>
<div><p class="text-grey no-margins">Duration</p><p class="no-margins">0:01.250</p></div>
<a title="Go to the full license text" href="https://creativecommons.org/licenses/by/4.0/"
   target="_blank">Attribution 4.0</a>
<div id="share-link" data-static-file-url="https://cdn.freesound.org/previews/123/123456_42-hq.mp3"
     data-sound-page-url="https://freesound.org/s/123456/"></div>
</body></html>"""


def test_parse_a_real_sound_page() -> None:
    got = parse_sound_page(REAL_PAGE, "https://freesound.org/people/some_user/sounds/123456/")
    assert got == {
        "id": 123456,
        "name": "Kick_808 Long.wav",
        "username": "some_user",
        "license": "https://creativecommons.org/licenses/by/4.0/",
        "url": "https://freesound.org/people/some_user/sounds/123456/",
        "tags": ["808", "bass-drum"],
        "duration": 1.25,
        "previews": {"preview-hq-mp3": "https://cdn.freesound.org/previews/123/123456_42-hq.mp3"},
    }


def test_parse_falls_back_to_og_audio_and_the_url() -> None:
    html = (
        '<html><head><meta property="og:audio" content="/previews/5-lq.ogg" />'
        '<meta property="og:title" content="Snare by bob" /></head><body></body></html>'
    )
    got = parse_sound_page(html, "http://site/people/bob/sounds/5/")
    assert got is not None
    assert (got["id"], got["name"], got["username"]) == (5, "Snare", "bob")
    assert got["previews"] == {"preview-hq-ogg": "http://site/previews/5-lq.ogg"}
    assert (got["license"], got["tags"], got["duration"]) == ("", [], None)
    assert parse_sound_page(html, "http://site/people/bob/packs/5/") is None


def test_crawl_pack_and_sound_pages(fake_freesound: Any, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    urls = [
        fake_freesound.pack_url(501),
        fake_freesound.sound_url(1003),  # BY-NC: not in freesound.licenses
        fake_freesound.sound_url(1006),  # its preview is missing
        fake_freesound.sound_url(1009),  # the same audio as 1001 (in the pack)
    ]
    result = crawl("freesound_pages", raw, "-a", "urls=" + ",".join(urls))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    store = raw / "freesound_pages"
    # 1001 and 1009 are the same audio: whichever page lands first is kept (pages come in no
    # set order), the other is refused as a duplicate.
    kept = "1001" if (store / "1001.mp3").exists() else "1009"
    dropped = {"1001": "1009", "1009": "1001"}[kept]
    expected = [kept if sid == "1001" else sid for sid in PACK_501]
    assert files(store) == {f"{sid}.mp3" for sid in expected}
    refused = [json.loads(line) for line in (store / "refused.jsonl").open()]
    assert [(str(r["id"]), r["reason"]) for r in refused] == [(dropped, "duplicate")]
    recs = records(store)
    for sid in expected:
        sound, rec = fake_freesound.by_id[int(sid)], recs[sid]
        assert rec["source"] == "freesound_pages"
        assert (rec["username"], rec["license"]) == (sound.username, sound.license)
        assert rec["tags"] == sound.tags
        assert rec["url"] == fake_freesound.sound_url(int(sid))
        assert rec["preview_url"] == fake_freesound.preview_url(int(sid), "lq")
        # No guessed label: the label stage reads the name (e.g. "Hihat 3001.wav") and tags.
        assert (rec["name"], rec["label"]) == (sound.name, "")
        assert sound.cls in rec["name"].lower() and sound.cls in rec["tags"]
        assert rec["attribution"] == (
            f"{rec['name']} by {sound.username} -- {rec['url']} -- License: {rec['license_name']}"
        )
        assert (store / rec["file"]).read_bytes() == fake_freesound.previews[int(sid)]
    paths = [r.path for r in fake_freesound.requests]
    assert paths.count("/robots.txt") == 1
    assert "/people/drumlab/packs/501/" in paths
    assert {r.query.get("page") for r in fake_freesound.requests if "packs" in r.path} >= {
        "2",
        "3",
    }
    assert not any(p.startswith(("/browse/", "/search/", "/apiv2/")) for p in paths)
    assert "/previews/1003-lq.mp3" not in paths  # skipped before any download
    assert all(not r.auth_via for r in fake_freesound.requests)  # no key anywhere
    summary = result.stdout.strip().splitlines()[-1]
    assert "8 stored" in summary and "duplicate 1" in summary
    assert "1 failed" in summary and "license_not_allowed 1" in summary

    fake_freesound.reset()
    again = crawl("freesound_pages", raw, "-a", "urls=" + ",".join(urls))
    assert again.returncode == 0, again.stderr
    fetched = {r.path for r in fake_freesound.requests if r.path.startswith("/previews/")}
    assert fetched == {"/previews/1006-lq.mp3"}  # only the missing one is tried again
    assert records(store) == recs


def test_urls_file_and_bad_urls(fake_freesound: Any, tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# my sounds\n{fake_freesound.sound_url(4001)}  # a clap\n\n")
    result = crawl("freesound_pages", tmp_path / "raw", "-a", f"urls_file={listing}")
    assert result.returncode == 0, result.stderr
    assert files(tmp_path / "raw" / "freesound_pages") == {"4001.mp3"}

    bad = crawl("freesound_pages", tmp_path / "raw", "-a", f"urls={fake_freesound.site}/search/")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"error: not a Freesound sound or pack page: {fake_freesound.site}/search/ "
        "(expected .../people/<user>/sounds/<id>/ or .../people/<user>/packs/<id>/)"
    ]
    missing = crawl("freesound_pages", tmp_path / "raw", "-a", "urls_file=/nonexistent")
    assert missing.returncode == 2 and missing.errors
    assert missing.errors[0].startswith("error: urls_file /nonexistent:")
