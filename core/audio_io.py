"""Audio files: header checks, checked decoding and atomic, reproducible writes.

Every problem a file can have is turned into a :class:`Reject` with a short reason code, so a
stage can refuse the file and go on. Pure audio functions never import this module.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from core.errors import Reject
from core.files import replacing
from core.params import Collect

_FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "aif": "AIFF", "aiff": "AIFF", "mp3": "MP3"}
_DEFAULT_SUBTYPES = {"FLAC": "PCM_24", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III", "AIFF": "PCM_24"}


@dataclass(frozen=True)
class Limits:
    """What the header of an input file may say before it is decoded (``collect.*``)."""

    max_duration: float
    min_sample_rate: int
    max_sample_rate: int
    max_channels: int
    max_file_mb: float

    @classmethod
    def of(cls, collect: Collect) -> Limits:
        return cls(
            max_duration=collect.max_duration,
            min_sample_rate=collect.min_sample_rate,
            max_sample_rate=collect.max_sample_rate,
            max_channels=collect.max_channels,
            max_file_mb=collect.max_file_mb,
        )

    @classmethod
    def none(cls) -> Limits:
        """Limits that let any file through (for sets whose shape is checked otherwise)."""
        return cls(math.inf, 1, 10**9, 1024, math.inf)


@dataclass(frozen=True)
class Header:
    """What the file's header says, read without decoding the audio."""

    sample_rate: int
    channels: int
    frames: int
    format: str
    size: int = 0  # bytes

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _wav_truncated(path: Path) -> bool:
    """True when a RIFF/WAVE file's ``data`` chunk claims more bytes than the file holds.

    libsndfile silently shortens such files, so a download cut off midway would pass unnoticed.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return True
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                # 0 and 0xFFFFFFFF are written by streaming encoders that never fill the size in.
                return csize not in (0, 0xFFFFFFFF) and pos + 8 + csize > size
            pos += 8 + csize + (csize & 1)
    return False


def read_header(path: Path) -> Header:
    """Read a file's header, refusing what no setting could make usable (never decodes audio)."""
    if not path.exists():
        raise Reject("missing", "file does not exist")
    if not path.is_file():
        raise Reject("not_a_file", "path is a directory or special file")
    size = path.stat().st_size
    if size == 0:
        raise Reject("empty_file", "file has zero bytes")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        msg = str(exc).split(": ", 1)[-1].strip()
        if "not recognised" in msg.lower() or "unknown format" in msg.lower():
            raise Reject("not_audio", "not a recognised audio format") from None
        raise Reject("corrupt_header", msg) from None
    header = Header(
        int(info.samplerate), int(info.channels), int(info.frames), str(info.format), size
    )
    if header.sample_rate <= 0 or header.channels <= 0:
        raise Reject("corrupt_header", f"{header.sample_rate} Hz, {header.channels} channels")
    if header.frames <= 0:
        raise Reject("no_frames", "header reports no audio frames (empty or truncated)")
    if header.format == "WAV" and _wav_truncated(path):
        raise Reject("truncated", "data chunk is shorter than its header says")
    return header


def check_limits(header: Header, limits: Limits) -> None:
    """Refuse a header the ``collect.*`` limits rule out."""
    if header.size > limits.max_file_mb * 1024 * 1024:
        raise Reject(
            "too_large", f"{header.size / 2**20:.1f} MiB > collect.max_file_mb {limits.max_file_mb}"
        )
    if header.duration > limits.max_duration:
        raise Reject(
            "too_long", f"{header.duration:.2f} s > collect.max_duration {limits.max_duration} s"
        )
    if header.sample_rate < limits.min_sample_rate:
        raise Reject(
            "sample_rate_too_low",
            f"{header.sample_rate} Hz < collect.min_sample_rate {limits.min_sample_rate}",
        )
    if header.sample_rate > limits.max_sample_rate:
        raise Reject(
            "sample_rate_too_high",
            f"{header.sample_rate} Hz > collect.max_sample_rate {limits.max_sample_rate}",
        )
    if header.channels > limits.max_channels:
        raise Reject(
            "too_many_channels",
            f"{header.channels} channels > collect.max_channels {limits.max_channels}",
        )


