"""The trainer's settings that follow from params.yaml: the learning-rate schedule."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from drumkit import REPO

from core import params as core_params
from training.config import lr_factor


def _train(**changes: object) -> core_params.Train:
    return replace(core_params.load(REPO / "params.yaml").train, **changes)


def test_the_rate_warms_up_then_falls_along_a_half_cosine_to_lr_final() -> None:
    f = lr_factor(_train(steps=110, warmup_steps=10, lr_final=0.1))
    rates = [f(s) for s in range(110)]  # LambdaLR's step s sets the rate of optimizer step s + 1
    assert rates[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert rates[59] == pytest.approx(0.55)  # halfway down: 0.1 + 0.9 * 0.5
    assert rates[-1] == pytest.approx(0.1)  # the last step runs at lr_final
    falling = rates[9:]
    assert all(a > b for a, b in itertools.pairwise(falling))


def test_lr_final_one_keeps_the_rate_constant_after_warm_up() -> None:
    f = lr_factor(_train(steps=50, warmup_steps=5, lr_final=1.0))
    assert [f(s) for s in range(4, 50)] == [1.0] * 46


def test_raising_steps_stretches_the_curve() -> None:
    """A resumed run with more train.steps continues on the longer curve (params.yaml says so)."""
    short = lr_factor(_train(steps=100, warmup_steps=0, lr_final=0.0))
    long = lr_factor(_train(steps=200, warmup_steps=0, lr_final=0.0))
    assert short(99) == pytest.approx(0.0)
    assert long(99) == pytest.approx(0.5, abs=0.01)
