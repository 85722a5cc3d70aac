"""A local stand-in for Freesound (APIv2 and the website), with the real service's quirks.

Started by the ``fake_freesound`` fixture (tests/crawlers/conftest.py) on 127.0.0.1 at a free
port. What it imitates, from the APIv2 docs and the MTG/freesound sources:

- ``GET /apiv2/search/`` and the older ``/apiv2/search/text/``: ``query`` (every term must
  match name, tags or description; ``-term`` excludes), ``filter`` (Solr: ``duration:[a TO b]``,
  ``tag:x``, ``license:"Name"`` or ``license:("A" OR "B")``, ``type:(wav OR aiff)``, ``id``,
  ``username``), ``fields`` (default ``id,name,tags,username,license``: no ``previews``),
  ``page``, ``page_size`` (capped at 150), ``sort``; replies ``{count, next, previous,
  results}`` whose ``next`` is an absolute ``?&query=...&page=N`` URL without the token, and
  whose ``results`` hold ``null`` for a sound deleted after it was indexed;
- ``GET /apiv2/sounds/<id>/``; token auth by ``Authorization: Token KEY`` (or ``?token=``),
  else 401 ``{"detail": ...}``; errors are JSON with ``detail``; ``license`` is a deed URL;
  ``gen_ai_preference`` is the uploader's generative-AI preference;
- previews ``/previews/<id>-hq.mp3`` (and ``-lq.mp3``): real MP3 files, no auth; one 404s;
- quirks, each once per test (``reset`` restores them): the first request for search page 2
  gets 429 ``{"detail": "Request was throttled..."}`` without ``Retry-After``; the first
  preview request of sound 1010 gets 500; the first of sound 1011 is cut short (its
  ``Content-Length`` is larger than the body sent);
- the website: ``/robots.txt`` (disallows ``/search/``, ``/browse/``, ``/apiv2/`` like the real
  one), sound pages ``/people/<user>/sounds/<id>/`` (``og:audio`` = LQ preview, license link,
  tag links) and pack pages ``/people/<user>/packs/<id>/`` (three sounds a page, ``?page=N``).

Search results come in id order whatever ``sort`` says (except ``duration_*``), so tests can
name the exact sounds a client must end up with.
"""

from __future__ import annotations

import html
import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np
import soundfile as sf

KEY = "fake-key-3c9e71d2b8a64f05"
MAX_PAGE_SIZE = 150
DEFAULT_FIELDS = "id,name,tags,username,license"
SORTS = {
    "score",
    "duration_desc",
    "duration_asc",
    "created_desc",
    "created_asc",
    "downloads_desc",
    "downloads_asc",
    "rating_desc",
    "rating_asc",
}
CC0 = "http://creativecommons.org/publicdomain/zero/1.0/"
CC0_NO_SLASH = "https://creativecommons.org/publicdomain/zero/1.0"
BY4 = "https://creativecommons.org/licenses/by/4.0/"
BY3 = "http://creativecommons.org/licenses/by/3.0/"
BYNC3 = "http://creativecommons.org/licenses/by-nc/3.0/"
BYNC4 = "https://creativecommons.org/licenses/by-nc/4.0/"
SAMPLING = "http://creativecommons.org/licenses/sampling+/1.0/"
LICENSE_NAMES = {
    CC0: "Creative Commons 0",
    CC0_NO_SLASH: "Creative Commons 0",
    BY4: "Attribution",
    BY3: "Attribution",
    BYNC3: "Attribution NonCommercial",
    BYNC4: "Attribution NonCommercial",
    SAMPLING: "Sampling+",
}
LICENSE_LABELS = {
    CC0: "Creative Commons 0",
    CC0_NO_SLASH: "Creative Commons 0",
    BY4: "Attribution 4.0",
    BY3: "Attribution 3.0",
    BYNC3: "Attribution NonCommercial 3.0",
    BYNC4: "Attribution NonCommercial 4.0",
    SAMPLING: "Sampling+",
}
ROBOTS = """User-agent: *
Disallow: /browse/
Disallow: /search/
Disallow: /admin/
Disallow: /api/
Disallow: /apiv2/
Disallow: /ratings/
Disallow: /embed/

User-agent: GPTBot
Disallow: /
"""
PACK_PAGE_SIZE = 3
NO_CREDENTIALS = "Authentication credentials were not provided."
THROTTLED = "Request was throttled. Expected available in 60 seconds."


