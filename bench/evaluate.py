"""Benchmark: how long the evaluation takes per 100 generated sounds on the CPU.

    python bench/evaluate.py [--sounds 100] [--dataset data/augmented]

Times the parts of the `evaluate` stage that do not depend on the model, on the dataset the
pipeline made: reading and preparing the reference (features of every original, fitting the
judge, near-copy thresholds) once, then judging ``--sounds`` sounds (features, embeddings,
distances with their floors over ``evaluate.rounds`` splits, envelopes, the closest training
sound). The sounds are the dataset's own variants (what they are does not change the cost).
Sampling them is the model's cost, measured by bench/sample.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import params as core_params  # noqa: E402
from core.audio_io import Limits, read  # noqa: E402
from pipeline.manifests import read_manifest  # noqa: E402
from training.evaluation import RealSet, group_of, prepare, split  # noqa: E402
from training.figures import judge_generated  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sounds", type=int, default=100)
    ap.add_argument("--dataset", type=Path, default=ROOT / "data/augmented")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    args = ap.parse_args()
    params = core_params.load(args.params)
    ev = params.evaluate
    rows = read_manifest(args.dataset / "manifest.csv")
    classes = params.label.classes

    t0 = time.perf_counter()
    originals = [r for r in rows if r["variant"] == "original"]
    clips = [read(args.dataset / r["path"], Limits.none())[0].mean(axis=0) for r in originals]
    sr = int(originals[0]["sample_rate"])
    labels = [r["label"] for r in originals]
    groups = [group_of(r) for r in originals]
    real = RealSet(list(classes), sr, clips, labels, groups, [r["path"] for r in originals])
    real.held = split(labels, groups, ev.held_out, ev.seed)
    read_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = prepare(real, ev.seed, ev.copy_percentile)
    prepare_s = time.perf_counter() - t0

    variants = [r for r in rows if r["variant"] != "original"][: args.sounds]
    generated: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    for r in variants:
        generated[r["label"]].append(read(args.dataset / r["path"], Limits.none())[0].mean(0))
    t0 = time.perf_counter()
    figures = judge_generated(ref, generated, len(clips[0]), ev.rounds, ev.seed)
    judge_s = time.perf_counter() - t0
    n = figures["overall"]["n"]
    print(
        json.dumps(
            {
                "originals": len(clips),
                "sounds_judged": n,
                "rounds": ev.rounds,
                "read_originals_s": round(read_s, 2),
                "prepare_reference_s": round(prepare_s, 2),
                "judge_s": round(judge_s, 2),
                "judge_s_per_100_sounds": round(judge_s * 100 / n, 2),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
