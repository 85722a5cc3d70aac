"""Running the Freesound API client's download against the fake server in the tests."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from fake_freesound import FakeFreesound

from core import params as core_params
from core.params import Freesound
from crawlers.freesound.download import Summary, download
from crawlers.rawstore import METADATA, RawStore

REPO = Path(__file__).resolve().parents[2]
# Small pages (so a search follows ``next``), no rate limit, short backoff.
FAST: dict[str, Any] = {
    "page_size": 4,
    "requests_per_minute": 600_000,
    "downloads_per_minute": 600_000,
    "backoff_s": 0.001,
    "max_retries": 3,
    "timeout_s": 10,
    "query": {"kick": "kick drum", "snare": "snare drum"},
}
KICK_FIRST_7 = [1001, 1002, 1010, 1011, 1012, 1013, 1014]


@cache
def _repo_freesound() -> Freesound:
    return core_params.load(REPO / "params.yaml").freesound


def fast_cfg(**kw: Any) -> Freesound:
    """params.yaml's ``freesound`` with :data:`FAST` and ``kw`` over it (not re-checked, so a
    test may also pass what params.yaml would refuse)."""
    return replace(_repo_freesound(), **{**FAST, **kw})


def run_download(
    server: FakeFreesound,
    root: Path,
    classes: list[str],
    n: int,
    cfg: Freesound | None = None,
    waits: list[float] | None = None,
) -> Summary:
    """``download`` into a store at ``root``; the client's sleeps are recorded in ``waits``."""
    waits = waits if waits is not None else []
    store = RawStore(root, 20 * 2**20)
    return download(
        classes, n, cfg or fast_cfg(), store, key=server.key, base=server.url, sleep=waits.append
    )


def metadata(root: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (root / METADATA).read_text().splitlines()]


def audio_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.suffix == ".mp3")
