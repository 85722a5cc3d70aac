"""bench/train.py measures one configuration through the trainer's own step."""

from __future__ import annotations

import argparse
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


def test_variants_name_a_precision_and_whether_to_compile() -> None:
    assert bench_train.parse_variants("bf16-mixed+compile,32-true") == [
        ("bf16-mixed", True),
        ("32-true", False),
    ]


@pytest.mark.parametrize("text", ["bf16+compile", "32-true+jit", "auto"])
def test_a_variant_the_trainer_would_not_take_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=text.split("+")[0]):
        bench_train.parse_variants(text)