@dataclass
class FakeSound:
    """One sound of the fake catalogue."""

    id: int
    cls: str
    name: str
    username: str
    license: str
    duration: float
    tags: list[str] = field(default_factory=list)
    gen_ai_preference: str = "no-additional-preferences"
    deleted: bool = False  # still in the search index, ``null`` in results, page gone
    preview_missing: bool = False  # its preview URL answers 404
    same_audio_as: int | None = None  # its preview has the very bytes of another sound's
    pack: int | None = None
    description: str = ""

    @property
    def license_name(self) -> str:
        return LICENSE_NAMES[self.license]

    def text_tokens(self) -> list[str]:
        text = " ".join([self.name, " ".join(self.tags), self.description]).lower()
        return [t for t in re.split(r"[^0-9a-z]+", text) if t]


def _s(sid: int, cls: str, lic: str, dur: float, user: str = "drumlab", **kw: Any) -> FakeSound:
    tags = kw.pop("tags", [cls, "drum", "one-shot", "percussion"])
    return FakeSound(
        id=sid,
        cls=cls,
        name=kw.pop("name", f"{cls.title()} {sid}.wav"),
        username=user,
        license=lic,
        duration=dur,
        tags=tags,
        description=kw.pop("description", f"A {cls} drum one shot."),
        **kw,
    )


def default_sounds() -> list[FakeSound]:
    """The catalogue. For ``kick`` with licenses [cc0, cc-by], ``max_duration`` 1.5 and
    page_size 4, a correct client takes 1001, 1002, 1010, 1011, 1012, 1013, 1014 in that order
    (1003 and 1007 are filtered out by license, 1008 by duration; 1004 is ``null``; 1005 opted
    out of AI training; 1006's preview is missing; 1009 duplicates 1001's audio)."""
    return [
        _s(1001, "kick", CC0, 0.42, pack=501),
        _s(1002, "kick", BY4, 0.61, "beatsmith", name='Kick "Boom"\nDeep.wav'),
        _s(1003, "kick", BYNC3, 0.50),
        _s(1004, "kick", CC0, 0.33, deleted=True),
        _s(1005, "kick", CC0, 0.47, gen_ai_preference="no-gen-ai"),
        _s(1006, "kick", BY3, 0.52, preview_missing=True),
        _s(1007, "kick", SAMPLING, 0.44),
        _s(1008, "kick", CC0, 3.2, name="Kick roll.wav"),
        _s(1009, "kick", CC0, 0.42, same_audio_as=1001),
        _s(1010, "kick", BY4, 0.38, pack=501),
        _s(1011, "kick", CC0, 0.55, pack=501),
        _s(1012, "kick", CC0_NO_SLASH, 0.29, pack=501, gen_ai_preference="open-source-models"),
        _s(1013, "kick", BY3, 0.71, "beatsmith"),
        _s(1014, "kick", CC0, 0.36, pack=501),
        _s(2001, "snare", CC0, 0.35, pack=501),
        _s(2002, "snare", BYNC4, 0.40),
        _s(2003, "snare", BY4, 0.45, pack=501),
        _s(
            2004,
            "snare",
            CC0,
            0.30,
            "beatsmith",
            gen_ai_preference="noncommercial-open-source-models",
        ),
        _s(2005, "snare", CC0, 2.5),
        _s(
            2006,
            "snare",
            BY3,
            0.39,
            tags=["snare", "kick", "drum", "one-shot"],
            description="A kick and snare drum one shot.",
        ),
        _s(3001, "hihat", CC0, 0.20, pack=501),
        _s(3002, "hihat", BY4, 0.25),
        _s(3003, "hihat", BYNC3, 0.22),
        _s(3004, "hihat", CC0, 0.31, gen_ai_preference="no-gen-ai"),
        _s(4001, "clap", CC0, 0.30),
        _s(4002, "clap", BY4, 0.28, "beatsmith"),
        _s(4003, "clap", SAMPLING, 0.33),
        _s(4004, "clap", CC0, 0.26),
    ]


def synth(sound: FakeSound, sr: int = 44100) -> np.ndarray:
    """A short, distinct hit per sound id (decaying sine sweep for kicks, noise otherwise)."""
    rng = np.random.default_rng(sound.id)
    n = max(1, int(sound.duration * sr))
    t = np.arange(n) / sr
    if sound.cls == "kick":
        f = 50 + 150 * np.exp(-t / 0.03) + rng.uniform(0, 20)
        y = np.sin(2 * np.pi * np.cumsum(f) / sr)
    else:
        y = rng.standard_normal(n)
    y = y * np.exp(-t / rng.uniform(0.05, 0.2))
    return (0.8 * y / np.max(np.abs(y))).astype(np.float32)


