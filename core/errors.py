"""The exceptions every layer shares: a bad setting, and a refused input file."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting in params.yaml (or a command-line value) the project cannot use.

    Entry points print it as one line and exit 2, before any file is touched.
    """


class Reject(Exception):
    """A refused input: ``code`` is a short machine-readable reason, ``detail`` says why."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
