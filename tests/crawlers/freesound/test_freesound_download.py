"""The download run against the fake Freesound: the exact sounds and metadata it stores, the
quirks it survives (null results, tokenless ``next``, 429, 500, a cut-off download, a 404
preview, a sound repeated across pages) and what it never does (download twice)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from download_helpers import KICK_FIRST_7, audio_files, fast_cfg, metadata, run_download
from fake_freesound import FakeFreesound

from crawlers.freesound.client import Client
from crawlers.rawstore import REFUSED


def test_download_takes_exactly_the_first_n_allowed(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    root = tmp_path / "fs"
    waits: list[float] = []
    summary = run_download(fake_freesound, root, ["kick"], 5, waits=waits)
    # 1003 (BY-NC) and 1007 (Sampling+) are filtered by license, 1008 by length, 1004 is a
    # null result, 1005 opted out of AI training, 1006's preview 404s, 1009 duplicates 1001.
    assert audio_files(root) == ["1001.mp3", "1002.mp3", "1010.mp3", "1011.mp3", "1012.mp3"]
    meta = metadata(root)
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


def test_second_run_downloads_nothing_and_asks_nothing(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    root = tmp_path / "fs"
    run_download(fake_freesound, root, ["kick"], 5)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.iterdir()}
    fake_freesound.reset()
    summary = run_download(fake_freesound, root, ["kick"], 5)
    assert fake_freesound.requests == []
    assert summary.downloaded == 0 and summary.already == 5
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.iterdir()} == before


def test_raising_n_downloads_only_the_new_ones(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    root = tmp_path / "fs"
    run_download(fake_freesound, root, ["kick"], 5)
    fake_freesound.reset()
    fake_freesound.clear_quirks()
    summary = run_download(fake_freesound, root, ["kick"], 7)
    assert [r.path for r in fake_freesound.preview_requests()] == [
        "/previews/1006-hq.mp3",  # a 404 is not remembered: it may come back
        "/previews/1013-hq.mp3",
        "/previews/1014-hq.mp3",
    ]
    assert summary.downloaded == 2 and summary.already == 5
    assert [m["id"] for m in metadata(root)] == KICK_FIRST_7


def test_a_sound_belongs_to_the_first_class_that_found_it(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    root = tmp_path / "fs"
    summary = run_download(fake_freesound, root, ["kick", "snare"], 8)
    meta = {m["id"]: m for m in metadata(root)}
    # 2006 is a snare tagged "kick" too: the kick search reaches it first. 2004's uploader
    # allows only non-commercial models, and non-commercial use is not allowed by default.
    assert sorted(meta) == [*KICK_FIRST_7, 2001, 2003, 2006]
    assert meta[2006]["label"] == "kick"
    assert summary.skipped["other_class"] == 1
    assert summary.skipped["ai_noncommercial"] == 1
    assert summary.per_class == {"kick": 8, "snare": 2}
    assert "snare 2/8 (no more results)" in summary.line()


def test_license_and_ai_opt_ins(fake_freesound: FakeFreesound, tmp_path: Path) -> None:
    fake_freesound.clear_quirks()
    cfg = fast_cfg(licenses=["cc0", "cc-by", "cc-by-nc"], allow_ai_opt_out=True)
    run_download(fake_freesound, tmp_path / "fs", ["kick"], 5, cfg)
    assert [m["id"] for m in metadata(tmp_path / "fs")] == [1001, 1002, 1003, 1005, 1010]
    assert (
        'license:("Creative Commons 0" OR "Attribution" OR "Attribution NonCommercial")'
        in (fake_freesound.api_requests()[0].query["filter"])
    )


def test_noncommercial_models_only_come_with_noncommercial_use(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    """2004's uploader allows only non-commercial open-source models: with cc-by-nc allowed it
    is taken, and its record keeps the preference for the model card."""
    fake_freesound.clear_quirks()
    cfg = fast_cfg(licenses=["cc0", "cc-by", "cc-by-nc"])
    summary = run_download(fake_freesound, tmp_path / "fs", ["snare"], 5, cfg)
    meta = {m["id"]: m for m in metadata(tmp_path / "fs")}
    assert sorted(meta) == [2001, 2002, 2003, 2004, 2006]
    assert meta[2004]["gen_ai_preference"] == "noncommercial-open-source-models"
    assert "ai_noncommercial" not in summary.skipped


def test_failing_preview_is_skipped_not_fatal(
    fake_freesound: FakeFreesound, tmp_path: Path
) -> None:
    fake_freesound.fail("/previews/1002-hq.mp3", 502, times=10)
    summary = run_download(fake_freesound, tmp_path / "fs", ["kick"], 3)
    assert summary.skipped["failed"] == 1
    assert [m["id"] for m in metadata(tmp_path / "fs")] == [1001, 1010, 1011]


def test_a_sound_repeated_on_the_next_page_counts_once(
    fake_freesound: FakeFreesound, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paging can shift while a search is read (a sound uploaded meanwhile): the last result
    of one page comes again at the top of the next. It must not fill a second slot."""
    real = Client.search_pages

    def shifted(self: Client, query: str):
        last = None
        for page in real(self, query):
            yield ([last] if last is not None else []) + list(page)
            last = page[-1] if page else last

    monkeypatch.setattr(Client, "search_pages", shifted)
    summary = run_download(fake_freesound, tmp_path, ["kick"], 5)
    assert [r["id"] for r in metadata(tmp_path)] == KICK_FIRST_7[:5]
    assert summary.per_class == {"kick": 5}
    assert summary.skipped["repeated"] >= 1
