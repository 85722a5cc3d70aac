"""bench/nearest.py says which originals a generated set is like and how spread it is."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from bench import nearest
from pipeline.manifests import MANIFEST_COLUMNS

REPO = Path(__file__).resolve().parents[2]
SR = 8000
CLASSES = ["kick", "snare", "hihat", "clap"]
PER_CLASS = 5


def test_new_sounds_bunched_near_two_originals_draw_only_those_and_spread_less() -> None:
    rng = np.random.default_rng(0)
    real = np.eye(5) * 10.0
    new = np.concatenate(
        [real[0] + rng.normal(0, 0.5, (6, 5)), real[1] + rng.normal(0, 0.5, (4, 5))]
    )
    n = nearest.nearest(real, new)
    assert n.counts.tolist() == [6, 4, 0, 0, 0]
    assert n.spread_new > n.spread_real * 0.9  # the two are as far out as any original
    middle = nearest.nearest(real, real.mean(axis=0) + rng.normal(0, 0.1, (10, 5)))
    assert middle.spread_new < 0.1 * middle.spread_real
    line = nearest.describe("kick", n, ["a", "b", "c", "d", "e"])
    assert line.startswith(
        "kick: 10 new sounds lie nearest 2 of 5 originals (6, 4); nearest none: c, d, e;"
    )


def _hit(cls: str, i: int) -> np.ndarray:
    """A short decaying hit whose colour depends on the class and moves with ``i``."""
    rng = np.random.default_rng([CLASSES.index(cls), i])
    t = np.arange(SR // 2) / SR
    if cls == "kick":
        x = np.sin(2 * np.pi * (45 + 12 * i) * t) * np.exp(-t * (8 + 3 * i))
    elif cls == "snare":
        x = (rng.standard_normal(len(t)) + np.sin(2 * np.pi * (180 + 25 * i) * t)) * np.exp(-t * 20)
    elif cls == "hihat":
        x = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * (40 + 10 * i))
    else:  # three bursts and a tail
        gaps = sum(
            np.exp(-np.maximum(t - k * (0.008 + 0.002 * i), 0) * 300) * (t >= k * 0.01)
            for k in range(3)
        )
        x = rng.standard_normal(len(t)) * (gaps + 0.2 * np.exp(-t * 15))
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


def _project(root: Path) -> tuple[Path, Path]:
    """A dataset of PER_CLASS originals per class and its params file (8 kHz)."""
    data = root / "data"
    rows = []
    for cls in CLASSES:
        (data / cls).mkdir(parents=True)
        for i in range(PER_CLASS):
            rel = f"{cls}/{cls}-{i}.wav"
            sf.write(data / rel, _hit(cls, i), SR, subtype="FLOAT")
            rows.append(
                {
                    "path": rel,
                    "label": cls,
                    "source": "local",
                    "source_id": rel,
                    "variant": "original",
                    "sample_rate": SR,
                    "num_samples": SR // 2,
                    "name": f"{cls}_{i}.flac",
                }  # fmt: skip
            )
    with (data / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*MANIFEST_COLUMNS, "name"])  # as collect writes it
        writer.writeheader()
        writer.writerows(rows)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["audio"].update(sample_rate=SR, duration=0.5)
    params["label"]["classes"] = list(CLASSES)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return data, root / "params.yaml"


def test_the_originals_a_set_copies_are_the_ones_it_draws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, params = _project(tmp_path)
    reports = tmp_path / "reports"
    for cls, picks in (("kick", [0, 0, 1, 1]), ("snare", list(range(PER_CLASS)))):
        (reports / "evaluation" / cls).mkdir(parents=True)
        for j, i in enumerate(picks):
            shutil.copy(data / cls / f"{cls}-{i}.wav", reports / "evaluation" / cls / f"{j}.wav")
    assert nearest.main([str(reports), str(data), "--params", str(params)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # no hats or claps were generated
    kick, snare = lines
    assert kick.startswith("kick: 4 new sounds lie nearest 2 of 5 originals (2, 2); nearest none: ")
    assert "kick_2.flac, kick_3.flac, kick_4.flac;" in kick
    assert snare.startswith(
        "snare: 5 new sounds lie nearest 5 of 5 originals (1, 1, 1, 1, 1); nearest none: -;"
    )
    assert "originals" in snare and "(1.00x)" in snare  # the originals themselves: the same spread


def test_a_missing_folder_or_a_bad_params_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, params = _project(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        nearest.main([str(tmp_path / "nowhere"), str(data)])
    assert exit_.value.code == 2
    capsys.readouterr()
    (tmp_path / "reports" / "evaluation" / "kick").mkdir(parents=True)
    bad = tmp_path / "bad.yaml"
    bad.write_text(params.read_text(encoding="utf-8").replace("held_out: 0.3", "held_out: 3"))
    assert nearest.main([str(tmp_path / "reports"), str(data), "--params", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "held_out" in err[0]
