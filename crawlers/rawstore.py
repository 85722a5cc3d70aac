"""Landing downloads safely: one folder of ``<id>.<ext>`` files plus ``metadata.jsonl``.

Shared by the API client and every spider (``data/raw/<source>/``), so all of them give the
same guarantees:

- names from the web never become paths: files are named by a validated id only;
- a download is written under a temporary name in the same folder, size-capped, hashed and
  decode-checked, and only then renamed into place, so a killed run never leaves a
  half-written file that looks finished (stale temporary files are removed on open);
- the same content under a second id (sha256) is stored once and the second id is refused;
- every stored file has one JSON object in ``metadata.jsonl`` (appended, flushed and fsynced
  after the rename); loading tolerates a torn last line and repeated ids from killed runs,
  and :meth:`RawStore.compact` rewrites the file sorted by id at the end of a run;
- lasting refusals (duplicate, not audio, too large) go to ``refused.jsonl`` so a second run
  does not fetch them again.

One writer per folder at a time (a crawl or the API client, not both at once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import audio_io
from core.audio_io import Limits
from core.errors import Reject
from core.files import fsync_file, read_jsonl, replacing, sha256_file, temp_file
from core.params import AUDIO_EXTENSIONS
from core.provenance import id_order

log = logging.getLogger(__name__)

METADATA = "metadata.jsonl"
REFUSED = "refused.jsonl"
TEMP_PREFIX = ".tmp-"
SAFE_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,79}$")
# Refusals that a later attempt may not repeat (an interrupted transfer): never remembered.
TRANSIENT = frozenset({"incomplete"})


def derive_id(*parts: str) -> str:
    """A file-safe id from text (e.g. a URL and an archive member name) for sources without
    numeric ids: 16 hex digits of its sha1, so no part of the text reaches a file name."""
    return hashlib.sha1("\0".join(parts).encode("utf-8")).hexdigest()[:16]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RawStore:
    """One source's folder of downloaded audio, keyed by id (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(TEMP_PREFIX + "*"):
            stale.unlink(missing_ok=True)
        self._records: dict[str, dict[str, Any]] = {}
        for rec in read_jsonl(self.metadata_path):
            sid, file = str(rec.get("id", "")), rec.get("file")
            if SAFE_ID.match(sid) and isinstance(file, str) and self._own_name(sid, file):
                self._records[sid] = rec  # a repeated id: the later line wins
        self._refused: dict[str, dict[str, Any]] = {}
        for rec in read_jsonl(self.root / REFUSED):
            sid = str(rec.get("id", ""))
            if SAFE_ID.match(sid) and sid not in self._records:
                self._refused[sid] = rec
        self._by_sha = {
            str(rec.get("sha256")): sid for sid, rec in self._records.items() if self.has(sid)
        }

    # ------------------------------------------------------------------ queries

    @property
    def metadata_path(self) -> Path:
        return self.root / METADATA

    @staticmethod
    def _own_name(sid: str, file: str) -> bool:
        stem, _, ext = file.rpartition(".")
        return stem == sid and ext in AUDIO_EXTENSIONS

    def has(self, sid: str | int) -> bool:
        """True when the id's file is stored and recorded."""
        rec = self._records.get(str(sid))
        return rec is not None and (self.root / rec["file"]).is_file()

    def refusal(self, sid: str | int) -> str | None:
        """The lasting reason an id was refused before (e.g. ``duplicate``), or None."""
        rec = self._refused.get(str(sid))
        return str(rec.get("reason")) if rec else None

    def record(self, sid: str | int) -> dict[str, Any] | None:
        return self._records.get(str(sid)) if self.has(sid) else None

    def path(self, sid: str | int) -> Path | None:
        rec = self.record(sid)
        return self.root / rec["file"] if rec else None

    def records(self) -> list[dict[str, Any]]:
        """Every stored sound's record, sorted by id."""
        return [self._records[s] for s in sorted(self._records, key=id_order) if self.has(s)]

    def __len__(self) -> int:
        return len(self.records())

    # ------------------------------------------------------------------ landing

    def temp_path(self, sid: str, ext: str) -> Path:
        """A fresh temporary file in the folder for a downloader to stream into before
        :meth:`land` (removed on the next open if the run dies first)."""
        return temp_file(self.root, f"{TEMP_PREFIX}{sid}-", f".{ext}")

    def land(
        self,
        sid: str | int,
        data: bytes | os.PathLike[str] | Iterable[bytes],
        ext: str,
        record: dict[str, Any],
        expected_bytes: int | None = None,
    ) -> str | None:
        """Store one download as ``<id>.<ext>`` and record it; returns a refusal code or None.

        ``data``: the bytes, a file to move in (e.g. from :meth:`temp_path`), or an iterable
        of chunks (streamed, stopped as soon as it passes ``max_bytes``). ``expected_bytes``
        (the Content-Length) turns a short transfer into the ``incomplete`` refusal.
        Refusal codes: ``unsafe_id``, ``bad_extension``, ``too_large``, ``empty_file``,
        ``incomplete``, ``duplicate`` and the decode checks' codes (``not_audio``,
        ``corrupt_header``, ``no_frames``, ``truncated``, ``decode_error``, ...).
        """
        sid = str(sid)
        ext = ext.lower().lstrip(".")
        if not SAFE_ID.match(sid) or ext not in AUDIO_EXTENSIONS:
            if isinstance(data, os.PathLike):
                Path(data).unlink(missing_ok=True)
            if not SAFE_ID.match(sid):
                log.warning("refused a download with an unsafe id %r", sid[:40])
                return "unsafe_id"
            return self._refuse(sid, "bad_extension", f"extension {ext[:10]!r}", record)
        tmp = self._take(sid, data, ext)
        if tmp is None:
            return self._refuse(sid, "too_large", f"over {self.max_bytes} bytes", record)
        try:
            code, digest = self._check(sid, tmp, record, expected_bytes)
            if code is None:
                self._keep(sid, tmp, ext, record, digest)
            return code
        finally:
            tmp.unlink(missing_ok=True)  # a refused file; a kept one has been renamed away

    def _check(
        self, sid: str, tmp: Path, record: dict[str, Any], expected_bytes: int | None
    ) -> tuple[str | None, str]:
        """``(refusal code or None, sha256)`` of a download in its temporary file."""
        size = tmp.stat().st_size
        if expected_bytes is not None and size != expected_bytes:
            detail = f"got {size} of {expected_bytes} bytes"
            return self._refuse(sid, "incomplete", detail, record), ""
        if size > self.max_bytes:
            return self._refuse(sid, "too_large", f"{size} > {self.max_bytes} bytes", record), ""
        if size == 0:
            return self._refuse(sid, "empty_file", "zero bytes", record), ""
        digest = sha256_file(tmp)
        owner = self._by_sha.get(digest)
        if owner is not None and owner != sid and self.has(owner):
            detail = f"same content as {owner}"
            return self._refuse(sid, "duplicate", detail, record, digest), digest
        try:
            audio_io.read(tmp, self._limits())
        except Reject as rej:
            return self._refuse(sid, rej.code, rej.detail, record, digest), digest
        return None, digest

    def _keep(self, sid: str, tmp: Path, ext: str, record: dict[str, Any], digest: str) -> None:
        """Rename a checked download into place, then record it (in that order: a record never
        points at a file that is not complete on disk)."""
        final = self.root / f"{sid}.{ext}"
        old = self._records.get(sid)
        fsync_file(tmp)  # the bytes are on disk before a record can point at them
        os.replace(tmp, final)
        if old and old.get("file") != final.name:
            (self.root / old["file"]).unlink(missing_ok=True)
        if old:
            self._by_sha.pop(str(old.get("sha256")), None)
        rec = {**record, "file": final.name, "sha256": digest, "retrieved_at": utc_now()}
        rec.setdefault("id", int(sid) if sid.isdigit() else sid)
        self._append(self.metadata_path, rec)
        self._records[sid] = rec
        self._by_sha[digest] = sid
        self._refused.pop(sid, None)

    def update(self, sid: str | int, fields: dict[str, Any]) -> None:
        """Change fields of a stored record (e.g. its rank in a new search); the file, hash
        and retrieval time stay. Appended like a new record; :meth:`compact` folds it in."""
        sid = str(sid)
        rec = self._records.get(sid)
        if rec is None:
            raise KeyError(sid)
        protected = {"id", "file", "sha256", "retrieved_at"}
        new = {**rec, **{k: v for k, v in fields.items() if k not in protected}}
        if new != rec:
            self._append(self.metadata_path, new)
            self._records[sid] = new

    def _limits(self) -> Limits:
        # Only "is this decodable audio" is checked here; the collect limits (length, rate,
        # channels) are the pipeline's to apply, so a change to them needs no new download.
        return Limits(
            max_duration=1e9,
            min_sample_rate=1,
            max_sample_rate=10**7,
            max_channels=1024,
            max_file_mb=self.max_bytes / 2**20 + 1,
        )

    def _take(
        self, sid: str, data: bytes | os.PathLike[str] | Iterable[bytes], ext: str
    ) -> Path | None:
        """The data as a temporary file in the folder, or None when it passed ``max_bytes``."""
        if isinstance(data, os.PathLike):
            src = Path(data)
            if src.parent.resolve() == self.root.resolve() and src.name.startswith(TEMP_PREFIX):
                return src
            tmp = self.temp_path(sid, ext)
            try:
                os.replace(src, tmp)
            except OSError:  # another file system: copy, then drop the source
                shutil.copyfile(src, tmp)
                src.unlink(missing_ok=True)
            return tmp
        tmp = self.temp_path(sid, ext)
        chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
        total = 0
        try:
            with tmp.open("wb") as fh:
                for chunk in chunks:
                    total += len(chunk)
                    if total > self.max_bytes:
                        tmp.unlink(missing_ok=True)
                        return None
                    fh.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _refuse(
        self, sid: str, code: str, detail: str, record: dict[str, Any], digest: str = ""
    ) -> str:
        log.warning("refused %s in %s: %s (%s)", sid, self.root, code, detail)
        if code not in TRANSIENT:
            rec = {
                "id": record.get("id", sid),
                "reason": code,
                "detail": detail,
                "url": record.get("preview_url") or record.get("url", ""),
                "sha256": digest,
                "at": utc_now(),
            }
            self._append(self.root / REFUSED, rec)
            self._refused[sid] = rec
        return code

    @staticmethod
    def _append(path: Path, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    # ------------------------------------------------------------------ end of run

    def compact(self) -> None:
        """Rewrite the JSON-lines files sorted by id, one line per id, atomically; remove
        audio files no record names (left by a run killed between rename and record)."""
        kept = self.records()
        self._rewrite(self.metadata_path, kept)
        refused = [self._refused[s] for s in sorted(self._refused, key=id_order)]
        if refused or (self.root / REFUSED).exists():
            self._rewrite(self.root / REFUSED, refused)
        named = {rec["file"] for rec in kept}
        for path in self.root.iterdir():
            stem, _, ext = path.name.rpartition(".")
            if (
                path.is_file()
                and ext in AUDIO_EXTENSIONS
                and SAFE_ID.match(stem)
                and path.name not in named
            ):
                log.info("removed %s: no metadata record (a run killed midway)", path)
                path.unlink()

    def _rewrite(self, path: Path, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
        try:
            if path.read_bytes() == text:
                return  # unchanged: an idle run leaves the folder untouched
        except FileNotFoundError:
            pass
        with replacing(path, prefix=TEMP_PREFIX, suffix=".jsonl", durable=True) as tmp:
            tmp.write_bytes(text)