def make_previews(sounds: list[FakeSound], cache: Path) -> dict[int, bytes]:
    """MP3 previews of every sound, encoded once per test session into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[int, bytes] = {}
    for s in sorted(sounds, key=lambda s: s.same_audio_as is not None):
        if s.same_audio_as is not None:
            out[s.id] = out[s.same_audio_as]
            continue
        path = cache / f"{s.id}.mp3"
        if not path.is_file():
            buf = io.BytesIO()
            sf.write(buf, synth(s), 44100, format="MP3")
            path.write_bytes(buf.getvalue())
        out[s.id] = path.read_bytes()
    return out


@dataclass
class Req:
    """One request as the server saw it (``had_auth``: a valid token came with it)."""

    method: str
    path: str
    query: dict[str, str]
    had_auth: bool
    auth_via: str  # "header", "param" or ""
    status: int = 0
    user_agent: str = ""


@dataclass
class Rule:
    """Answer requests that match with ``status`` (``times`` more times)."""

    match: Callable[[str, dict[str, str]], bool]
    status: int
    times: int
    detail: str = ""
    truncate: bool = False


class BadFilter(ValueError):
    pass


_FILTER_TERM = re.compile(r'\s*([A-Za-z_]+):(\[[^\]]*\]|\([^)]*\)|"[^"]*"|[^\s()\[\]"]+)\s*')


def parse_filter(text: str) -> list[tuple[str, Any]]:
    """Solr filter terms the clients send: ``field:value`` with ranges, quotes, OR-lists."""
    terms: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _FILTER_TERM.match(text, pos)
        if not m:
            raise BadFilter(f"Invalid filter at {text[pos : pos + 20]!r}")
        name, raw = m.group(1), m.group(2)
        if raw.startswith("["):
            lo, sep, hi = raw[1:-1].partition(" TO ")
            if not sep:
                raise BadFilter(f"Invalid range {raw!r} (TO must be uppercase)")
            terms.append((name, ("range", lo.strip(), hi.strip())))
        elif raw.startswith("("):
            values = [v.strip().strip('"') for v in raw[1:-1].split(" OR ")]
            terms.append((name, ("any", values)))
        else:
            terms.append((name, ("any", [raw.strip('"')])))
        pos = m.end()
    return terms


def _in_range(value: float, lo: str, hi: str) -> bool:
    return (lo == "*" or value >= float(lo)) and (hi == "*" or value <= float(hi))


def _match_filter(s: FakeSound, terms: list[tuple[str, Any]]) -> bool:
    values: dict[str, Callable[[], list[str] | float]] = {
        "duration": lambda: s.duration,
        "id": lambda: float(s.id),
        "samplerate": lambda: 44100.0,
        "channels": lambda: 1.0,
        "tag": lambda: [t.lower() for t in s.tags],
        "license": lambda: [s.license_name],
        "type": lambda: ["wav"],
        "username": lambda: [s.username],
    }
    for name, (kind, *args) in terms:
        if name not in values:
            raise BadFilter(f"Unknown filter field {name!r}")
        have = values[name]()
        if kind == "range":
            if not isinstance(have, float) or not _in_range(have, *args):
                return False
        else:
            wanted = args[0]
            if isinstance(have, float):
                if not any(float(w) == have for w in wanted):
                    return False
            elif name == "tag":
                if not {w.lower() for w in wanted} & set(have):
                    return False
            elif not set(wanted) & set(have):
                return False
    return True


def _match_query(s: FakeSound, query: str) -> bool:
    tokens = s.text_tokens()
    joined = " ".join(tokens)
    for m in re.finditer(r'([+-]?)("([^"]*)"|\S+)', query):
        sign, term = m.group(1), (m.group(3) if m.group(3) is not None else m.group(2))
        words = [w for w in re.split(r"[^0-9a-z]+", term.lower()) if w]
        if not words:
            continue
        found = " ".join(words) in joined if len(words) > 1 else words[0] in tokens
        if found == (sign == "-"):
            return False
    return True


class FakeFreesound:
    """The server and its state; see the module docstring."""

    def __init__(self, preview_cache: Path, sounds: list[FakeSound] | None = None) -> None:
        self.sounds = sounds or default_sounds()
        self.by_id = {s.id: s for s in self.sounds}
        self.previews = make_previews(self.sounds, preview_cache)
        self.key = KEY
        self.requests: list[Req] = []
        self.rules: list[Rule] = []
        self.rate_limit: int | None = None  # requests per rolling minute, then 429
        self.preview_delay = 0.0  # seconds before each preview is served
        self._stamps: list[float] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.site = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.site}/apiv2"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.reset()

    # ------------------------------------------------------------------ control

    def reset(self) -> None:
        """Forget the request log and re-arm the default once-only quirks."""
        with self._lock:
            self.requests = []
            self._stamps = []
            self.rate_limit = None
            self.preview_delay = 0.0
            self.rules = [
                Rule(
                    lambda p, q: p.startswith("/apiv2/search") and q.get("page") == "2",
                    429,
                    1,
                    "Request was throttled. Expected available in 1 second.",
                ),
                Rule(lambda p, q: p == "/previews/1010-hq.mp3", 500, 1, "Server error"),
                Rule(lambda p, q: p == "/previews/1011-hq.mp3", 200, 1, truncate=True),
            ]

    def clear_quirks(self) -> None:
        with self._lock:
            self.rules = []

    def fail(
        self,
        match: str | Callable[[str, dict[str, str]], bool],
        status: int,
        times: int = 1,
        detail: str = "",
    ) -> None:
        """Answer the next ``times`` requests for ``match`` (a path, or a path prefix ending
        in ``*``, or a predicate) with ``status``."""
        if isinstance(match, str):
            text = match
            if text.endswith("*"):
                match = lambda p, q: p.startswith(text[:-1])  # noqa: E731
            else:
                match = lambda p, q: p == text  # noqa: E731
        with self._lock:
            self.rules.insert(0, Rule(match, status, times, detail or f"Error {status}"))

    def env(self) -> dict[str, str]:
        return {"FREESOUND_API_KEY": self.key, "FREESOUND_API_URL": self.url}

    def sound_url(self, sid: int) -> str:
        s = self.by_id[sid]
        return f"{self.site}/people/{s.username}/sounds/{s.id}/"

    def pack_url(self, pack: int, username: str = "drumlab") -> str:
        return f"{self.site}/people/{username}/packs/{pack}/"

    def preview_url(self, sid: int, quality: str = "hq") -> str:
        return f"{self.site}/previews/{sid}-{quality}.mp3"

    def api_requests(self) -> list[Req]:
        return [r for r in self.requests if r.path.startswith("/apiv2/")]

    def preview_requests(self) -> list[Req]:
        return [r for r in self.requests if r.path.startswith("/previews/")]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------ responses

    def sound_json(self, s: FakeSound, fields: list[str]) -> dict[str, Any]:
        full = {
            "id": s.id,
            "url": self.sound_url(s.id),
            "name": s.name,
            "tags": list(s.tags),
            "description": s.description,
            "license": s.license,
            "gen_ai_preference": s.gen_ai_preference,
            "type": "wav",
            "channels": 1,
            "filesize": int(s.duration * 44100 * 2) + 44,
            "bitrate": 1411,
            "bitdepth": 16,
            "duration": s.duration,
            "samplerate": 44100,
            "username": s.username,
            "pack": f"{self.url}/packs/{s.pack}/" if s.pack else None,
            "previews": {
                "preview-hq-mp3": self.preview_url(s.id, "hq"),
                "preview-hq-ogg": f"{self.site}/previews/{s.id}-hq.ogg",
                "preview-lq-mp3": self.preview_url(s.id, "lq"),
                "preview-lq-ogg": f"{self.site}/previews/{s.id}-lq.ogg",
            },
            "num_downloads": 1000 - s.id % 1000,
            "avg_rating": 4.0,
        }
        return {k: full[k] for k in fields if k in full}

    def search(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        query = q.get("query")
        filt = q.get("filter")
        if query is None and filt is None:
            return 400, {
                "detail": "At least one request parameter from Text Search should be included "
                "in the request."
            }
        try:
            page = int(q.get("page", "1"))
            page_size = min(MAX_PAGE_SIZE, int(q.get("page_size", "15")))
        except ValueError:
            return 400, {"detail": "Malformed request."}
        if page < 1 or page_size < 1:
            return 404, {"detail": "Not found"}
        sort = q.get("sort", "score")
        if sort not in SORTS:
            return 400, {"detail": f"Invalid sort parameter {sort!r}"}
        try:
            terms = parse_filter(filt or "")
            hits = [
                s for s in self.sounds if _match_query(s, query or "") and _match_filter(s, terms)
            ]
        except BadFilter as exc:
            return 400, {"detail": str(exc)}
        if sort.startswith("duration_"):
            hits.sort(key=lambda s: s.duration, reverse=sort.endswith("desc"))
        pages = max(1, -(-len(hits) // page_size))
        if page > pages and hits:
            return 404, {"detail": "Not found"}
        chunk = hits[(page - 1) * page_size : page * page_size]
        fields = (q.get("fields") or DEFAULT_FIELDS).split(",")

        def link(n: int) -> str:
            # Built like apiv2/forms.py construct_link: "?&query=...", never with the token.
            parts = []
            if query is not None:
                parts.append(f"query={quote(query)}")
            if filt:
                parts.append(f"filter={quote(filt)}")
            if sort != "score":
                parts.append(f"sort={sort}")
            parts.append(f"page={n}")
            if page_size != 15:
                parts.append(f"page_size={page_size}")
            if q.get("fields"):
                parts.append(f"fields={quote(q['fields'])}")
            return f"{self.url}/search/?&" + "&".join(parts)

        return 200, {
            "count": len(hits),
            "previous": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < pages else None,
            "results": [None if s.deleted else self.sound_json(s, fields) for s in chunk],
        }

    def sound_page(self, user: str, sid: int) -> tuple[int, str]:
        s = self.by_id.get(sid)
        if s is None or s.deleted or s.username != user:
            return 404, "<html><body><h1>Page not found</h1></body></html>"
        name = html.escape(s.name)
        tags = "\n".join(
            f'<div class="display-inline-block"><a href="/browse/tags/{quote(t)}/" '
            f'class="tag-container">{html.escape(t)}</a></div>'
            for t in s.tags
        )
        return (
            200,
            f"""<!DOCTYPE html>
