"""What every command line shares: when to draw progress bars, and counted nouns."""

from __future__ import annotations

import sys


def show_progress(wanted: bool = True) -> bool:
    """Progress bars only on a terminal: in a pipe or a log, their cursor codes are noise and
    the summary line says it all."""
    return wanted and sys.stderr.isatty()


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 file``, ``2 files`` (``many`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"
