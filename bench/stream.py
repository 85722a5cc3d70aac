"""Benchmark: training's peak memory against the size of the set, in memory and streamed.

    python bench/stream.py          # 2k, 20k, 200k clips streamed; 2k, 20k in memory
    python bench/stream.py --sizes 2000 --folder-sizes ""   # a quick look

Each run is the real ``python -m training.train`` (the default preset and batch, a few steps,
no checks or demos) in a temp project, in its own process: its peak RSS is its own. The sets
are synthetic one-second clips at 44.1 kHz: 256 decaying noise bursts written once and cut
into one shard by the real ``shard`` stage; a set of N clips lists N/256 hard links to that
shard in its ``index.json`` (or N hard links to the clips in its manifest), so a 200k-clip
set costs no disk while the reader still reads, checks and decodes every shard it reaches.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.files import sha256_file  # noqa: E402
from pipeline.manifests import MANIFEST_COLUMNS  # noqa: E402

PER_SHARD = 256
SR = 44100
CLASSES = ["kick", "snare", "hihat", "clap"]


def write_base(base: Path) -> list[dict[str, str]]:
    """256 one-second clips (a decaying noise burst each) and their manifest rows."""
    rng = np.random.default_rng(0)
    rows = []
    t = np.arange(SR) / SR
    for i in range(PER_SHARD):
        cls = CLASSES[i % len(CLASSES)]
        y = rng.standard_normal(SR) * np.exp(-t * rng.uniform(5, 40)) * 0.5
        rel = f"{cls}/clip-{i:04d}.wav"
        (base / cls).mkdir(parents=True, exist_ok=True)
        sf.write(base / rel, y.astype(np.float32), SR, subtype="FLOAT")
        rows.append({"path": rel, "label": cls, "source": "bench", "source_id": str(i),
                     "license": "CC0", "attribution": "bench", "variant": "original",
                     "sample_rate": str(SR), "num_samples": str(SR), "channels": "1",
                     "sha256": sha256_file(base / rel)})  # fmt: skip
    return rows


def write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        fields = [*MANIFEST_COLUMNS, "channels", "sha256"] + (
            ["shard"] if "shard" in rows[0] else []
        )
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def project(root: Path, params: dict, steps: int, data: str) -> Path:
    """A temp project: params.yaml for a short run without checks or demos."""
    p = json.loads(json.dumps(params))
    p["train"].update(steps=steps, checkpoint_every=10**6, eval_every=0, demo_every=0,
                      demo_steps=1, data=data, shards=str(root / "data/shards"))  # fmt: skip
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False), encoding="utf-8")
    return root


def streamed_set(root: Path, shard_tar: Path, index: dict, rows: list[dict], n: int) -> None:
    """``n`` clips as ``n / 256`` hard links to the one shard, listed in index.json and
    manifest.csv (which the model card reads)."""
    folder = root / "data/shards"
    folder.mkdir(parents=True)
    entries, listed = [], []
    for i in range(n // PER_SHARD):
        name = f"shard-{i:06d}.tar"
        os.link(shard_tar, folder / name)
        entries.append({**index["shards"][0], "name": name})
        listed += [{**row, "shard": name} for row in rows]
    write_manifest(folder / "manifest.csv", listed)
    counts = {c: n // len(CLASSES) for c in CLASSES}
    doc = {**index, "clips": n, "classes": counts, "shards": entries}
    (folder / "index.json").write_text(json.dumps(doc), encoding="utf-8")


def folder_set(root: Path, base: Path, rows: list[dict[str, str]], n: int) -> None:
    """``n`` clips as hard links to the 256, in data/augmented/ with their manifest."""
    out = root / "data/augmented"
    listed = []
    for i in range(n):
        row = rows[i % PER_SHARD]
        rel = f"{row['label']}/{i:07d}.wav"
        (out / row["label"]).mkdir(parents=True, exist_ok=True)
        os.link(base / row["path"], out / rel)
        listed.append({**row, "path": rel})
    write_manifest(out / "manifest.csv", listed)


def measure(root: Path) -> dict[str, float]:
    """Run training in ``root``; its peak RSS (MiB), wall time and the summary's clips/s."""
    code = (
        "import resource, subprocess, sys; "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(r.stdout[-2000:] + r.stderr[-2000:]); "
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1"}
    cmd = [sys.executable, "-c", code, sys.executable, "-m", "training.train", "--no-progress"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    rss, rc = re.search(r"MAXRSS (\d+) (-?\d+)", out).groups()
    if rc != "0":
        raise RuntimeError(f"training failed in {root}:\n{out}")
    rate = re.search(r"([\d.]+) clips/s", out)
    return {"peak_rss_mib": int(rss) / 1024, "wall_s": wall, "clips_per_s": float(rate.group(1))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,20000,200000", help="streamed set sizes")
    ap.add_argument("--folder-sizes", default="2000,20000", help="in-memory set sizes")
    ap.add_argument("--steps", type=int, default=40, help="training steps per run")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    folder_sizes = [int(s) for s in args.folder_sizes.split(",") if s]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        tmp = Path(tmp)
        rows = write_base(tmp / "base/data/augmented")
        write_manifest(tmp / "base/data/augmented/manifest.csv", rows)
        (tmp / "base/params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "pipeline.stages.shard", "data/augmented",
                        "data/shards", "--no-progress"], cwd=tmp / "base", check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        index = json.loads((tmp / "base/data/shards/index.json").read_text(encoding="utf-8"))
        shard_tar = tmp / "base/data/shards/shard-000000.tar"
        for data, n in [("shards", n) for n in sizes] + [("folder", n) for n in folder_sizes]:
            root = project(tmp / f"{data}-{n}", params, args.steps, data)
            if data == "shards":
                streamed_set(root, shard_tar, index, rows, n)
            else:
                folder_set(root, tmp / "base/data/augmented", rows, n)
            r = {"data": data, "clips": n, **measure(root)}
            results.append(r)
            print(f"{data:7s} {n:7d} clips: peak RSS {r['peak_rss_mib']:7.0f} MiB, "
                  f"{r['clips_per_s']:.1f} clips/s, {r['wall_s']:.1f} s", flush=True)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
