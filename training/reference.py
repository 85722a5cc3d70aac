"""The judge's reference read from a dataset: its originals of a model's classes, with the
held-out share drawn (``evaluate.held_out``, ``evaluate.seed``).

Shared by the ``evaluate`` stage and training's quality checks, so both judge against the same
sounds; the judging itself (no files) is ``training.evaluation``.
"""

from __future__ import annotations

from pathlib import Path

from core.audio_io import Limits, read
from core.errors import ConfigError, Reject
from core.params import Params
from pipeline.manifests import read_manifest
from training.evaluation import RealSet, group_of, split
from training.model import Denoiser


def real_set(dataset: Path, model: Denoiser, params: Params) -> RealSet:
    """The dataset's originals of the model's classes, mono, at the model's format."""
    rows = [
        r
        for r in read_manifest(dataset / "manifest.csv")
        if r.get("variant", "original") == "original" and r.get("label") in model.class_names
    ]
    clips, kept = [], []
    for row in rows:
        try:
            x, sr = read(dataset / row["path"], Limits.none())
        except Reject as rej:
            raise ConfigError(f"{dataset / row['path']}: {rej}") from None
        if sr != model.sample_rate:
            raise ConfigError(
                f"{dataset / row['path']} is at {sr} Hz, the model at {model.sample_rate} Hz: "
                "evaluate the model on the set it was trained on"
            )
        clips.append(x.mean(axis=0))
        kept.append(row)
    labels = [r["label"] for r in kept]
    missing = [c for c in model.class_names if labels.count(c) < 3]
    if missing:
        raise ConfigError(
            f"{dataset}: {', '.join(missing)} need at least 3 originals each to be judged "
            "(2 to fit the judge on, 1 it never sees)"
        )
    groups = [group_of(r) for r in kept]
    real = RealSet(
        list(model.class_names), model.sample_rate, clips, labels, groups, [r["path"] for r in kept]
    )
    real.held = split(labels, groups, params.evaluate.held_out, params.evaluate.seed)
    return real