<html lang="en"><head>
<title>Freesound - {name} by {html.escape(s.username)}</title>
<meta property="og:title" content="{name} by {html.escape(s.username)}" />
<meta property="og:type" content="song" />
<meta property="og:audio" content="{self.preview_url(s.id, "lq")}" />
<meta property="og:audio:artist" content="{html.escape(s.username)}" />
<meta property="og:audio:title" content="{name}" />
<meta property="og:url" content="{self.sound_url(s.id)}" />
<meta property="og:audio:type" content="application/mp3" />
</head><body>
<div class="bw-sound-page">
<h1><a class="bw-link--black" href="/people/{s.username}/sounds/{s.id}/">{name}</a></h1>
<a class="bw-link--black" href="/people/{s.username}/">{html.escape(s.username)}</a>
<p class="v-spacing-top-3">{html.escape(s.description)}</p>
<div class="v-spacing-top-5">{tags}</div>
<div class="bw-sound-page__license">
<a title="Go to the full license text" href="{s.license}" target="_blank"
 class="bw-link--black text-20">{LICENSE_LABELS[s.license]}</a>
</div>
</div></body></html>
""",
        )

    def pack_page(self, user: str, pack: int, page: int) -> tuple[int, str]:
        members = [s for s in self.sounds if s.pack == pack and not s.deleted]
        if not members or members[0].username != user:
            return 404, "<html><body><h1>Page not found</h1></body></html>"
        pages = -(-len(members) // PACK_PAGE_SIZE)
        if page < 1 or page > pages:
            return 404, "<html><body><h1>Page not found</h1></body></html>"
        chunk = members[(page - 1) * PACK_PAGE_SIZE : page * PACK_PAGE_SIZE]
        items = "\n".join(
            f'<div class="bw-player-card"><a class="bw-link--black" '
            f'href="/people/{s.username}/sounds/{s.id}/" title="{html.escape(s.name)}">'
            f"{html.escape(s.name)}</a></div>"
            for s in chunk
        )
        base = f"/people/{user}/packs/{pack}/"
        nav = []
        if page > 1:
            nav.append(f'<li><a href="{base}?page={page - 1}" title="Previous Page">&lt;</a></li>')
        for n in range(1, pages + 1):
            nav.append(
                f'<li class="bw-pagination_selected">{n}</li>'
                if n == page
                else f'<li><a href="{base}?page={n}" title="Page {n}">{n}</a></li>'
            )
        if page < pages:
            nav.append(f'<li><a href="{base}?page={page + 1}" title="Next Page">&gt;</a></li>')
        return (
            200,
            f"""<!DOCTYPE html>
