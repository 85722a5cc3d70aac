"""The user's own sample folders (``collect.local_dirs``), indexed in place, never copied."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from core.errors import ConfigError


def find_audio(root: Path, extensions: list[str]) -> Iterator[Path]:
    """Every path under ``root`` whose name ends in an audio extension, in a stable order.

    Folders so named are listed too (the runner refuses them as ``not_a_file``) so nothing that
    looks like audio is dropped silently. Hidden files (``.DS_Store``, macOS ``._x.wav``
    shadows) are skipped. Symlinked folders are followed once each.
    """
    exts = {"." + e.lower().lstrip(".") for e in extensions}
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        for name in sorted([*filenames, *dirnames]):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in exts:
                yield Path(dirpath) / name


def local_rows(dirs: list[str], extensions: list[str]) -> list[dict[str, str]]:
    """Manifest rows for every candidate file; ``source_id`` is its path inside its folder."""
    rows = []
    for d in dirs:
        root = Path(os.path.expanduser(str(d)))
        if not root.is_dir():
            raise ConfigError(f"collect.local_dirs: {root} is not a folder")
        found = list(find_audio(root, extensions))
        if not found:
            raise ConfigError(
                f"no audio files in {root} (extensions {', '.join(extensions)}): "
                "check collect.local_dirs"
            )
        for path in found:
            rel = path.relative_to(root).as_posix()
            folder = path.parent.relative_to(root).as_posix()
            rows.append(
                {
                    "src": str(path.absolute()),
                    "source": "local",
                    "source_id": rel,
                    "name": path.name,
                    "folder": "" if folder == "." else folder,
                    "license": "unknown",
                    # Relative to the folder in local_dirs: the user's own paths stay private.
                    "attribution": f"{rel} (local file)",
                }
            )
    return rows
