"""training.data: the in-memory training set and the step-addressed sampler."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from drumkit import CLASSES, LENGTH, SAMPLE_RATE, clip, write_kit

from training.data import (
    Clips,
    DataError,
    MemoryBatches,
    ShardSampler,
    batch_lengths,
    load_clips,
)


def _load(manifest: Path, **kw) -> object:
    args = dict(class_names=CLASSES, sample_rate=SAMPLE_RATE, length=LENGTH, channels=1)
    return load_clips(manifest, **{**args, **kw, "progress": False})


def _rewrite(manifest: Path, change) -> None:
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    change(rows)
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_loads_every_clip_with_its_label(tmp_path: Path) -> None:
    manifest = write_kit(tmp_path, per_class=3)
    clips = _load(manifest)
    assert clips.audio.shape == (12, 1, LENGTH) and clips.audio.dtype == torch.float32
    assert clips.total == 12 and clips.class_counts() == dict.fromkeys(CLASSES, 3)
    # Row order is kept: the third clip of the manifest is kick number 2.
    assert CLASSES[int(clips.labels[2])] == "kick"
    np.testing.assert_allclose(clips.audio[2].numpy(), clip("kick", 2), atol=1e-7)
    assert CLASSES[int(clips.labels[11])] == "clap"


def test_shards_are_disjoint_and_cover_the_set(tmp_path: Path) -> None:
    manifest = write_kit(tmp_path, per_class=3)
    whole = _load(manifest)
    shards = [_load(manifest, rank=r, world_size=2) for r in range(2)]
    assert [len(s) for s in shards] == [6, 6] and all(s.total == 12 for s in shards)
    assert shards[0].fingerprint == shards[1].fingerprint == whole.fingerprint
    torch.testing.assert_close(shards[0].audio, whole.audio[0::2])
    torch.testing.assert_close(shards[1].audio, whole.audio[1::2])


def test_fingerprint_follows_the_content_not_the_file_times(tmp_path: Path) -> None:
    """The set is known by content (issue 10): a new file time (a relink, a copy, a fresh
    clone) keeps the fingerprint, new content under the same name changes it."""
    manifest = write_kit(tmp_path, per_class=1)
    before = _load(manifest).fingerprint
    assert _load(manifest).fingerprint == before
    wav = manifest.parent / "snare" / "snare_000.wav"
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert _load(manifest).fingerprint == before
    y, sr = sf.read(wav, dtype="float32")
    sf.write(wav, 0.5 * y, sr, subtype="FLOAT")
    assert _load(manifest).fingerprint != before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows[1].update(label="cowbell"), "label 'cowbell' not in label.classes"),
        (lambda rows: rows[2].update(sample_rate="44100"), "44100 Hz, not audio.sample_rate"),
        (lambda rows: rows[3].update(num_samples="999"), "999 samples, not 1024"),
    ],
)
def test_rows_that_do_not_fit_are_refused_before_decoding(
    tmp_path: Path, change, message: str
) -> None:
    manifest = write_kit(tmp_path, per_class=2)
    _rewrite(manifest, change)
    with pytest.raises(DataError, match="1 clip") as err:
        _load(manifest)
    assert message in str(err.value) and "dvc repro" in str(err.value)


def test_a_file_that_differs_from_its_row_is_refused(tmp_path: Path) -> None:
    manifest = write_kit(tmp_path, per_class=2)
    sf.write(manifest.parent / "hihat" / "hihat_001.wav", np.zeros(500), SAMPLE_RATE)
    (manifest.parent / "clap" / "clap_000.wav").write_bytes(b"not audio")
    with pytest.raises(DataError, match="2 clip") as err:
        _load(manifest)
    assert "hihat/hihat_001.wav: 8000 Hz, 1 channel(s), 500 samples" in str(err.value)
    assert "clap/clap_000.wav: not_audio" in str(err.value)


def test_missing_or_empty_sets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run the previous stage"):
        _load(tmp_path / "data" / "augmented" / "manifest.csv")
    manifest = write_kit(tmp_path, per_class=1)
    (manifest.parent / "kick" / "kick_000.wav").unlink()
    with pytest.raises(DataError, match="missing file"):
        _load(manifest)
    manifest.write_text(",".join(["path", "label"]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="no clips"):
        _load(manifest)


def test_sampler_is_a_pure_function_of_the_step() -> None:
    a, b = ShardSampler(10, 4, seed=3), ShardSampler(10, 4, seed=3)
    first = [a.indices(k) for k in range(10)]
    # Asked out of order, as a resumed run does: the same batches.
    for k in (7, 2, 9, 0):
        assert torch.equal(b.indices(k), first[k])
    # Every clip once per epoch: 10 batches of 4 are 4 epochs of 10.
    flat = torch.cat(first)
    for epoch in range(4):
        assert sorted(flat[epoch * 10 : (epoch + 1) * 10].tolist()) == list(range(10))
    assert not torch.equal(flat[:10], flat[10:20])  # a new order each epoch
    assert not torch.equal(ShardSampler(10, 4, seed=4).indices(0), first[0])


def test_sampler_handles_batches_larger_than_the_shard() -> None:
    s = ShardSampler(3, 8, seed=0)
    batch = s.indices(1)
    assert batch.shape == (8,) and set(batch.tolist()) <= {0, 1, 2}
    flat = torch.cat([s.indices(0), batch, s.indices(2)])  # 24 positions = 8 epochs of 3
    for epoch in range(8):
        assert sorted(flat[epoch * 3 : epoch * 3 + 3].tolist()) == [0, 1, 2]


def test_the_in_memory_set_measures_each_clip_once_and_a_stream_every_batch() -> None:
    """The lengths of a batch are the measure of its clips, whether cached or not; the
    in-memory set hands each clip to the measure once, however often it is drawn."""
    audio = torch.rand(5, 1, 64) * torch.arange(1, 6)[:, None, None]
    clips = Clips(audio, torch.zeros(5, dtype=torch.int64), ["kick"], 8000, 5, "x")
    data = MemoryBatches(clips, batch_size=3, seed=0)
    seen: list[int] = []

    def measure(x: torch.Tensor) -> torch.Tensor:
        seen.extend(range(len(x)))
        return x.flatten(1).amax(1)  # stands in for the length: one number per clip

    for k in range(12):  # more than two epochs
        x, _ = data.batch(k)
        torch.testing.assert_close(batch_lengths(data, k, x, measure), x.flatten(1).amax(1))
    assert len(seen) == 5

    class Stream:
        def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
            return audio[:2], torch.zeros(2, dtype=torch.int64)

    seen.clear()
    for k in range(3):
        x, _ = Stream().batch(k)
        torch.testing.assert_close(batch_lengths(Stream(), k, x, measure), x.flatten(1).amax(1))
    assert len(seen) == 6
