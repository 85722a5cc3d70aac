"""The one exception a stage raises to refuse a file; the runner turns it into a rejects row."""

from __future__ import annotations


class Reject(Exception):
    """A refused input: ``code`` is a short machine-readable reason, ``detail`` says why."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
