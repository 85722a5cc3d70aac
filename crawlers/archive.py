"""Reading the audio out of a downloaded zip archive without trusting anything in it.

Nothing is extracted to disk under a name from the archive: members are read into memory one
at a time, and the caller stores them under ids it derives itself. Even so, members whose
names try to leave a folder (absolute paths, ``..``), links and special files are refused:
an archive holding them is hostile or broken, and its other names do not deserve trust as
labels either way. Archive-wide limits (size, member count, total unpacked size) and
per-member limits (size, compression ratio: a "zip bomb" unpacks to far more than it weighs)
are checked from the central directory before a byte is decompressed, and again while
reading, since the sizes a zip declares can lie.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.params import AUDIO_EXTENSIONS

# Audio barely compresses (lossy formats not at all, PCM about 2:1, silence more); a member
# that unpacks to over 100 times its packed size is a bomb, not a drum hit.
MAX_RATIO = 100.0
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 16
# What reading a damaged member raises (CRC mismatch, bad deflate stream, short data).
_CORRUPT = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError)


class ArchiveRefused(Exception):
    """The whole archive is refused; ``code`` is short and machine-readable."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """What an archive may hold (the ``crawl`` section of params.yaml)."""

    max_archive_bytes: int  # the zip file itself
    max_files: int  # entries in its central directory
    max_member_bytes: int  # one unpacked member
    max_total_bytes: int | None = None  # all unpacked audio; default 10x max_archive_bytes
    max_ratio: float = MAX_RATIO  # unpacked / packed size of one member

    @property
    def total_cap(self) -> int:
        return self.max_total_bytes or 10 * self.max_archive_bytes


@dataclass(frozen=True)
class Member:
    """One audio member: its name in the archive (text for provenance and labels, never a
    path) and its bytes, or why it was refused."""

    name: str
    data: bytes = b""
    refused: str | None = None
    detail: str = ""

    @property
    def folder(self) -> str:
        parent = str(PurePosixPath(self.name.replace("\\", "/")).parent)
        return "" if parent == "." else parent

    @property
    def ext(self) -> str:
        return PurePosixPath(self.basename).suffix.lower().lstrip(".")

    @property
    def basename(self) -> str:
        return PurePosixPath(self.name.replace("\\", "/")).name


def unsafe_name(name: str) -> str | None:
    """Why a member name could escape the folder it is extracted to, or None."""
    if "\x00" in name:
        return "bad_name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        return "absolute_path"
    if ".." in norm.split("/"):
        return "parent_path"
    return None


def _kind(info: zipfile.ZipInfo) -> str | None:
    """Why an entry is not a regular file (``link``, ``not_a_file``), or None."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "link"
    if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "not_a_file"
    return None


def _junk(name: str) -> bool:
    """macOS resource forks (``__MACOSX/``, ``._name``): metadata with audio names."""
    norm = name.replace("\\", "/")
    return norm.startswith("__MACOSX/") or PurePosixPath(norm).name.startswith("._")


def open_archive(source: bytes | Path, limits: Limits) -> zipfile.ZipFile:
    """Open a zip after its archive-wide checks; raises :class:`ArchiveRefused`."""
    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    if size > limits.max_archive_bytes:
        raise ArchiveRefused("too_large", f"{size} > {limits.max_archive_bytes} bytes")
    try:
        # ZipFile opens (and, on close, closes) a path itself.
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else Path(source))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveRefused("not_a_zip", str(exc)) from None
    count = len(zf.infolist())
    if count > limits.max_files:
        zf.close()
        raise ArchiveRefused("too_many_files", f"{count} > {limits.max_files} entries")
    return zf


def audio_members(
    source: bytes | Path, limits: Limits, extensions: tuple[str, ...] = AUDIO_EXTENSIONS
) -> Iterator[Member]:
    """The audio members of a zip, in archive order, read one at a time.

    Raises :class:`ArchiveRefused` (before yielding anything) when the archive as a whole is
    refused. Refused members are yielded with ``refused`` set (``absolute_path``,
    ``parent_path``, ``link``, ``not_a_file``, ``encrypted``, ``too_large``, ``zip_bomb``,
    ``corrupt``, ``total_too_large``); members that are not audio by name, folders and macOS
    resource forks are passed over.
    """
    zf = open_archive(source, limits)
    return _members(zf, limits, {e.lower() for e in extensions})


def _members(zf: zipfile.ZipFile, limits: Limits, extensions: set[str]) -> Iterator[Member]:
    total = 0
    with zf:
        for info in zf.infolist():
            name = info.filename
            why = unsafe_name(name) or _kind(info)
            if why:
                yield Member(name, refused=why)
                continue
            if info.is_dir() or _junk(name):
                continue
            if PurePosixPath(name.replace("\\", "/")).suffix.lower().lstrip(".") not in extensions:
                continue
            if info.flag_bits & 0x1:
                yield Member(name, refused="encrypted")
                continue
            if info.file_size > limits.max_member_bytes:
                yield Member(name, refused="too_large", detail=f"{info.file_size} bytes unpacked")
                continue
            if info.file_size > limits.max_ratio * max(info.compress_size, 1):
                yield Member(
                    name,
                    refused="zip_bomb",
                    detail=f"{info.file_size} bytes from {info.compress_size}",
                )
                continue
            if total + info.file_size > limits.total_cap:
                yield Member(name, refused="total_too_large", detail="archive unpacks too big")
                continue
            try:
                data = _read_capped(zf, info, limits)
            except _Overflow as exc:
                yield Member(name, refused=exc.code, detail=exc.detail)
                continue
            except _CORRUPT as exc:
                yield Member(name, refused="corrupt", detail=str(exc)[:200])
                continue
            total += len(data)
            yield Member(name, data=data)


class _Overflow(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> bytes:
    """A member's bytes, stopping as soon as it unpacks past what its header declared or the
    limits allow (a header can lie about sizes)."""
    cap = min(limits.max_member_bytes, int(limits.max_ratio * max(info.compress_size, 1)))
    buf = bytearray()
    with zf.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            buf += chunk
            if len(buf) > cap:
                code = "too_large" if len(buf) > limits.max_member_bytes else "zip_bomb"
                raise _Overflow(code, f"unpacks past {cap} bytes")
    return bytes(buf)
