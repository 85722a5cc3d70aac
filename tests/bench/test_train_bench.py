"""bench/train.py measures one configuration through the trainer's own step."""

from __future__ import annotations

import math

import pytest

from bench import train as bench_train


@pytest.mark.parametrize("preset", ["fold", "tiny"])
def test_one_configuration_runs_the_trainers_step(preset: str) -> None:
    # fold is conditioned on length: its batch must carry the lengths the trainer measures
    job = {
        "preset": preset,
        "batch": 2,
        "length": 8192,
        "channels": 1,
        "device": "cpu",
        "precision": "32-true",
        "compile": False,
        "steps": 1,
        "warmup": 0,
    }
    out = bench_train.measure(job)
    assert out["preset"] == preset
    assert math.isfinite(out["loss"]) and out["loss"] > 0
    assert out["samples_per_s"] > 0 and out["gflop_per_step"] > 0
