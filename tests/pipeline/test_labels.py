"""label: words from folders, names and tags decide the class; ties and silence are refused."""

from __future__ import annotations

import pytest

from core.errors import Reject
from core.params import Label, parse
from pipeline.labels import class_keywords, classify, score, tokenize


@pytest.fixture
def keywords(params: dict) -> dict[str, list[str]]:
    return class_keywords(parse(params).label)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("BD_808Kick-01.wav", ["bd", "808", "kick", "01", "wav"]),
        ("SnareHeavyRoom", ["snare", "heavy", "room"]),
        ("openHiHat.aif", ["open", "hi", "hat", "aif"]),
        ("Clap  (Reverb) 2", ["clap", "reverb", "2"]),
        ("HH_open", ["hh", "open"]),
        ("Drums\\Kicks", ["drums", "kicks"]),
        ("", []),
        ("--__", []),
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_class_keywords_from_params(params: dict, keywords: dict) -> None:
    assert list(keywords) == list(params["label"]["classes"]) == ["kick", "snare", "hihat", "clap"]
    assert "bd" in keywords["kick"]
    assert "hi hat" in keywords["hihat"]
    assert all(isinstance(w, str) for words in keywords.values() for w in words)


def test_a_class_without_keywords_matches_its_own_name(params: dict) -> None:
    # (params.yaml refuses a class without keywords; the matcher itself still copes)
    label = Label(
        classes=[*params["label"]["classes"], "tom"], keywords=params["label"]["keywords"]
    )
    kw = class_keywords(label)
    assert kw["tom"] == []
    assert classify({"name": "Tom_Low_01.wav"}, kw) == "tom"


@pytest.mark.parametrize(
    ("row", "label"),
    [
        # folder beats name beats tags
        ({"folder": "Kicks", "name": "snare_01.wav", "tags": "clap"}, "kick"),
        ({"folder": "", "name": "Snare 3.wav", "tags": "kick"}, "snare"),
        ({"name": "sample_01.wav", "query": "808 clap", "tags": ""}, "clap"),
        ({"name": "sample_01.wav", "tags": "vintage, hi hat"}, "hihat"),
        # nearest folder first; a folder without a class word passes to the next one out
        ({"folder": "Kicks/Snares", "name": "x.wav"}, "snare"),
        ({"folder": "Snares\\Kicks", "name": "x.wav"}, "kick"),
        ({"folder": "Pack/Claps/Vintage/", "name": "001.wav"}, "clap"),
        # plurals, abbreviations, spellings
        ({"folder": "Drums/Kicks", "name": "001.wav"}, "kick"),
        ({"folder": "HiHats", "name": "001.wav"}, "hihat"),
        ({"name": "hi hat 01.wav"}, "hihat"),
        ({"name": "hihat.wav"}, "hihat"),
        ({"name": "HH_open.wav"}, "hihat"),
        ({"name": "openHiHat.wav"}, "hihat"),
        ({"name": "closed hat 3.wav"}, "hihat"),
        ({"name": "BD_808Kick-01.wav"}, "kick"),
        ({"name": "SD_rimshot.wav"}, "snare"),
        ({"name": "handclap.wav"}, "clap"),
        # the majority wins
        ({"name": "kick_kick_snare.wav"}, "kick"),
    ],
)
def test_classify(row: dict, label: str, keywords: dict) -> None:
    assert classify(row, keywords) == label


@pytest.mark.parametrize(
    "name",
    [
        "kick_snare_layer.wav",
        "Kick_SD_layer.wav",  # one kick word, one snare word
        "hihat_kick.wav",  # "hihat" is one word, though two keywords spell it
        "closed hat kick.wav",  # "closed hat" contains "hat": still one hihat word
        "Clap Snare.wav",
    ],
)
def test_equal_mentions_are_ambiguous(name: str, keywords: dict) -> None:
    with pytest.raises(Reject) as exc:
        classify({"folder": "", "name": name}, keywords)
    assert exc.value.code == "ambiguous"


@pytest.mark.parametrize(
    "row",
    [
        {"folder": "misc/one shots", "name": "sample_01.wav", "tags": "loop"},
        {"name": "What.wav"},  # "hat" is a word, not a substring
        {"name": "kickback.wav"},
        {},
    ],
)
def test_unlabeled(row: dict, keywords: dict) -> None:
    with pytest.raises(Reject) as exc:
        classify(row, keywords)
    assert exc.value.code == "unlabeled"


def test_score_counts_mentions(keywords: dict) -> None:
    assert score("kick kick snare", keywords) == {"kick": 2, "snare": 1}
    assert score("Hi Hat", keywords) == {"hihat": 1}
    assert score("hihat", keywords) == {"hihat": 1}
    assert score("noise", keywords) == {}
