"""training.tracking: DVCLive's files rewound to a resumed run's checkpoint. (The curves, demo
clips and spectrograms a run writes are checked through the command, in test_train.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.tracking import trim_history


def test_rewinding_dvclive_to_the_checkpoint_repairs_what_a_kill_left(tmp_path: Path) -> None:
    live = tmp_path / "dvclive"
    curves = live / "plots/metrics/train"
    curves.mkdir(parents=True)
    rows = "".join(f"{s}\t{s / 10}\n" for s in range(1, 7))
    # Killed mid-row after step 6, and while DVCLive rewrote metrics.json in place.
    (curves / "loss.tsv").write_text(f"step\tloss\n{rows}7\t0.", encoding="utf-8")
    (curves / "lr.tsv").write_text("step\tlr\n1\t0.5\n2\t1.0\n3", encoding="utf-8")
    (live / "metrics.json").write_text('{"train": {"loss": 0.6', encoding="utf-8")
    for step in ("000002", "000006"):
        (live / "plots/images/demo").mkdir(parents=True, exist_ok=True)
        (live / "plots/images/demo" / f"{step}.png").write_bytes(b"png")
    trim_history(live, 4)

    assert (curves / "loss.tsv").read_text().splitlines() == [
        "step\tloss",
        "1\t0.1",
        "2\t0.2",
        "3\t0.3",
        "4\t0.4",
    ]
    assert (curves / "lr.tsv").read_text().splitlines() == ["step\tlr", "1\t0.5", "2\t1.0"]
    assert json.loads((live / "metrics.json").read_text()) == {
        "train": {"loss": 0.4, "lr": 1.0},
        "step": 4,
    }
    assert sorted(p.name for p in (live / "plots/images/demo").iterdir()) == ["000002.png"]


def test_rewinding_keeps_the_quality_check_curves_up_to_the_checkpoint(tmp_path: Path) -> None:
    """The checks log every few steps (eval/*.tsv): rows after the checkpoint go, the ones
    before stay, and metrics.json gets their last values back."""
    live = tmp_path / "dvclive"
    evals = live / "plots/metrics/eval"
    evals.mkdir(parents=True)
    (evals / "accuracy.tsv").write_text(
        "timestamp\tstep\taccuracy\n1\t2\t0.25\n2\t4\t0.5\n3\t6\t0.75\n", encoding="utf-8"
    )
    (evals / "frechet.tsv").write_text("step\tfrechet\n2\t9.0\n4\t8.5\n6\t", encoding="utf-8")
    (live / "metrics.json").write_text("{}", encoding="utf-8")
    trim_history(live, 5)

    assert (evals / "accuracy.tsv").read_text().splitlines() == [
        "timestamp\tstep\taccuracy",
        "1\t2\t0.25",
        "2\t4\t0.5",
    ]
    assert (evals / "frechet.tsv").read_text().splitlines() == ["step\tfrechet", "2\t9.0", "4\t8.5"]
    assert json.loads((live / "metrics.json").read_text()) == {
        "eval": {"accuracy": 0.5, "frechet": 8.5},
        "step": 5,
    }


def test_rewinding_one_dvclive_folder_leaves_every_other_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewinding ``live`` removes its own later demo clips, never those of the dvclive/ in the
    working directory (a user's real run)."""
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "dvclive" / "demo" / "000006"
    mine.mkdir(parents=True)
    live = tmp_path / "elsewhere" / "dvclive"
    (live / "demo" / "000006").mkdir(parents=True)
    (live / "demo" / "000002").mkdir(parents=True)
    trim_history(live, 4)
    assert mine.is_dir()
    assert sorted(p.name for p in (live / "demo").iterdir()) == ["000002"]
