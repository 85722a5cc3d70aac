"""Freesound rules shared by the API client and the Scrapy spiders (no network I/O here).

One place for what every way of talking to Freesound must agree on: where the API lives, how
the key is read and kept out of every message, how a search is phrased (query, Solr filter,
fields, page size), how a result page is read (it may hold ``null`` entries), which licenses
and generative-AI preferences are allowed, and the metadata record each stored sound gets.
Licenses, credit lines and id order are every source's (core.provenance); the values of the
settings are params.yaml's (core.params, checked there).

Facts from the APIv2 documentation (``_docs/api/source/resources.rst`` in MTG/freesound):
``license`` is returned as the license's deed URL (the filter takes its *name*: "Creative
Commons 0", "Attribution", "Attribution NonCommercial"); ``gen_ai_preference`` is one of
"no-additional-preferences", "open-source-models", "noncommercial-open-source-models",
"no-gen-ai"; ``page_size`` is at most 150; errors are JSON ``{"detail": "..."}``.

The generative-AI preferences, as this project honours them: ``no-gen-ai`` is left out unless
``freesound.allow_ai_opt_out``; ``noncommercial-open-source-models`` is treated as a
non-commercial license, left out unless ``cc-by-nc`` is in ``freesound.licenses`` (the model
may then not be used commercially); ``open-source-models`` (the model may only be released as
an open-source one: the model card says so) and ``no-additional-preferences`` are taken.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from core.errors import ConfigError
from core.params import Freesound
from core.provenance import attribution, id_order, license_info, one_line

DEFAULT_API_URL = "https://freesound.org/apiv2"
KEY_ENV = "FREESOUND_API_KEY"
URL_ENV = "FREESOUND_API_URL"
APPLY_URL = "https://freesound.org/apiv2/apply"
MAX_PAGE_SIZE = 150
SOURCE = "freesound"

# Every field the client reads: one search request then carries all metadata (the default
# field list omits ``previews``, ``duration`` and ``gen_ai_preference``).
FIELDS = (
    "id",
    "name",
    "username",
    "license",
    "url",
    "tags",
    "duration",
    "previews",
    "type",
    "channels",
    "samplerate",
    "filesize",
    "gen_ai_preference",
)
# Preview formats in order of preference; previews need only the token, originals need OAuth2.
PREVIEW_KEYS = ("preview-hq-mp3", "preview-hq-ogg")

# Allow-list codes (core.params.LICENSE_CODES) -> the license name the search filter expects.
LICENSE_FILTER_NAMES = {
    "cc0": "Creative Commons 0",
    "cc-by": "Attribution",
    "cc-by-nc": "Attribution NonCommercial",
    "sampling+": "Sampling+",
}
AI_OPT_OUT = "no-gen-ai"
AI_NONCOMMERCIAL = "noncommercial-open-source-models"
# Non-commercial use is allowed when the non-commercial license is: the same decision.
NONCOMMERCIAL_LICENSE = "cc-by-nc"


# ----------------------------------------------------------------------------- key and URL


class MissingKey(Exception):
    """No API key in the environment; the message is the one line a user needs."""

    def __init__(self) -> None:
        super().__init__(
            f"{KEY_ENV} is not set: create a key at {APPLY_URL} and run "
            f"`export {KEY_ENV}=<your key>`"
        )


def api_url() -> str:
    """The API base (``FREESOUND_API_URL`` or the real one), without a trailing slash."""
    return (os.environ.get(URL_ENV) or DEFAULT_API_URL).strip().rstrip("/")


def api_key() -> str:
    """The key from the environment, the only place it is ever read from."""
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise MissingKey()
    return key


def auth_header(key: str) -> dict[str, str]:
    """The header form of token auth, so the key never becomes part of a URL (URLs get logged)."""
    return {"Authorization": f"Token {key}"}


_TOKEN_PATTERNS = (
    re.compile(r"(Token\s+)[^\s'\",}]+"),  # the header's scheme; "token" in prose stays
    re.compile(r"([?&]token=)[^&\s'\"]+", re.IGNORECASE),
)


def redact(text: str, key: str | None = None) -> str:
    """``text`` with the key's value (given, or from the environment) replaced by ``***``.

    Applied to every message built from a server reply or an exception, since either can echo
    the request back.
    """
    key = key if key is not None else os.environ.get(KEY_ENV, "").strip()
    if key:
        text = text.replace(key, "***")
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


def is_api_url(url: str, base: str) -> bool:
    """Whether ``url`` is an API endpoint (same scheme, host, port, under the base path):
    only there may the key go (previews live on a CDN host and need no key)."""
    a, b = urlsplit(url), urlsplit(base)
    if (a.scheme, a.hostname, a.port) != (b.scheme, b.hostname, b.port):
        return False
    root = b.path.rstrip("/") + "/"
    return (a.path.rstrip("/") + "/").startswith(root)


# ----------------------------------------------------------------------------- classes


def parse_classes(value: str | Iterable[str] | None, known: Iterable[str]) -> list[str]:
    """Classes from ``kick,snare`` (or a list); ``None`` or empty means every known class.

    An unknown class raises ConfigError that lists the known ones.
    """
    known = [str(k) for k in known]
    if value is None:
        return known
    items = value.split(",") if isinstance(value, str) else list(value)
    classes = [c.strip() for c in items if c and c.strip()]
    if not classes:
        return known
    bad = [c for c in classes if c not in known]
    if bad:
        raise ConfigError(f"unknown class {', '.join(bad)}; known classes: {', '.join(known)}")
    return list(dict.fromkeys(classes))


# ----------------------------------------------------------------------------- search


def search_url(base: str) -> str:
    return base.rstrip("/") + "/search/"


def search_filter(cfg: Freesound) -> str:
    """Solr filter: short sounds, allowed licenses only, then the user's extra filter."""
    names = [LICENSE_FILTER_NAMES[c] for c in cfg.licenses]
    parts = [
        f"duration:[0 TO {cfg.max_duration:g}]",
        "license:(" + " OR ".join(f'"{n}"' for n in names) + ")",
    ]
    extra = cfg.extra_filter.strip()
    if extra:
        parts.append(extra)
    return " ".join(parts)


