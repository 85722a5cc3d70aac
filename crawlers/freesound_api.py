"""``python -m crawlers.freesound_api search|download``: the Freesound API client's command
line, kept at this name for the documented commands; it lives in crawlers.freesound.cli."""

from __future__ import annotations

from crawlers.freesound.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
