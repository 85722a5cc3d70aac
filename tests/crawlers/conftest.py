"""Fixtures for the crawler tests: the fake Freesound server (see fake_freesound.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_freesound import FakeFreesound, start  # noqa: E402


@pytest.fixture(scope="session")
def _fake_freesound_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeFreesound]:
    """One server per test session: its MP3 previews are encoded once."""
    server = start(tmp_path_factory)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fake_freesound(_fake_freesound_server: FakeFreesound) -> FakeFreesound:
    """The fake Freesound with a clean request log and its once-only quirks re-armed.

    ``.url`` (API base), ``.site``, ``.key``, ``.sounds``, ``.requests``, ``.env()``,
    ``.fail(...)``, ``.clear_quirks()``, ``.rate_limit``, ``.preview_delay``.
    """
    _fake_freesound_server.reset()
    return _fake_freesound_server


@pytest.fixture
def freesound_env(fake_freesound: FakeFreesound, monkeypatch: pytest.MonkeyPatch) -> FakeFreesound:
    """The fake server, with FREESOUND_API_KEY and FREESOUND_API_URL pointing at it."""
    for name, value in fake_freesound.env().items():
        monkeypatch.setenv(name, value)
    return fake_freesound
