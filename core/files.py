"""Files the project writes: atomically, readable by others, hashed; CSV and JSON lines.

A reader (a later stage, DVC, a resumed run) must never see half a file: manifests, audio,
metadata and checkpoints are written under a temporary name beside the target and renamed
onto it only when complete. A run killed midway leaves the old file (or none) and at most a
hidden temporary file. Whole stage folders are replaced the same way.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp makes 0600 files; what we write must be readable as any other tool's files are (a
# DAW running as another user, a web server, a colleague): the umask decides.
FILE_MODE = 0o666 & ~_umask()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_file(path: Path) -> None:
    """Put a file's bytes on disk before anything (a rename, a record) points at them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def replacing(
    path: str | os.PathLike[str],
    *,
    prefix: str | None = None,
    suffix: str = ".part",
    durable: bool = False,
) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; rename it onto ``path`` when the block
    ends without error, remove it otherwise.

    ``durable`` also fsyncs the file before the rename and the folder after it, for files a
    crash must not lose once written (downloads, metadata, checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=prefix if prefix is not None else f".{path.name}.", suffix=suffix, dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, FILE_MODE)
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def temp_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new empty file in ``folder`` with the umask's mode (not mkstemp's 0600), for a
    writer that streams into it before it is checked and renamed into place."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    os.chmod(name, FILE_MODE)
    return Path(name)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace a text file (UTF-8) atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def fresh_dir(path: Path) -> Path:
    """An empty folder beside ``path`` (``.<name>.partial``) to fill and then hand to
    :func:`replace_dir`; what a killed run left there is removed first."""
    work = path.parent / f".{path.name}.partial"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return work


def replace_dir(work: Path, path: Path) -> None:
    """Put the finished folder ``work`` in place of ``path``: the old folder is moved aside
    and removed only after the new one is in place, so a crash leaves one of the two."""
    old = path.parent / f".{path.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(work, path)
    shutil.rmtree(old, ignore_errors=True)


def link_or_copy(src: Path, dst: Path) -> None:
    """Place ``src`` at ``dst``, hard-linked where the filesystem allows, so no bytes are copied."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


# ----------------------------------------------------------------------------- tables

Row = dict[str, str]


def read_csv(path: Path) -> list[Row]:
    """Rows of a CSV file with a header, as strings."""
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def columns(rows: Iterable[Row], first: list[str]) -> list[str]:
    """``first``, then every other key in the order the rows first use it."""
    cols = list(first)
    seen = set(cols)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                cols.append(key)
    return cols


def write_csv(path: Path, rows: list[Row], first: list[str]) -> None:
    """Write rows atomically with ``first`` columns leading, so a reader never sees half a file."""
    with replacing(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns(rows, first), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a torn or garbled line is skipped, not fatal."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    bad = 0
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            out.append(obj)
    if bad:
        log.warning("%s: skipped %d unreadable line(s) (a run killed mid-write)", path, bad)
    return out
