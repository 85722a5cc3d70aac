"""Which originals the new sounds are like: each generated sound's nearest original, per class.

    python bench/nearest.py reports data/augmented [--params params.yaml] [--classes kick,snare]

Reads the WAVs an `evaluate` run leaves in ``REPORTS/evaluation/<class>/`` and the originals
of DATASET's manifest, fits the evaluate stage's judge on the same split (``evaluate.seed``,
``evaluate.held_out`` of PARAMS: use the params file that run was judged with), and prints per
class how many originals are the nearest of at least one new sound in the judge's embedding,
how many new sounds each draws, the originals none draws (by name), and how far the new sounds
and the originals lie from the originals' centre. A diversity under 1 says the new sounds are
less spread than real ones; this says which way: towards the middle (the spread under 1x) and
away from which originals (BENCHMARKS.md, "Why the Sonic Pi variety stops near 0.65"). The
counts are lumpy even for a model that meets the variety target: in 32 dimensions a few
originals are the nearest of many points (hubness), so the demo model's 64 new kicks lie nearest
11 of the 32 originals and its hats 5, at a spread of 1.08x and 1.16x. Compare sets with them,
not against every original drawn.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import params as core_params  # noqa: E402
from core.audio_io import Limits, read  # noqa: E402
from core.errors import ConfigError  # noqa: E402
from pipeline.manifests import read_manifest  # noqa: E402
from training.evaluation import prepare  # noqa: E402
from training.judge import features  # noqa: E402
from training.reference import real_set  # noqa: E402


@dataclass
class Nearest:
    """How a generated set falls among the originals of its class."""

    counts: np.ndarray  # [originals] new sounds whose nearest original it is
    spread_new: float  # mean distance of the new sounds from the originals' centre
    spread_real: float  # the same for the originals


def nearest(real: np.ndarray, new: np.ndarray) -> Nearest:
    """Each row of ``new`` assigned to its closest row of ``real`` (Euclidean), and the mean
    distance of both sets from ``real``'s centre."""
    real, new = np.asarray(real, np.float64), np.asarray(new, np.float64)
    d = np.linalg.norm(new[:, None, :] - real[None, :, :], axis=-1)
    counts = np.bincount(d.argmin(axis=1), minlength=len(real))
    centre = real.mean(axis=0)
    return Nearest(
        counts,
        float(np.linalg.norm(new - centre, axis=1).mean()),
        float(np.linalg.norm(real - centre, axis=1).mean()),
    )


def describe(cls: str, n: Nearest, names: list[str]) -> str:
    """One line: how many originals draw new sounds, the counts, the ones none draws."""
    drawn = int((n.counts > 0).sum())
    order = np.argsort(-n.counts, kind="stable")
    counts = ", ".join(str(int(n.counts[i])) for i in order if n.counts[i] > 0)
    missed = sorted(names[i] for i in range(len(names)) if n.counts[i] == 0)
    ratio = n.spread_new / n.spread_real if n.spread_real > 0 else float("nan")
    return (
        f"{cls}: {int(n.counts.sum())} new sounds lie nearest {drawn} of {len(names)} originals "
        f"({counts}); nearest none: {', '.join(missed) or '-'}; from the originals' centre: "
        f"new {n.spread_new:.2f}, originals {n.spread_real:.2f} ({ratio:.2f}x)"
    )


def table(reports: Path, dataset: Path, params_path: Path, classes: list[str] | None) -> list[str]:
    params = core_params.load(params_path)
    names = {r["path"]: r.get("name") or r["path"] for r in read_manifest(dataset / "manifest.csv")}
    kit = SimpleNamespace(
        class_names=list(params.label.classes), sample_rate=params.audio.sample_rate
    )
    real = real_set(dataset, kit, params)  # type: ignore[arg-type]  # reads only these two
    ref = prepare(real, params.evaluate.seed, params.evaluate.copy_percentile)
    sr = real.sample_rate
    rows = []
    for cls in classes or real.classes:
        wavs = sorted((reports / "evaluation" / cls).glob("*.wav"))
        if not wavs:
            continue
        clips = [read(w, Limits.none())[0].mean(axis=0) for w in wavs]
        new = ref.judge.embed(np.stack([features(x, sr) for x in clips]))
        mine = np.array([label == cls for label in real.labels])
        paths = [p for p, m in zip(real.paths, mine, strict=True) if m]
        rows.append(describe(cls, nearest(ref.emb[mine], new), [names.get(p, p) for p in paths]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/nearest.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reports", type=Path, help="an evaluate run's folder (reports)")
    parser.add_argument("dataset", type=Path, help="the set it was judged on (data/augmented)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="its params")
    parser.add_argument("--classes", help="comma-separated classes (default: every class)")
    args = parser.parse_args(argv)
    if not (args.reports / "evaluation").is_dir():
        parser.error(f"{args.reports}: no evaluation/ folder (run training.evaluate first)")
    if not (args.dataset / "manifest.csv").is_file():
        parser.error(f"{args.dataset}: no manifest.csv")
    classes = args.classes.split(",") if args.classes else None
    try:
        rows = table(args.reports, args.dataset, args.params, classes)
    except ConfigError as exc:
        print(f"nearest: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
