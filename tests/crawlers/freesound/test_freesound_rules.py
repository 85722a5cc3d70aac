"""crawlers.freesound.rules: key handling, query building, result parsing, license and AI
rules, records and the per-class selection (no network); and the provenance helpers
(core.provenance) the records are built with."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from core import params as core_params
from core.errors import ConfigError
from core.params import Freesound, Params
from core.provenance import attribution, license_info
from crawlers.freesound import rules

CC0 = "http://creativecommons.org/publicdomain/zero/1.0/"
BY4 = "https://creativecommons.org/licenses/by/4.0/"


def _result(**kw: Any) -> dict[str, Any]:
    base = {
        "id": 1234,
        "name": "Kick 01.wav",
        "username": "drummer",
        "license": CC0,
        "url": "https://freesound.org/people/drummer/sounds/1234/",
        "tags": ["kick", "drum"],
        "duration": 0.5,
        "previews": {
            "preview-hq-mp3": "https://cdn.freesound.org/previews/1/1234_1-hq.mp3",
            "preview-hq-ogg": "https://cdn.freesound.org/previews/1/1234_1-hq.ogg",
        },
        "gen_ai_preference": "no-additional-preferences",
    }
    base.update(kw)
    return base


@pytest.fixture
def cfg(typed: Params) -> Freesound:
    """``freesound`` of the repository's params.yaml (cc0 and cc-by, at most 1.5 s, no AI
    opt-outs)."""
    return typed.freesound


def test_api_url_from_env_without_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rules.URL_ENV, raising=False)
    assert rules.api_url() == "https://freesound.org/apiv2"
    monkeypatch.setenv(rules.URL_ENV, "http://127.0.0.1:8000/apiv2/")
    assert rules.api_url() == "http://127.0.0.1:8000/apiv2"
    assert rules.search_url(rules.api_url()) == "http://127.0.0.1:8000/apiv2/search/"


def test_missing_key_is_one_line_saying_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rules.KEY_ENV, "   ")
    with pytest.raises(rules.MissingKey) as info:
        rules.api_key()
    msg = str(info.value)
    assert "\n" not in msg
    assert "FREESOUND_API_KEY" in msg and "https://freesound.org/apiv2/apply" in msg
    assert "export FREESOUND_API_KEY=" in msg
    monkeypatch.setenv(rules.KEY_ENV, " abc123 ")
    assert rules.api_key() == "abc123"
    assert rules.auth_header("abc123") == {"Authorization": "Token abc123"}


def test_redact_hides_the_key_in_any_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rules.KEY_ENV, "s3cr3tkey")
    text = "GET /x?token=s3cr3tkey&a=1 failed; headers {'Authorization': 'Token s3cr3tkey'}"
    out = rules.redact(text)
    assert "s3cr3tkey" not in out
    assert "token=***" in out and "Token ***" in out
    # Tokens that are not the current key are hidden too (an echoed header of another run).
    assert "other" not in rules.redact("Authorization: Token other", key="")


def test_settings_come_checked_from_params(params: dict[str, Any]) -> None:
    """The crawlers take ``freesound`` as core.params checked it: no defaults of their own,
    and a bad value is one line naming the key (core.params words it)."""
    cfg = core_params.parse(params).freesound
    assert cfg.licenses == ["cc0", "cc-by"]
    assert cfg.allow_ai_opt_out is False
    params["freesound"]["max_per_class"] = 7
    assert core_params.parse(params).freesound.max_per_class == 7
    for key, bad, message in [
        ("licenses", ["cc0", "cc-by-sa"], r"freesound.licenses\[1\] must be one of cc0, cc-by"),
        ("licenses", "cc0", "freesound.licenses must be a list"),
        ("licenses", [], "freesound.licenses must not be empty"),
        ("page_size", 0, r"freesound.page_size must be in \[1, 150\]"),
        ("page_size", 151, r"freesound.page_size must be in \[1, 150\]"),
        ("requests_per_minute", "fast", "freesound.requests_per_minute must be a number"),
    ]:
        with pytest.raises(ConfigError, match=message):
            core_params.parse({**params, "freesound": {**params["freesound"], key: bad}})


def test_search_params_filter_fields_and_page_size_cap(cfg: Freesound) -> None:
    params = rules.search_params("kick drum", replace(cfg, page_size=500, sort="downloads_desc"))
    assert params == {
        "query": "kick drum",
        "filter": 'duration:[0 TO 1.5] license:("Creative Commons 0" OR "Attribution")',
        "fields": ",".join(rules.FIELDS),
        "page_size": "150",
        "sort": "downloads_desc",
    }
    # Every field the record and rules read is asked for: the default list omits previews.
    for needed in ("id", "name", "username", "license", "url", "tags", "duration", "previews"):
        assert needed in params["fields"].split(",")
    assert "gen_ai_preference" in params["fields"].split(",")
    opt_in = replace(cfg, licenses=["cc0", "cc-by", "cc-by-nc"], max_duration=0.8)
    opt_in = replace(opt_in, extra_filter=" type:(wav OR aiff) ")
    assert rules.search_filter(opt_in) == (
        'duration:[0 TO 0.8] license:("Creative Commons 0" OR "Attribution" OR '
        '"Attribution NonCommercial") type:(wav OR aiff)'
    )


def test_query_for_and_parse_classes(cfg: Freesound) -> None:
    cfg = replace(cfg, query={"kick": "kick drum"})
    assert cfg.query_for("kick") == "kick drum"
    assert cfg.query_for("clap") == "clap"
    known = ["kick", "snare", "hihat", "clap"]
    assert rules.parse_classes(None, known) == known
    assert rules.parse_classes(" snare, kick,snare ", known) == ["snare", "kick"]
    with pytest.raises(ConfigError, match="unknown class tom; known classes: kick, snare"):
        rules.parse_classes("kick,tom", known)


def test_parse_page_drops_null_results() -> None:
    payload = {"count": 3, "next": "https://x/apiv2/search/?&page=2", "previous": None}
    payload["results"] = [_result(id=1), None, _result(id=2), "junk"]
    results, nxt = rules.parse_page(payload)
    assert [r["id"] for r in results] == [1, 2]
    assert nxt == "https://x/apiv2/search/?&page=2"
    assert rules.parse_page({"results": [], "next": None}) == ([], None)
    with pytest.raises(rules.FreesoundError, match="no 'results' list"):
        rules.parse_page({"detail": "Not found"})


def test_error_detail_reads_json_detail_and_redacts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rules.KEY_ENV, "k3y")
    assert rules.error_detail(b'{"detail": "Invalid token."}') == "Invalid token."
    assert rules.error_detail("<html>\n<b>Bad Gateway</b> k3y</html>") == (
        "<html> <b>Bad Gateway</b> ***</html>"
    )
    assert rules.error_detail(b"") == "(empty body)"
    err = rules.FreesoundError(429, "wait, k3y")
    assert str(err) == "HTTP 429: wait, ***" and err.status == 429


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://creativecommons.org/publicdomain/zero/1.0/", ("cc0", "CC0 1.0")),
        ("https://creativecommons.org/publicdomain/zero/1.0", ("cc0", "CC0 1.0")),
        ("https://creativecommons.org/licenses/by/4.0/", ("cc-by", "CC BY 4.0")),
        ("http://creativecommons.org/licenses/by/3.0/", ("cc-by", "CC BY 3.0")),
        ("https://creativecommons.org/licenses/by/4.0/deed.en", ("cc-by", "CC BY 4.0")),
        ("http://creativecommons.org/licenses/by-nc/3.0/", ("cc-by-nc", "CC BY-NC 3.0")),
        ("https://creativecommons.org/licenses/by-nc/4.0/legalcode", ("cc-by-nc", "CC BY-NC 4.0")),
        ("http://creativecommons.org/licenses/sampling+/1.0/", ("sampling+", "Sampling+ 1.0")),
        ("Creative Commons 0", ("cc0", "CC0 1.0")),
        ("Attribution", ("cc-by", "CC BY")),
        ("Attribution NonCommercial", ("cc-by-nc", "CC BY-NC")),
        (
            "https://creativecommons.org/licenses/by-sa/4.0/",
            ("unknown", "https://creativecommons.org/licenses/by-sa/4.0/"),
        ),
        (
            "https://evil.example/creativecommons.org/licenses/by/4.0/",
            ("unknown", "https://evil.example/creativecommons.org/licenses/by/4.0/"),
        ),
        ("", ("unknown", "unknown")),
        (None, ("unknown", "unknown")),
    ],
)
def test_license_info(text: str | None, expected: tuple[str, str]) -> None:
    assert license_info(text) == expected


def test_license_allow_list_default_and_opt_in(cfg: Freesound) -> None:
    assert rules.license_allowed(CC0, cfg)
    assert rules.license_allowed(BY4, cfg)
    assert rules.license_allowed("http://creativecommons.org/licenses/by/3.0/", cfg)
    assert not rules.license_allowed("http://creativecommons.org/licenses/by-nc/3.0/", cfg)
    assert not rules.license_allowed("http://creativecommons.org/licenses/sampling+/1.0/", cfg)
    assert not rules.license_allowed("unknown", cfg)
    nc = replace(cfg, licenses=["cc0", "cc-by-nc"])
    assert rules.license_allowed("http://creativecommons.org/licenses/by-nc/3.0/", nc)
    assert not rules.license_allowed(BY4, nc)


def test_skip_reason_covers_every_rule(cfg: Freesound) -> None:
    assert rules.skip_reason(_result(), cfg) is None
    assert rules.skip_reason(_result(id=None), cfg) == "no_id"
    assert rules.skip_reason(_result(id="12/../3"), cfg) == "no_id"
    nc = "https://creativecommons.org/licenses/by-nc/4.0/"
    assert rules.skip_reason(_result(license=nc), cfg) == "license_not_allowed"
    assert rules.skip_reason(_result(gen_ai_preference="no-gen-ai"), cfg) == "ai_opt_out"
    allow = replace(cfg, allow_ai_opt_out=True)
    assert rules.skip_reason(_result(gen_ai_preference="no-gen-ai"), allow) is None
    # Other preferences are not an opt-out; an absent field (older API) is not either.
    assert rules.skip_reason(_result(gen_ai_preference="open-source-models"), cfg) is None
    assert (
        rules.skip_reason({k: v for k, v in _result().items() if k != "gen_ai_preference"}, cfg)
        is None
    )
    assert rules.skip_reason(_result(duration=2.0), cfg) == "too_long"
    assert rules.skip_reason(_result(previews={}), cfg) == "no_preview"
    assert rules.skip_reason(_result(previews={"preview-hq-mp3": "file:///etc/passwd"}), cfg) == (
        "no_preview"
    )


@pytest.mark.parametrize(
    ("preference", "default", "with_nc", "with_opt_out"),
    [
        # default: cc0 + cc-by, no opt-outs; with_nc: cc-by-nc added; with_opt_out: opt-outs on
        ("no-additional-preferences", None, None, None),
        ("open-source-models", None, None, None),
        ("noncommercial-open-source-models", "ai_noncommercial", None, "ai_noncommercial"),
        ("no-gen-ai", "ai_opt_out", "ai_opt_out", None),
        ("", None, None, None),  # not stated (an older API, a crawled page)
    ],
)
def test_every_gen_ai_preference_is_honoured(
    cfg: Freesound, preference: str, default: str | None, with_nc: str | None,
    with_opt_out: str | None,
) -> None:  # fmt: skip
    """Non-commercial models only is a non-commercial license: taken when cc-by-nc is; an
    opt-out only with allow_ai_opt_out. The same for search results and stored records."""
    nc = replace(cfg, licenses=["cc0", "cc-by", "cc-by-nc"])
    opt_out = replace(cfg, allow_ai_opt_out=True)
    result = _result(gen_ai_preference=preference)
    record = rules.sound_record(result, "kick", "kick drum")
    assert record["gen_ai_preference"] == preference
    for settings, expected in [(cfg, default), (nc, with_nc), (opt_out, with_opt_out)]:
        assert rules.skip_reason(result, settings) == expected
        assert rules.record_skip_reason(record, settings) == expected
        assert rules.ai_skip_reason(preference, settings) == expected
    # The license rule comes first: a non-commercial license is refused as a license.
    by_nc = _result(license="https://creativecommons.org/licenses/by-nc/4.0/")
    assert rules.skip_reason({**by_nc, "gen_ai_preference": preference}, cfg) == (
        "license_not_allowed"
    )


def test_selected_records_follow_the_preference_rules(cfg: Freesound) -> None:
    records = [
        {"id": i, "label": "kick", "query": "kick", "license": CC0, "rank": i,
         "gen_ai_preference": pref}
        for i, pref in enumerate(
            ["no-additional-preferences", "noncommercial-open-source-models", "no-gen-ai",
             "open-source-models"], start=1,
        )
    ]  # fmt: skip
    cfg = replace(cfg, max_per_class=10, query={})
    assert [r["id"] for r in rules.selected(records, "kick", cfg)] == [1, 4]
    nc = replace(cfg, licenses=["cc0", "cc-by-nc"])
    assert [r["id"] for r in rules.selected(records, "kick", nc)] == [1, 2, 4]


def test_sound_id_accepts_only_positive_integers() -> None:
    assert rules.sound_id({"id": 42}) == "42"
    assert rules.sound_id({"id": "0042"}) == "42"
    for bad in (None, True, 0, -3, "4/2", "..", "４２", 1.5, "42a"):
        assert rules.sound_id({"id": bad}) is None, bad


def test_preview_url_prefers_hq_mp3_then_ogg() -> None:
    assert rules.preview_url(_result()) == "https://cdn.freesound.org/previews/1/1234_1-hq.mp3"
    ogg_only = _result(previews={"preview-hq-ogg": "https://cdn.x/1-hq.ogg"})
    assert rules.preview_url(ogg_only) == "https://cdn.x/1-hq.ogg"
    assert rules.preview_extension("https://cdn.x/1-hq.ogg") == "ogg"
    assert rules.preview_extension("https://cdn.x/1-hq.mp3?x=1") == "mp3"
    assert rules.preview_url(_result(previews=None)) is None


def test_attribution_line_format() -> None:
    line = attribution("Kick 01.wav", "drummer", "https://freesound.org/s/1/", "CC BY 4.0")
    assert line == "Kick 01.wav by drummer -- https://freesound.org/s/1/ -- License: CC BY 4.0"
    # Web text never breaks the line.
    assert attribution("a\nb\tc", " u ", "x", "") == "a b c by u -- x -- License: unknown"


def test_sound_record_per_contract() -> None:
    rec = rules.sound_record(_result(name="Big\nKick.wav", license=BY4), "kick", "kick drum")
    for key in ("id", "name", "username", "license", "url", "tags", "duration", "query", "label"):
        assert key in rec
    assert rec["id"] == 1234 and rec["name"] == "Big Kick.wav"
    assert rec["license"] == BY4 and rec["license_name"] == "CC BY 4.0"
    assert rec["attribution"] == (
        "Big Kick.wav by drummer -- https://freesound.org/people/drummer/sounds/1234/ -- "
        "License: CC BY 4.0"
    )
    assert rec["tags"] == ["kick", "drum"] and rec["duration"] == 0.5
    assert rec["query"] == "kick drum" and rec["label"] == "kick"
    assert rec["source"] == "freesound"
    assert rec["preview_url"].endswith("-hq.mp3")
    with pytest.raises(ValueError):
        rules.sound_record(_result(id=None), "kick", "q")


def test_selected_keeps_first_n_in_result_order_under_current_rules(cfg: Freesound) -> None:
    def rec(sid: int, rank: int | None, **kw: Any) -> dict[str, Any]:
        return {"id": sid, "label": "kick", "query": "kick", "license": CC0, "rank": rank, **kw}

    records = [
        rec(5, 3),
        rec(9, 1),
        rec(7, 2, license="http://creativecommons.org/licenses/by-nc/3.0/"),
        rec(3, None),
        rec(4, 4, label="snare"),
        rec(6, 5, query="old query"),
        rec(8, 6, gen_ai_preference="no-gen-ai"),
    ]
    cfg = replace(cfg, max_per_class=10, query={})
    assert [r["id"] for r in rules.selected(records, "kick", cfg)] == [9, 5, 3]
    two = replace(cfg, max_per_class=2)
    assert [r["id"] for r in rules.selected(records, "kick", two)] == [9, 5]
    with_nc = replace(cfg, licenses=["cc0", "cc-by-nc"], allow_ai_opt_out=True)
    assert [r["id"] for r in rules.selected(records, "kick", with_nc)] == [9, 7, 5, 8, 3]


def test_is_api_url_only_for_the_api_itself() -> None:
    base = "https://freesound.org/apiv2"
    assert rules.is_api_url("https://freesound.org/apiv2/search/?&page=2", base)
    assert not rules.is_api_url("http://freesound.org/apiv2/search/", base)
    assert not rules.is_api_url("https://cdn.freesound.org/previews/1/1_2-hq.mp3", base)
    assert not rules.is_api_url("https://freesound.org/apiv2x/search/", base)
    assert not rules.is_api_url("https://freesound.org.evil.com/apiv2/search/", base)
    assert not rules.is_api_url("http://127.0.0.1:5/previews/1-hq.mp3", "http://127.0.0.1:5/apiv2")
