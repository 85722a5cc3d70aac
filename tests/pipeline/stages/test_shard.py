"""shard: the augmented set as WebDataset tars that WebDataset itself reads back, with each
clip's row beside it, an index, the same bytes every run, and bad files refused."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from chain import run

from core.files import sha256_file
from pipeline.manifests import MANIFEST_COLUMNS
from pipeline.stages import shard

CLASSES = ["kick", "snare", "hihat", "clap"]
SR = 8000


@pytest.fixture
def repo(tmp_path: Path, params: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repo folder with data/augmented/ (5 clips per class, variants among them)."""
    params["audio"].update(sample_rate=SR, duration=0.05)
    params["shard"].update(clips_per_shard=6, seed=3)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    base = tmp_path / "data" / "augmented"
    rows = []
    rng = np.random.default_rng(0)
    for cls in CLASSES:
        (base / cls).mkdir(parents=True)
        for i in range(5):
            rel = f"{cls}/{cls}-{i}.v{i % 2}.wav"  # a dot in the name: the key must not keep it
            sf.write(base / rel, rng.uniform(-0.5, 0.5, 400).astype(np.float32), SR, "FLOAT")
            rows.append({"path": rel, "label": cls, "source": "demo", "source_id": f"{cls}{i}",
                         "license": "CC0", "attribution": f"{cls} {i} by Zoë", "variant":
                         "original" if i < 2 else f"gain_-{i}", "sample_rate": str(SR),
                         "num_samples": "400", "channels": "1",
                         "sha256": sha256_file(base / rel)})  # fmt: skip
    with (base / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*MANIFEST_COLUMNS, "channels", "sha256"])
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _rows(repo: Path) -> list[dict]:
    with (repo / "data/augmented/manifest.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_webdataset_reads_every_clip_once_with_its_row(repo: Path) -> None:
    import webdataset as wds

    assert run(shard, "--no-progress") == 0
    index = json.loads((repo / "data/shards/index.json").read_text(encoding="utf-8"))
    assert [s["clips"] for s in index["shards"]] == [6, 6, 6, 2]
    assert index["clips"] == 20 and index["classes"] == {c: 5 for c in CLASSES}
    assert (index["sample_rate"], index["channels"], index["length"]) == (SR, 1, 400)
    urls = []
    for s in index["shards"]:
        path = repo / "data/shards" / s["name"]
        assert s["bytes"] == path.stat().st_size and s["sha256"] == sha256_file(path)
        urls.append(str(path))

    by_key = {shard.sample_key(r): r for r in _rows(repo)}
    seen, order = Counter(), []
    per_shard = []
    for url in urls:
        labels = set()
        for sample in wds.WebDataset(url, shardshuffle=False):
            row = by_key[sample["__key__"]]
            assert sample["wav"] == (repo / "data/augmented" / row["path"]).read_bytes()
            meta = json.loads(sample["json"])
            assert meta == {k: v for k, v in row.items() if k != "path"}
            audio, sr = sf.read(io.BytesIO(sample["wav"]))
            assert sr == SR and len(audio) == 400
            seen[sample["__key__"]] += 1
            order.append(sample["__key__"])
            labels.add(meta["label"])
        per_shard.append(labels)
    assert seen == Counter(set(by_key))  # every clip once
    assert order != list(by_key), "the clips are not shuffled into the shards"
    assert all(len(labels) > 1 for labels in per_shard[:-1]), "shards not shuffled across classes"


def test_the_same_set_gives_the_same_bytes(repo: Path) -> None:
    def digests() -> dict[str, str]:
        return {p.name: sha256_file(p) for p in sorted((repo / "data/shards").iterdir())}

    assert run(shard, "--no-progress") == 0
    first = digests()
    time.sleep(1.1)  # another second on the clock, other file times: not in the tars
    for path in (repo / "data/augmented").rglob("*.wav"):
        os.utime(path)
    assert run(shard, "--no-progress") == 0
    assert digests() == first
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["shard"]["seed"] = 4
    (repo / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    assert run(shard, "--no-progress") == 0
    assert digests()["shard-000000.tar"] != first["shard-000000.tar"]


def test_a_changed_or_missing_file_is_refused_and_the_rest_written(
    repo: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = _rows(repo)
    (repo / "data/augmented" / rows[3]["path"]).write_bytes(b"RIFF not the same")
    (repo / "data/augmented" / rows[7]["path"]).unlink()
    assert run(shard, "--no-progress") == 0
    assert "shard: 20 in, 18 clips in 4 shard(s), 2 refused" in capsys.readouterr().out
    with (repo / "data/rejects.csv").open(encoding="utf-8") as fh:
        refused = {r["path"].split("/")[-1]: r["reason"] for r in csv.DictReader(fh)}
    assert refused == {
        Path(rows[3]["path"]).name: "changed",
        Path(rows[7]["path"]).name: "unreadable",
    }
    index = json.loads((repo / "data/shards/index.json").read_text(encoding="utf-8"))
    assert index["clips"] == 18 == sum(s["clips"] for s in index["shards"])


def test_bad_settings_exit_2_and_touch_nothing(repo: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(shard, "--no-progress") == 0
    before = hashlib.sha256((repo / "data/shards/index.json").read_bytes()).hexdigest()
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["shard"]["clips_per_shard"] = 0
    (repo / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    capsys.readouterr()
    assert run(shard, "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("shard: error: ") and "shard.clips_per_shard" in err and "\n" not in err
    after = hashlib.sha256((repo / "data/shards/index.json").read_bytes()).hexdigest()
    assert before == after
