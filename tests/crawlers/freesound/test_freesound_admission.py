"""crawlers.freesound.admission: the one decision, for every search result, that both the API
client and the spider act on (no network: a real store in a temporary folder)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from core.params import Freesound, Params
from crawlers.freesound.admission import Candidate, ClassSearch, Fetch, Present, Skip
from crawlers.rawstore import RawStore

CC0 = "http://creativecommons.org/publicdomain/zero/1.0/"


def _result(sid: Any, **kw: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "name": f"Kick {sid}.wav",
        "username": "drummer",
        "license": CC0,
        "url": f"https://freesound.org/people/drummer/sounds/{sid}/",
        "tags": ["kick"],
        "duration": 0.5,
        "previews": {"preview-hq-mp3": f"https://cdn.freesound.org/previews/{sid}-hq.mp3"},
        **kw,
    }


def _wav(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(seed).standard_normal(4410) * 0.1, 44100, format="WAV")
    return buf.getvalue()


@pytest.fixture
def cfg(typed: Params) -> Freesound:
    return replace(typed.freesound, max_per_class=2, query={"kick": "kick drum"})


def test_screen_numbers_results_and_drops_rule_breakers_and_repeats(
    cfg: Freesound, tmp_path: Path
) -> None:
    search = ClassSearch("kick", cfg, RawStore(tmp_path, 20 * 2**20))
    assert search.query == "kick drum"
    got = [
        search.screen(r)
        for r in [_result(5), _result(6, duration=9.0), _result(5), _result(None), _result(7)]
    ]
    assert got == [
        Candidate(1, "5", _result(5)),
        Skip("too_long"),
        Skip("repeated"),
        Skip("no_id"),
        Candidate(5, "7", _result(7)),
    ]


def test_admit_fetch_present_other_class_and_refusal(cfg: Freesound, tmp_path: Path) -> None:
    store = RawStore(tmp_path, 20 * 2**20)
    search = ClassSearch("kick", cfg, store)
    fetch = search.decide(_result(5))
    assert isinstance(fetch, Fetch)
    assert (fetch.sid, fetch.ext, fetch.url) == (
        "5",
        "mp3",
        _result(5)["previews"]["preview-hq-mp3"],
    )
    assert (fetch.record["label"], fetch.record["query"], fetch.record["rank"]) == (
        "kick",
        "kick drum",
        1,
    )
    assert store.land("5", _wav(1), "wav", {**fetch.record, "query": "old"}) is None
    assert store.land("6", _wav(2), "wav", {"id": 6, "label": "snare"}) is None
    assert store.land("8", _wav(1), "wav", {"id": 8, "label": "kick"}) == "duplicate"

    again = ClassSearch("kick", cfg, store)
    again.screen(_result(99))  # ranks move: the stored sound is second now
    assert again.decide(_result(5)) == Present("5")
    assert store.record("5")["query"] == "kick drum" and store.record("5")["rank"] == 2
    assert again.decide(_result(6)) == Skip("other_class")
    assert again.decide(_result(8)) == Skip("duplicate")
    assert not again.complete()  # one of two kicks
