"""bench/tone.py finds a line at the patch rate where there is one, and draws the sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench import tone

SR = 44100


def _kit(root: Path, line: float) -> Path:
    """Two decaying noise hits per class, with a tone at SR / 32 of relative level ``line``."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    for cls in ("hihat", "kick"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            hit = rng.standard_normal(SR) * np.exp(-t * 20)
            x = hit + line * np.sin(2 * np.pi * SR / 32 * t) * np.exp(-t * 5)
            sf.write(root / cls / f"{cls}-{i + 1:02d}.wav", 0.5 * x / np.abs(x).max(), SR)
    return root


def test_the_tone_stands_out_only_where_it_is_and_the_picture_is_drawn(tmp_path: Path) -> None:
    clean, rung = _kit(tmp_path / "clean", 0.0), _kit(tmp_path / "rung", 0.05)
    rows = tone.table({"clean": clean, "rung": rung}, ["hihat"], 32)
    first = {row.split(":")[0]: float(row.split(") ")[1].split(" /")[0]) for row in rows}
    assert first["clean"] < 10.0 and first["rung"] > first["clean"] + 10.0, rows  # noise: ~6 dB
    out = tmp_path / "tone.png"
    assert tone.main([str(clean), str(rung), "--labels", "a,b", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000


def test_a_missing_folder_or_a_label_short_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for argv in (["nowhere"], [str(tmp_path), "--labels", "a,b"]):
        with pytest.raises(SystemExit) as exit_:
            tone.main(argv)
        assert exit_.value.code == 2
