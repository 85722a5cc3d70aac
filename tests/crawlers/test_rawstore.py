"""crawlers.rawstore: safe landing of downloads (ids as names, temp + rename, size cap, decode
check, sha256 dedupe) and a metadata.jsonl that survives killed runs."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.files import read_jsonl
from crawlers.rawstore import METADATA, REFUSED, TEMP_PREFIX, RawStore, derive_id

STORE_MAX = 20 * 2**20  # bytes: a downloaded file as large as freesound.max_file_mb allows


def _mp3(seed: int, seconds: float = 0.3) -> bytes:
    rng = np.random.default_rng(seed)
    y = (rng.standard_normal(int(44100 * seconds)) * 0.2).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, y, 44100, format="MP3")
    return buf.getvalue()


def _wav(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(seed).standard_normal(4410) * 0.1, 44100, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def clips() -> dict[str, bytes]:
    return {"a": _mp3(1), "b": _mp3(2), "w": _wav(3)}


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_land_stores_file_by_id_with_record(tmp_path: Path, clips: dict[str, bytes]) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)
    assert (
        store.land(1001, clips["a"], "mp3", {"id": 1001, "name": "Kick", "label": "kick"}) is None
    )
    path = tmp_path / "fs" / "1001.mp3"
    assert path.read_bytes() == clips["a"]
    assert store.has(1001) and store.has("1001") and store.path(1001) == path
    (line,) = (tmp_path / "fs" / METADATA).read_text().splitlines()
    rec = json.loads(line)
    assert rec["id"] == 1001 and rec["name"] == "Kick" and rec["label"] == "kick"
    assert rec["file"] == "1001.mp3"
    assert rec["sha256"] == hashlib.sha256(clips["a"]).hexdigest()
    assert rec["retrieved_at"].endswith("Z") and rec["retrieved_at"][:2] == "20"
    assert _files(tmp_path / "fs") == ["1001.mp3", METADATA]
    # A fresh store over the folder sees the same thing.
    again = RawStore(tmp_path / "fs", STORE_MAX)
    assert again.records() == [rec]


@pytest.mark.parametrize("bad", ["../evil", "a/b", "", ".hidden", "x" * 81, "a b", "..", "é"])
def test_unsafe_ids_never_become_paths(tmp_path: Path, clips: dict[str, bytes], bad: str) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)
    assert store.land(bad, clips["a"], "mp3", {"id": bad}) == "unsafe_id"
    assert _files(tmp_path / "fs") == []
    assert _files(tmp_path) == ["fs"]


def test_extension_must_be_audio(tmp_path: Path, clips: dict[str, bytes]) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)
    assert store.land(1, clips["a"], "sh", {"id": 1}) == "bad_extension"
    assert store.land(2, clips["a"], "../mp3", {"id": 2}) == "bad_extension"
    assert not list((tmp_path / "fs").glob("*.sh"))


def test_oversized_stream_is_cut_off_early(tmp_path: Path) -> None:
    store = RawStore(tmp_path / "fs", max_bytes=10_000)
    consumed = []

    def chunks() -> Iterator[bytes]:
        for i in range(100):
            consumed.append(i)
            yield b"\0" * 4096

    assert store.land(7, chunks(), "mp3", {"id": 7}) == "too_large"
    assert len(consumed) == 3  # stopped as soon as the cap was passed, not after 400 KB
    assert not store.has(7) and store.refusal(7) == "too_large"
    assert _files(tmp_path / "fs") == [REFUSED]


def test_short_transfer_is_incomplete_and_not_remembered(
    tmp_path: Path, clips: dict[str, bytes]
) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)
    data = clips["a"]
    assert store.land(5, data[:-100], "mp3", {"id": 5}, expected_bytes=len(data)) == "incomplete"
    assert store.refusal(5) is None and not store.has(5)
    assert store.land(5, data, "mp3", {"id": 5}, expected_bytes=len(data)) is None
    assert store.has(5)


def test_same_content_is_stored_once(tmp_path: Path, clips: dict[str, bytes]) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)
    assert store.land(1, clips["a"], "mp3", {"id": 1}) is None
    assert store.land(2, clips["a"], "mp3", {"id": 2}) == "duplicate"
    assert store.land(3, clips["b"], "mp3", {"id": 3}) is None
    assert [r["id"] for r in store.records()] == [1, 3]
    assert sorted(p.name for p in (tmp_path / "fs").glob("*.mp3")) == ["1.mp3", "3.mp3"]
    # Remembered, so a second run need not fetch it again.
    assert RawStore(tmp_path / "fs", STORE_MAX).refusal(2) == "duplicate"
    # The same id landing the same content again is an update, not a duplicate.
    assert store.land(1, clips["a"], "mp3", {"id": 1, "rank": 4}) is None
    assert store.record(1)["rank"] == 4


def test_undecodable_download_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)
    html = b"<html><body>" + b"Not Found " * 300 + b"</body></html>"
    code = store.land(9, html, "mp3", {"id": 9})
    assert code in {"not_audio", "corrupt_header", "no_frames", "decode_error"}
    assert not store.has(9) and store.refusal(9) == code
    assert _files(tmp_path / "fs") == [REFUSED]
    assert store.land(10, b"", "wav", {"id": 10}) == "empty_file"


def test_truncated_wav_is_refused(tmp_path: Path, clips: dict[str, bytes]) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)
    assert store.land(11, clips["w"][:-500], "wav", {"id": 11}) == "truncated"


def test_land_from_temp_path_and_foreign_file(tmp_path: Path, clips: dict[str, bytes]) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)
    tmp = store.temp_path("21", "mp3")
    assert tmp.parent == tmp_path / "fs" and tmp.name.startswith(TEMP_PREFIX)
    tmp.write_bytes(clips["a"])
    assert store.land(21, tmp, "mp3", {"id": 21}) is None
    assert not tmp.exists()
    outside = tmp_path / "download.part"
    outside.write_bytes(clips["b"])
    assert store.land(22, outside, "mp3", {"id": 22}) is None
    assert not outside.exists()
    assert _files(tmp_path / "fs") == ["21.mp3", "22.mp3", METADATA]


def test_stream_error_cleans_up_and_propagates(tmp_path: Path, clips: dict[str, bytes]) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)

    def broken() -> Iterator[bytes]:
        yield clips["a"][:500]
        raise ConnectionError("reset by peer")

    with pytest.raises(ConnectionError):
        store.land(30, broken(), "mp3", {"id": 30})
    assert _files(tmp_path / "fs") == []


def test_killed_run_leftovers_are_tolerated_and_cleaned(
    tmp_path: Path, clips: dict[str, bytes]
) -> None:
    root = tmp_path / "fs"
    store = RawStore(root, STORE_MAX)
    assert store.land(9, clips["a"], "mp3", {"id": 9, "label": "kick"}) is None
    assert store.land(10, clips["b"], "mp3", {"id": 10, "label": "kick"}) is None
    store.update(9, {"rank": 2, "file": "../../etc/passwd", "sha256": "x"})
    # What a SIGKILL can leave: a torn last line, a temp file, a file renamed but unrecorded.
    with (root / METADATA).open("a") as fh:
        fh.write('{"id": 11, "file": "11.mp3", "sha')
    (root / f"{TEMP_PREFIX}12-abc.mp3").write_bytes(clips["a"][:100])
    (root / "13.mp3").write_bytes(clips["w"])
    reopened = RawStore(root, STORE_MAX)
    assert not (root / f"{TEMP_PREFIX}12-abc.mp3").exists()
    assert [r["id"] for r in reopened.records()] == [9, 10]
    assert reopened.record(9)["rank"] == 2 and reopened.record(9)["file"] == "9.mp3"
    reopened.compact()
    lines = (root / METADATA).read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [9, 10]  # numeric order, one line per id
    assert not (root / "13.mp3").exists()
    assert _files(root) == ["10.mp3", "9.mp3", METADATA]


def test_missing_file_means_not_stored(tmp_path: Path, clips: dict[str, bytes]) -> None:
    store = RawStore(tmp_path / "fs", STORE_MAX)
    assert store.land(4, clips["a"], "mp3", {"id": 4}) is None
    (tmp_path / "fs" / "4.mp3").unlink()
    assert not store.has(4) and store.records() == []
    # The content is free again: it may land under another id.
    assert store.land(5, clips["a"], "mp3", {"id": 5}) is None


def test_read_jsonl_skips_garbage(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"id": 1}\nnot json\n[1, 2]\n\n{"id": 2}\n{"id": 3')
    assert read_jsonl(path) == [{"id": 1}, {"id": 2}]
    assert read_jsonl(tmp_path / "none.jsonl") == []


def test_derive_id_is_safe_and_stable() -> None:
    a = derive_id("https://x.com/pack.zip", "../../kick.wav")
    assert a == derive_id("https://x.com/pack.zip", "../../kick.wav")
    assert a != derive_id("https://x.com/pack.zip", "kick.wav")
    assert len(a) == 16 and all(c in "0123456789abcdef" for c in a)
