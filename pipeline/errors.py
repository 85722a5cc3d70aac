"""The one exception a stage raises to refuse a file; the runner turns it into a rejects row."""

from __future__ import annotations

from core.errors import Reject

__all__ = ["Reject"]
