"""A small training set on disk, as the pipeline's ``augment`` stage would leave it.

The clips come from the demo kit's synthesizer (pipeline/sources/demo.py) at a low rate and a
short length, so training tests run in seconds; the project is laid out in a temp folder
(params.yaml, data/augmented/) and ``python -m training.train`` runs there.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

from pipeline.manifests import MANIFEST_COLUMNS
from pipeline.sources import demo

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["kick", "snare", "hihat", "clap"]
SAMPLE_RATE = 8000
LENGTH = 1024  # samples: 0.128 s
# A preset far smaller than `tiny`: these tests check the trainer, not the network.
TEST_PRESET = {
    "io_channels": 1,
    "depth": 4,
    "channels": [16, 16, 32, 32],
    "n_attn_layers": 0,
    "kernel_size": 5,
    "class_dim": 16,
}


def clip(cls: str, index: int, length: int = LENGTH, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One demo-kit sound, mono, no leading silence, cut or padded to ``length``, peak 0.9."""
    spec = demo.plan(index + 1, seed=7, classes=(cls,))[index]
    spec = dataclasses.replace(
        spec, sample_rate=sr, channels=1, length=length / sr, lead=0.0, tail=0.0, dc=0.0
    )
    y = demo.synthesize(spec)[:, :length]
    y = np.pad(y, ((0, 0), (0, length - y.shape[1])))
    return (0.9 * y / np.abs(y).max()).astype(np.float32)


def write_kit(root: Path, per_class: int = 4, length: int = LENGTH, sr: int = SAMPLE_RATE) -> Path:
    """``root/data/augmented/<class>/*.wav`` plus its manifest; returns the manifest path."""
    base = root / "data" / "augmented"
    rows = []
    for cls in CLASSES:
        for i in range(per_class):
            rel = f"{cls}/{cls}_{i:03d}.wav"
            (base / cls).mkdir(parents=True, exist_ok=True)
            sf.write(base / rel, clip(cls, i, length, sr).T, sr, subtype="FLOAT")
            rows.append(
                {
                    "path": rel,
                    "label": cls,
                    "source": "demo",
                    "source_id": f"{cls}_{i:03d}",
                    "license": demo.LICENSE,
                    "attribution": "test",
                    "variant": "original",
                    "sample_rate": str(sr),
                    "num_samples": str(length),
                }
            )
    manifest = base / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def write_params(root: Path, **train: Any) -> dict[str, Any]:
    """The repo's params.yaml with the test preset, the kit's clip format and ``train`` changes."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["audio"].update(sample_rate=SAMPLE_RATE, duration=LENGTH / SAMPLE_RATE, channels=1)
    params["label"]["classes"] = list(CLASSES)
    params.setdefault("model", {}).setdefault("presets", {})["test"] = dict(TEST_PRESET)
    params["model"]["preset"] = "test"
    params["train"].update(
        {
            "steps": 6,
            "batch_size": 4,
            "grad_accum": 1,
            "warmup_steps": 2,
            "lr": 1e-3,
            "devices": 1,
            "accelerator": "cpu",
            "checkpoint_every": 2,
            "demo_every": 0,
            "demo_steps": 4,
            "load_workers": 2,
            "init_checkpoint": "",
            **train,
        }
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return params


def env() -> dict[str, str]:
    """The environment of a training subprocess: the repo importable, one thread per process
    (two ranks share this machine's cores), no DVC analytics."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "DVC_NO_ANALYTICS": "1",
    }


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "training.train", "--no-progress", *args]


def run_train(root: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_cmd(*args),
        cwd=root,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def kill_after_first_checkpoint(root: Path, timeout: float = 180) -> None:
    """Start training in ``root`` and SIGKILL it as soon as last.pt appears (a lost machine)."""
    last = root / "models/checkpoints/last.pt"
    proc = subprocess.Popen(
        train_cmd(), cwd=root, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (root / "models/model.pt").exists(), "the run ended before it could be killed"


def kill_and_resume(root: Path) -> tuple[int, subprocess.CompletedProcess]:
    """Kill training in ``root`` after its first checkpoint and run it again: the step it was
    killed at, and the second run, which succeeded and said it resumed from there."""
    from training.checkpoints import load_checkpoint

    kill_after_first_checkpoint(root)
    killed_at = int(load_checkpoint(root / "models/checkpoints/last.pt")["step"])
    out = run_train(root)
    assert out.returncode == 0, out.stdout
    assert f"resuming from models/checkpoints/last.pt at step {killed_at}" in out.stdout
    return killed_at, out
