"""Atomic file replacement, the one way every writer in the project puts a file in place.

A reader (a later stage, DVC, a resumed run) must never see half a file: manifests, audio,
metadata and checkpoints are written under a temporary name beside the target and renamed
onto it only when complete. A run killed midway leaves the old file (or none) and at most a
hidden temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
