"""The dataset report's ATTRIBUTION.md: one bullet per work, and no private paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from chain import run

from pipeline import report
from pipeline.stages import augment, collect, label, normalize, pad, trim

REPO = Path(__file__).resolve().parents[2]


def test_attribution_lines_stay_one_bullet_each() -> None:
    rows = [
        {"source": "local", "source_id": "a", "license": "unknown",
         "attribution": "Kicks/kick\nroom.wav (local file)"},
        {"source": "local", "source_id": "b", "license": "unknown",
         "attribution": "Kicks/tab\there\r.wav (local file)"},
    ]  # fmt: skip
    text = report.attribution_markdown(rows)
    bullets = [line for line in text.splitlines() if line.startswith("- ")]
    assert bullets == ["- Kicks/kick room.wav (local file)", "- Kicks/tab here .wav (local file)"]


def test_local_files_are_credited_by_their_path_inside_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = tmp_path / "home" / "alice" / "Private Projects" / "Drums"
    for i, name in enumerate(["kick\nroom.wav", "Kick 2.wav"]):
        y = np.sin(2 * np.pi * 60 * np.arange(8000) / 44100) * np.exp(-np.arange(8000) / 2000)
        (library / "Kicks").mkdir(parents=True, exist_ok=True)
        sf.write(library / "Kicks" / name, (0.5 + 0.1 * i) * y, 44100)
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["collect"].update(sources=["local"], local_dirs=[str(library)])
    params["runner"]["workers"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    for stage in (collect, normalize, trim, pad, label, augment):
        assert run(stage, "--no-progress") == 0
    text = (repo / "data" / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "alice" not in text and "Private Projects" not in text
    bullets = sorted(line for line in text.splitlines() if line.startswith("- "))
    assert bullets == ["- Kicks/Kick 2.wav (local file)", "- Kicks/kick room.wav (local file)"]