def search_params(query: str, cfg: Freesound) -> dict[str, str]:
    """Query parameters of the first search page (later pages: follow ``next``)."""
    return {
        "query": query,
        "filter": search_filter(cfg),
        "fields": ",".join(FIELDS),
        # params.yaml cannot ask for more than the API gives; an override in code could.
        "page_size": str(max(1, min(MAX_PAGE_SIZE, cfg.page_size))),
        "sort": cfg.sort,
    }


class FreesoundError(Exception):
    """An error reply: HTTP ``status`` and the ``detail`` of its JSON body (key redacted)."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = redact(detail)
        super().__init__(f"HTTP {status}: {self.detail}" if status else self.detail)


def error_detail(body: bytes | str, limit: int = 200) -> str:
    """The ``detail`` of an error body, or its first characters when it is not JSON."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("detail"):
        text = str(payload["detail"])
    return redact(" ".join(text.split())[:limit]) or "(empty body)"


_AVAILABLE_IN = re.compile(r"available in (\d+(?:\.\d+)?) second", re.IGNORECASE)


def wait_hint(status: int, retry_after: str | None, body: bytes | str = b"") -> float | None:
    """Seconds the server asks a client to wait before trying again, or None.

    ``Retry-After`` (seconds or an HTTP date) wins; Freesound's 429 often has none, but its
    ``detail`` says "Expected available in N seconds". Shared by the API client and the
    Scrapy retry middleware, so both read a throttled reply the same way.
    """
    value = (retry_after or "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    if status == 429 and body:
        m = _AVAILABLE_IN.search(error_detail(body))
        if m:
            return float(m.group(1))
    return None


def parse_page(payload: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Results of one search page without its ``null`` entries, and the ``next`` URL."""
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise FreesoundError(0, "unexpected search response: no 'results' list")
    results = [r for r in payload["results"] if isinstance(r, dict)]
    nxt = payload.get("next")
    return results, nxt if isinstance(nxt, str) and nxt else None


# ----------------------------------------------------------------------------- results


def license_allowed(license_: str | None, cfg: Freesound) -> bool:
    """Whether the license is in ``freesound.licenses`` (unknown licenses never are)."""
    code, _ = license_info(license_)
    return code in cfg.licenses


def sound_id(result: dict[str, Any]) -> str | None:
    """The result's id as a string of digits, or None: only such ids ever name a file."""
    value = result.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isdigit() and value.isascii() and int(value) > 0:
        return str(int(value))
    return None


def preview_url(result: dict[str, Any]) -> str | None:
    """The HQ MP3 preview (else HQ OGG) URL, if it is an http(s) URL."""
    previews = result.get("previews")
    if not isinstance(previews, dict):
        return None
    for key in PREVIEW_KEYS:
        url = previews.get(key)
        if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
            return url
    return None


def preview_extension(url: str) -> str:
    """``mp3`` or ``ogg`` from the preview URL's path (default ``mp3``)."""
    path = urlsplit(url).path.lower()
    return "ogg" if path.endswith(".ogg") else "mp3"


def ai_skip_reason(ai_pref: Any, cfg: Freesound) -> str | None:
    """Why the uploader's generative-AI preference keeps a sound out, or None: an opt-out
    (unless ``allow_ai_opt_out``), or non-commercial models only (unless non-commercial use
    is allowed: ``cc-by-nc`` in ``licenses``). Other values and an absent one are taken."""
    if ai_pref == AI_OPT_OUT and not cfg.allow_ai_opt_out:
        return "ai_opt_out"
    if ai_pref == AI_NONCOMMERCIAL and NONCOMMERCIAL_LICENSE not in cfg.licenses:
        return "ai_noncommercial"
    return None


def _rule_reason(license_: Any, ai_pref: Any, duration: Any, cfg: Freesound) -> str | None:
    """The license, AI-preference and length rules, for search results and stored records."""
    if not license_allowed(license_ if isinstance(license_, str) else None, cfg):
        return "license_not_allowed"
    reason = ai_skip_reason(ai_pref, cfg)
    if reason:
        return reason
    number = isinstance(duration, int | float) and not isinstance(duration, bool)
    if number and duration > cfg.max_duration:
        return "too_long"
    return None


def skip_reason(result: dict[str, Any], cfg: Freesound) -> str | None:
    """Why a search result is not taken, or None when it is allowed.

    The server already filters by license and duration; these checks hold even when it does
    not (an extra filter, a changed API), and they cover what no filter expresses.
    """
    if sound_id(result) is None:
        return "no_id"
    reason = _rule_reason(
        result.get("license"), result.get("gen_ai_preference"), result.get("duration"), cfg
    )
    if reason:
        return reason
    if preview_url(result) is None:
        return "no_preview"
    return None


def record_skip_reason(record: dict[str, Any], cfg: Freesound) -> str | None:
    """Why a stored record is left out under the current settings (licenses may have been
    narrowed since it was downloaded), or None."""
    return _rule_reason(
        record.get("license"), record.get("gen_ai_preference"), record.get("duration"), cfg
    )


def _result_order(record: dict[str, Any]) -> tuple[int, tuple[int, int, str]]:
    """Search-result order of stored records: ``rank``, then id (a record without a rank,
    from before ranks were kept, comes last)."""
    rank = record.get("rank")
    rank_key = rank if isinstance(rank, int) and not isinstance(rank, bool) else 1 << 62
    return rank_key, id_order(str(record.get("id", "")))


def selected(records: Iterable[dict[str, Any]], label: str, cfg: Freesound) -> list[dict]:
    """The stored records that make up class ``label`` now: same label and query, allowed by
    the current rules, in search-result order (``rank``, then id), at most ``max_per_class``.

    The API client stops searching for a class once this is full, and the ``freesound``
    collect source lists exactly these, so lowering ``max_per_class`` keeps the first N.
    """
    query = cfg.query_for(label)
    mine = [
        r
        for r in records
        if r.get("label") == label
        and r.get("query") == query
        and record_skip_reason(r, cfg) is None
    ]
    return sorted(mine, key=_result_order)[: cfg.max_per_class]


def sound_record(result: dict[str, Any], label: str, query: str) -> dict[str, Any]:
    """The metadata.jsonl object of one sound (the store adds ``file``, ``sha256``,
    ``retrieved_at``)."""
    sid = sound_id(result)
    if sid is None:
        raise ValueError("search result has no valid id")
    deed = one_line(result.get("license"))
    _, license_name = license_info(deed)
    name = one_line(result.get("name"))
    username = one_line(result.get("username"))
    url = one_line(result.get("url"))
    tags = result.get("tags")
    duration = result.get("duration")
    return {
        "id": int(sid),
        "name": name,
        "username": username,
        "license": deed,
        "license_name": license_name,
        "attribution": attribution(name, username, url, license_name),
        "url": url,
        "tags": [one_line(t) for t in tags] if isinstance(tags, list) else [],
        "duration": float(duration) if isinstance(duration, int | float) else None,
        "query": query,
        "label": label,
        "preview_url": preview_url(result) or "",
        "gen_ai_preference": one_line(result.get("gen_ai_preference")),
        "source": SOURCE,
    }
