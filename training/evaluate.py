"""How good the model's sounds are: ``python -m training.evaluate CHECKPOINT DATASET REPORTS``.

The DVC ``evaluate`` stage. It samples ``evaluate.n_per_class`` new sounds of every class the
way ``training.sample`` does (``sample.sampler``, ``steps``, ``guidance``, ``peak_db``; noise
from ``evaluate.seed``), fits a small drum classifier on the dataset's originals (a held-out
share of them, whole packs where known, is never seen by it), and measures the generated set
against the real one, every figure beside its real-data floor: class accuracy against the
classifier's own held-out accuracy, Fréchet and kernel distance against two real halves,
diversity, attack/decay/brightness against the data's medians, near-copies of training
sounds, and invalid files (NaN, silence, clipping, DC, a click at the start, length).

Writes
  REPORTS/evaluation.json          the figures (DVC metrics: `dvc metrics diff`, `dvc exp show`)
  REPORTS/evaluation_classes.csv   one row per class (DVC plots)
  REPORTS/evaluation/              the judged sounds, their pictures and the page's data
  REPORTS/index.html               the listening page: open it from disk, no server needed
  MODEL_CARD.md beside CHECKPOINT  the model card with this evaluation in it
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core import params as core_params
from core.cli import plural, show_progress
from core.errors import ConfigError
from core.files import replacing, sha256_file, write_text
from core.params import Params
from pipeline.audio import db_to_amp, peak_to
from training.checkpoints import load_model
from training.evaluation import prepare
from training.figures import judge_generated
from training.model import Denoiser
from training.reference import real_set
from training.sample_inputs import UsageError, finishing, settings
from training.sampling import generate, make_noise

CLASS_COLUMNS = [
    "class", "accuracy", "ceiling", "frechet", "frechet_floor", "frechet_ratio", "kernel",
    "kernel_floor", "diversity_ratio", "diversity_seen", "decay_db", "decay_db_real",
    "decay_gap_db", "ring_ms", "ring_ms_real", "attack_ms", "attack_ms_real", "centroid_hz",
    "centroid_hz_real", "tone_db", "tone_floor_db", "tone_hz", "near_copies", "invalid",
]  # fmt: skip


def generate_set(model: Denoiser, params: Params, progress: bool) -> dict[str, np.ndarray]:
    """``evaluate.n_per_class`` sounds of every class, as ``training.sample`` makes them
    (peak-normalized to ``sample.peak_db``), the same noise for every class."""
    ns = argparse.Namespace(
        sampler=None,
        device=None,
        steps=None,
        guidance=None,
        seed=params.evaluate.seed,
        batch_size=None,
        no_progress=not progress,
    )
    s = replace(settings(ns, params.sample, "generate"), finish=finishing(params))
    model = model.to(s.device)
    n = params.evaluate.n_per_class
    noise = make_noise(n, (model.data_channels, model.length), s.seed)
    target = db_to_amp(params.sample.peak_db)
    return {
        cls: peak_to(generate(model, noise, i, s).numpy(), target)
        for i, cls in enumerate(model.class_names)
    }


def summary(figures: dict[str, Any], settings_used: dict[str, Any]) -> dict[str, Any]:
    """evaluation.json: the overall and per-class figures (sounds are in the page's data)."""
    return {
        "overall": _round(figures["overall"]),
        "classes": {c: _round(f) for c, f in figures["classes"].items()},
        "settings": settings_used,
    }


def _round(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if not np.isfinite(obj) else round(obj, 4)
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round(v) for v in obj]
    return obj


def write_classes(path: Path, figures: dict[str, Any]) -> None:
    with replacing(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CLASS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for cls, f in figures["classes"].items():
            writer.writerow({"class": cls, **{k: _round(v) for k, v in f.items()}})


def run(args: argparse.Namespace) -> str:
    started = time.perf_counter()
    params = core_params.load(args.params)
    if not args.checkpoint.is_file():
        raise ConfigError(f"{args.checkpoint}: no such checkpoint (run `dvc repro train` first)")
    try:
        model = load_model(args.checkpoint)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not model.class_names:
        raise ConfigError(f"{args.checkpoint} is unconditional: there are no classes to judge")
    real = real_set(args.dataset, model, params)
    progress = show_progress(not args.no_progress)
    generated = generate_set(model, params, progress)
    ref = prepare(real, params.evaluate.seed, params.evaluate.copy_percentile)
    mono = {c: [x.mean(axis=0) for x in clips] for c, clips in generated.items()}
    figures = judge_generated(ref, mono, model.length, params.evaluate.rounds, params.evaluate.seed)
    used = {
        "checkpoint": str(args.checkpoint),
        "checkpoint_sha256": sha256_file(args.checkpoint),
        "n_per_class": params.evaluate.n_per_class,
        "sampler": params.sample.sampler,
        "steps": params.sample.steps,
        "rho": params.sample.rho,
        "guidance": params.sample.guidance,
        "grid_shifts": params.sample.grid_shifts,
        "grid_below": params.sample.grid_below,
        "length_stretch": params.sample.length_stretch,
        "length_below": params.sample.length_below,
        "held_out": int(real.held.sum()),
        "originals": len(real.clips),
        "copy_thresholds": _round(ref.thresholds),
        "confusion": ref.confusion,
    }
    out: Path = args.reports
    write_text(out / "evaluation.json", json.dumps(summary(figures, used), indent=2) + "\n")
    write_classes(out / "evaluation_classes.csv", figures)
    from training import page

    page.write(out, args.dataset, ref, generated, figures, used, args)
    from training import card

    card.write(args.checkpoint, params, args.dataset, summary(figures, used))
    o = figures["overall"]
    took = time.perf_counter() - started
    return (
        f"evaluate: {plural(o['n'], 'sound')} judged in {took:.0f} s: accuracy {o['accuracy']:.0%} "
        f"(ceiling {o['ceiling']:.0%}), Fréchet {o['frechet']:.2f} (real floor "
        f"{o['frechet_floor']:.2f}), diversity {o['diversity_ratio'] or 0:.2f} of real "
        f"(the judge's own originals: {o['diversity_seen'] or 0:.2f}), "
        f"strongest tone {o['tone_db_max'] or 0:.1f} dB ({o['tone_class']}, "
        f"{o['tone_hz'] or 0:.0f} Hz; real halves up to {o['tone_floor_db_max'] or 0:.1f}), "
        f"{plural(o['near_copies'], 'near-copy', 'near-copies')}, "
        f"{o['invalid']} invalid; {out / 'index.html'}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", type=Path, help="the model (models/model.pt)")
    parser.add_argument("dataset", type=Path, help="the training set (data/augmented)")
    parser.add_argument("reports", type=Path, help="where the figures and the page go (reports)")
    parser.add_argument("--params", default="params.yaml", help="parameters file (params.yaml)")
    parser.add_argument(
        "--attribution", type=Path, help="the credits to show on the page (data/ATTRIBUTION.md)"
    )
    parser.add_argument("--live", type=Path, help="DVCLive's folder, for the curves (dvclive)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(run(args))
    except (ConfigError, UsageError, FileNotFoundError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evaluate: interrupted; run it again", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
