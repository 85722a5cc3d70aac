"""training.tracking: DVCLive's files rewound to a resumed run's checkpoint. (The curves, demo
clips and spectrograms a run writes are checked through the command, in test_train.)"""

from __future__ import annotations

import json
from pathlib import Path

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
