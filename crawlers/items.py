"""The one item every spider yields: a file to fetch and keep, with its provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What the feed shows of an item (the body is not for the feed).
FEED_FIELDS = ["id", "status", "files", "url", "ext", "archive", "record"]


@dataclass
class Download:
    """A file to download and land in the spider's RawStore folder.

    The spider fills what it found and the downloaded ``body``; the pipeline lands it and
    fills ``status`` and ``files``, so the item feed records what became of every file a run
    considered. A spider sets ``status`` itself for files it did not fetch (``present``,
    ``failed:<why>``); the pipeline only counts those.
    """

    id: str  # safe token naming the stored file: a Freesound id, or a sha1-derived id
    url: str  # what to download
    record: dict[str, Any]  # the metadata.jsonl object (the store adds file, sha256, time)
    ext: str = ""  # audio extension of the file ("zip" for an archive)
    archive: bool = False  # a zip of one-shots: every audio member is stored on its own
    # stored | present (kept from an earlier run) | duplicate (twice in this run) |
    # refused:<reason> | failed:<reason>
    status: str = ""
    files: list[str] = field(default_factory=list)  # stored file names
    body: bytes = field(default=b"", repr=False)  # the downloaded bytes, until landed
