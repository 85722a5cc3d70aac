"""crawlers.archive: hostile zips give up their good audio and nothing else."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from crawlers.archive import ArchiveRefused, Limits, audio_members, unsafe_name

LIMITS = Limits(max_archive_bytes=1 << 20, max_files=50, max_member_bytes=64 << 10)


def _zip(entries: list[tuple[str, bytes] | zipfile.ZipInfo | tuple[zipfile.ZipInfo, bytes]]):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry in entries:
            if isinstance(entry, tuple) and isinstance(entry[0], zipfile.ZipInfo):
                zf.writestr(entry[0], entry[1])
            else:
                zf.writestr(*entry)
    return buf.getvalue()


def _noise(n: int, seed: int = 0) -> bytes:
    """Incompressible bytes, like real audio data."""
    import random

    return random.Random(seed).randbytes(n)


def _results(data: bytes, limits: Limits = LIMITS) -> dict[str, str | bytes]:
    return {m.name: (m.refused or m.data) for m in audio_members(data, limits)}


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("kick.wav", None),
        ("Kicks/Deep/kick 01.wav", None),
        ("../evil.wav", "parent_path"),
        ("Kicks/../../evil.wav", "parent_path"),
        ("..\\evil.wav", "parent_path"),
        ("/etc/evil.wav", "absolute_path"),
        ("\\\\server\\share\\evil.wav", "absolute_path"),
        ("C:/evil.wav", "absolute_path"),
        ("c:evil.wav", "absolute_path"),
        ("a\x00b.wav", "bad_name"),
        ("..kick.wav", None),  # dots inside a name are harmless
    ],
)
def test_unsafe_name(name: str, why: str | None) -> None:
    assert unsafe_name(name) == why


def test_good_members_come_out_and_hostile_ones_are_refused() -> None:
    link = zipfile.ZipInfo("Kicks/link.wav")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    fifo = zipfile.ZipInfo("Kicks/fifo.wav")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    kick, snare = _noise(2000, 1), _noise(3000, 2)
    data = _zip(
        [
            ("Kicks/", b""),
            ("Kicks/kick.wav", kick),
            ("../escape.wav", b"x" * 10),
            ("/abs.wav", b"x" * 10),
            (link, b"/etc/passwd"),
            (fifo, b""),
            ("Snares/snare.flac", snare),
            ("readme.txt", b"not audio"),
            ("__MACOSX/Kicks/._kick.wav", b"resource fork"),
            ("Kicks/._kick.wav", b"resource fork"),
        ]
    )
    got = _results(data)
    assert got == {
        "Kicks/kick.wav": kick,
        "../escape.wav": "parent_path",
        "/abs.wav": "absolute_path",
        "Kicks/link.wav": "link",
        "Kicks/fifo.wav": "not_a_file",
        "Snares/snare.flac": snare,
    }
    members = list(audio_members(data, LIMITS))
    assert [(m.folder, m.basename) for m in members if not m.refused] == [
        ("Kicks", "kick.wav"),
        ("Snares", "snare.flac"),
    ]


def test_member_limits() -> None:
    big = _noise(LIMITS.max_member_bytes + 1)
    bomb = b"\0" * 60_000  # deflates about 1000:1
    data = _zip([("big.wav", big), ("bomb.wav", bomb), ("ok.wav", _noise(100))])
    got = _results(data)
    assert got["big.wav"] == "too_large"
    assert got["bomb.wav"] == "zip_bomb"
    assert got["ok.wav"] == _noise(100)


def test_total_unpacked_size_is_capped() -> None:
    members = [(f"k{i}.wav", _noise(10_000, i)) for i in range(5)]
    limits = Limits(
        max_archive_bytes=1 << 20, max_files=50, max_member_bytes=64 << 10, max_total_bytes=25_000
    )
    got = _results(_zip(members), limits)
    assert [k for k, v in got.items() if isinstance(v, bytes)] == ["k0.wav", "k1.wav"]
    assert {got[f"k{i}.wav"] for i in (2, 3, 4)} == {"total_too_large"}


def test_encrypted_member_is_refused() -> None:
    data = bytearray(_zip([("enc.wav", _noise(100))]))
    # Set the "encrypted" flag bit in both the local header and the central directory entry.
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        pos = data.find(sig)
        flag_at = pos + (6 if sig == b"PK\x03\x04" else 8)
        data[flag_at] |= 0x1
    assert _results(bytes(data)) == {"enc.wav": "encrypted"}


def test_corrupt_member_is_refused_not_fatal() -> None:
    good, bad = _noise(500, 3), _noise(500, 4)
    data = bytearray(_zip([("bad.wav", bad), ("good.wav", good)]))
    pos = data.find(b"PK\x03\x04") + 30 + len("bad.wav") + 5  # inside bad.wav's data
    data[pos] ^= 0xFF
    got = _results(bytes(data))
    assert got["bad.wav"] == "corrupt"
    assert got["good.wav"] == good


@pytest.mark.parametrize(
    ("data", "limits", "code"),
    [
        (b"this is not a zip", LIMITS, "not_a_zip"),
        (_zip([("a.wav", b"x")]), Limits(10, 50, 1000), "too_large"),
        (_zip([(f"{i}.wav", b"x") for i in range(6)]), Limits(1 << 20, 5, 1000), "too_many_files"),
    ],
)
def test_whole_archive_refusals(data: bytes, limits: Limits, code: str) -> None:
    with pytest.raises(ArchiveRefused) as info:
        audio_members(data, limits)
    assert info.value.code == code


def test_reads_from_a_file(tmp_path) -> None:
    path = tmp_path / "pack.zip"
    path.write_bytes(_zip([("k.wav", b"abc")]))
    assert _results(path) == {"k.wav": b"abc"}