def probe(path: Path, limits: Limits) -> Header:
    """Check a file from its header alone, so over-long or hostile files are never decoded."""
    header = read_header(path)
    check_limits(header, limits)
    return header


def read(path: Path, limits: Limits) -> tuple[np.ndarray, int]:
    """Decode a checked file to float32 ``[channels, samples]``; refuse what cannot be trusted."""
    header = probe(path, limits)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise Reject("decode_error", str(exc).split(": ", 1)[-1].strip()) from None
    if data.shape[0] == 0:
        raise Reject("no_frames", "decoded no audio frames")
    if header.format in ("WAV", "FLAC", "AIFF") and data.shape[0] < header.frames:
        raise Reject("truncated", f"decoded {data.shape[0]} of {header.frames} frames")
    if not np.isfinite(data).all():
        raise Reject("non_finite", "audio holds NaN or Inf samples")
    return np.ascontiguousarray(data.T), int(sr)


def write_atomic(path: Path, audio: np.ndarray, sr: int, subtype: str | None = None) -> None:
    """Write ``[channels, samples]`` audio under a temporary name, then rename it into place.

    A stage killed midway therefore never leaves a half-written file that looks finished.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = _FORMATS.get(path.suffix.lower().lstrip("."))
    if fmt is None:
        raise ValueError(f"cannot write audio with extension {path.suffix!r}")
    if fmt != "WAV" or subtype is None:
        subtype = _DEFAULT_SUBTYPES.get(fmt, subtype or "PCM_24")
    with replacing(path) as tmp:
        sf.write(tmp, np.ascontiguousarray(audio.T), sr, format=fmt, subtype=subtype)
        _make_reproducible(tmp, fmt)


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC_TABLE = _ogg_crc_table()


def _ogg_crc(data: bytes | bytearray) -> int:
    """The CRC-32 of an Ogg page (polynomial 0x04C11DB7, not reflected, initial value 0)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _make_reproducible(path: Path, fmt: str) -> None:
    """Zero what libsndfile makes differ between two writes of the same audio.

    A float WAV's ``PEAK`` chunk holds the time of writing, and an Ogg stream gets a random
    serial number. Both would give the same clip a new hash on every run, so DVC would re-run
    every stage after ``collect`` (which always runs) although nothing changed.
    """
    if fmt == "WAV":
        with path.open("r+b") as fh:
            head = fh.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return
            size, pos = path.stat().st_size, 12
            while pos + 8 <= size:
                fh.seek(pos)
                cid, csize = struct.unpack("<4sI", fh.read(8))
                if cid == b"PEAK":
                    fh.seek(pos + 12)  # after the version field: the timestamp
                    fh.write(b"\0\0\0\0")
                    return
                if cid == b"data":
                    return
                pos += 8 + csize + (csize & 1)
    elif fmt == "OGG":
        data = bytearray(path.read_bytes())
        serials: dict[bytes, int] = {}
        pos = 0
        while pos + 27 <= len(data) and data[pos : pos + 4] == b"OggS":
            nseg = data[pos + 26]
            end = pos + 27 + nseg + sum(data[pos + 27 : pos + 27 + nseg])
            fixed = serials.setdefault(bytes(data[pos + 14 : pos + 18]), len(serials) + 1)
            data[pos + 14 : pos + 18] = struct.pack("<I", fixed)
            data[pos + 22 : pos + 26] = b"\0\0\0\0"
            data[pos + 22 : pos + 26] = struct.pack("<I", _ogg_crc(data[pos:end]))
            pos = end
        path.write_bytes(data)