<html lang="en"><head><title>Freesound - Pack: Drum kit {pack} by {user}</title></head>
<body><h1>Drum kit {pack}</h1>
<div class="bw-pack-sounds">
{items}
</div>
<ul class="bw-pagination_container">{"".join(nav)}</ul>
</body></html>
""",
        )


def start(tmp_path_factory: Any) -> FakeFreesound:
    """A server whose previews are cached in the session's base temp folder, so every test
    module that starts one shares the encoded MP3s."""
    return FakeFreesound(tmp_path_factory.getbasetemp() / "fake_freesound_previews")


def _handler(server: FakeFreesound) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read server.requests instead

        def _send(
            self,
            status: int,
            body: bytes,
            ctype: str,
            truncate: bool = False,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if truncate:
                # Announce the full length, send half, hang up: a download cut off midway.
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            path = parts.path
            q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            auth = self.headers.get("Authorization", "")
            via = "header" if auth else ("param" if "token" in q else "")
            token = auth[6:].strip() if auth.startswith("Token ") else q.get("token", "")
            req = Req("GET", path, dict(q), token == server.key, via)
            req.user_agent = self.headers.get("User-Agent", "")
            with server._lock:
                server.requests.append(req)
            if path.startswith("/apiv2/") and token != server.key:
                req.status = 401
                detail = "Invalid token." if token else NO_CREDENTIALS
                return self._json(401, {"detail": detail})
            with server._lock:
                now = time.monotonic()
                server._stamps = [t for t in server._stamps if now - t < 60.0]
                server._stamps.append(now)
                over = server.rate_limit is not None and len(server._stamps) > server.rate_limit
                rule = None
                if not over:
                    rule = next((r for r in server.rules if r.times > 0 and r.match(path, q)), None)
                    if rule is not None:
                        rule.times -= 1
            if over:
                req.status = 429
                return self._json(429, {"detail": THROTTLED})
            if rule is not None and not rule.truncate:
                req.status = rule.status
                return self._json(rule.status, {"detail": rule.detail})
            status, ctype, body = self._route(path, q)
            req.status = status
            self._send(status, body, ctype, truncate=rule is not None and rule.truncate)

        def _route(self, path: str, q: dict[str, str]) -> tuple[int, str, bytes]:
            jtype = "application/json"
            if path in ("/apiv2/search/", "/apiv2/search/text/"):
                status, payload = server.search(path, q)
                return status, jtype, json.dumps(payload).encode()
            m = re.fullmatch(r"/apiv2/sounds/(\d+)/", path)
            if m:
                s = server.by_id.get(int(m.group(1)))
                if s is None or s.deleted:
                    return 404, jtype, json.dumps({"detail": "Not found"}).encode()
                fields = q["fields"].split(",") if q.get("fields") else list(_ALL)
                return 200, jtype, json.dumps(server.sound_json(s, fields)).encode()
            if path.startswith("/apiv2/"):
                return 404, jtype, json.dumps({"detail": "Not found"}).encode()
            m = re.fullmatch(r"/previews/(\d+)-(hq|lq)\.mp3", path)
            if m:
                s = server.by_id.get(int(m.group(1)))
                if s is None or s.preview_missing:
                    return 404, "text/html", b"<html><body>Not Found</body></html>"
                if server.preview_delay:
                    time.sleep(server.preview_delay)
                return 200, "audio/mpeg", server.previews[s.id]
            if path == "/robots.txt":
                return 200, "text/plain", ROBOTS.encode()
            m = re.fullmatch(r"/people/([^/]+)/sounds/(\d+)/", path)
            if m:
                status, text = server.sound_page(m.group(1), int(m.group(2)))
                return status, "text/html; charset=utf-8", text.encode()
            m = re.fullmatch(r"/people/([^/]+)/packs/(\d+)/", path)
            if m:
                try:
                    page = int(q.get("page", "1"))
                except ValueError:
                    page = 0
                status, text = server.pack_page(m.group(1), int(m.group(2)), page)
                return status, "text/html; charset=utf-8", text.encode()
            return 404, "text/html", b"<html><body>Not Found</body></html>"

    return Handler


_ALL = (
    "id",
    "url",
    "name",
    "tags",
    "description",
    "license",
    "gen_ai_preference",
    "type",
    "channels",
    "filesize",
    "bitrate",
    "bitdepth",
    "duration",
    "samplerate",
    "username",
    "pack",
    "previews",
    "num_downloads",
    "avg_rating",
)
