"""Where a sound came from: licenses, credit lines, source ids.

One place for what every source (Freesound, crawled pages, local folders, the demo kit) and
every report (manifests, ATTRIBUTION.md, the model card) must agree on: how a license URL or
name is recognised, how a credit line reads, how text from the web becomes one clean line,
and how ids sort.
"""

from __future__ import annotations

import re
from typing import Any

CC0_DEED = "https://creativecommons.org/publicdomain/zero/1.0/"

_DEED = re.compile(
    r"^https?://(?:www\.)?creativecommons\.org/"
    r"(?:licenses/(?P<kind>by|by-nc|sampling\+)/(?P<ver>\d+\.\d+)|publicdomain/zero/1\.0)"
    r"(?:/.*)?$",
    re.IGNORECASE,
)
_BY_NAME = {
    "creative commons 0": ("cc0", "CC0 1.0"),
    "attribution": ("cc-by", "CC BY"),
    "attribution noncommercial": ("cc-by-nc", "CC BY-NC"),
    "sampling+": ("sampling+", "Sampling+"),
}
_KIND = {
    "by": ("cc-by", "CC BY"),
    "by-nc": ("cc-by-nc", "CC BY-NC"),
    "sampling+": ("sampling+", "Sampling+"),
}


def license_info(license_: str | None) -> tuple[str, str]:
    """``(code, display name)`` of a deed URL (http or https, any trailing part) or name.

    ``https://creativecommons.org/licenses/by/4.0/`` -> ``("cc-by", "CC BY 4.0")``; anything
    not recognised -> ``("unknown", <the text>)``, which no allow-list admits.
    """
    text = (license_ or "").strip()
    m = _DEED.match(text)
    if m:
        if not m.group("kind"):
            return "cc0", "CC0 1.0"
        code, name = _KIND[m.group("kind").lower()]
        return code, f"{name} {m.group('ver')}"
    if text.lower() in _BY_NAME:
        return _BY_NAME[text.lower()]
    return "unknown", text or "unknown"


def one_line(text: Any) -> str:
    """Text from the web as one clean line (no newlines or control characters)."""
    return " ".join(str(text or "").split())


def attribution(name: str, username: str, url: str, license_display: str) -> str:
    """The credit line every source uses: ``<name> by <username> -- <url> -- License: <lic>``."""
    return (
        f"{one_line(name) or 'untitled'} by {one_line(username) or 'unknown'} -- "
        f"{one_line(url)} -- License: {one_line(license_display) or 'unknown'}"
    )


def id_order(sid: str) -> tuple[int, int, str]:
    """Sort key of source ids: numeric ids by value, then the others by text."""
    return (0, int(sid), sid) if sid.isdigit() else (1, 0, sid)
