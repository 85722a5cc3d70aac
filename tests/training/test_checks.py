"""training.checks: when a check runs, what it measures, and when early stopping stops. (The
checks inside a training run, their curves and resuming them, are in test_train.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from drumkit import CLASSES, write_kit, write_params

from core import params as core_params
from core.errors import ConfigError
from core.params import Params
from training import checks
from training.config import build_model
from training.model import Denoiser


def _fabric() -> SimpleNamespace:
    """What the checks use of Fabric, for one process."""
    return SimpleNamespace(
        is_global_zero=True, device=torch.device("cpu"), broadcast=lambda obj, src=0: obj
    )


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> tuple[Params, Path]:
    root = tmp_path_factory.mktemp("kit")
    write_kit(root, per_class=4)
    write_params(root, eval_per_class=2, eval_steps=3)
    return core_params.load(root / "params.yaml"), root / "data" / "augmented"


@pytest.fixture(scope="module")
def model(kit: tuple[Params, Path]) -> Denoiser:
    torch.manual_seed(0)
    return build_model(kit[0], CLASSES)


def test_checks_run_every_eval_every_steps_and_at_the_end(typed: Params) -> None:
    train = replace(typed.train, eval_every=4, steps=10)
    assert [s for s in range(1, 11) if checks.due(train, s)] == [4, 8, 10]
    off = replace(train, eval_every=0)
    assert not any(checks.due(off, s) for s in range(1, 11))


def test_early_stop_without_checks_is_refused(typed: Params) -> None:
    checks.check_settings(replace(typed.train, early_stop="", eval_every=0))
    checks.check_settings(replace(typed.train, early_stop="kernel", eval_every=5))
    with pytest.raises(ConfigError, match="train.early_stop frechet needs quality checks"):
        checks.check_settings(replace(typed.train, early_stop="frechet", eval_every=0))


def test_early_stop_waits_patience_checks_without_improvement() -> None:
    acc = checks.EarlyStop("accuracy", patience=2)
    stops = [acc.update(s, {"accuracy": v}) for s, v in [(1, 0.5), (2, 0.75), (3, 0.75), (4, 0.7)]]
    assert stops == [False, False, False, True]
    assert acc.reason() == (
        "stopped early: eval/accuracy has not improved for 2 checks (best 0.75 at step 2)"
    )
    # Distances: lower is better; a check without the figure counts neither way.
    fd = checks.EarlyStop("frechet", patience=2)
    for step, value in [(1, 9.0), (2, 10.0), (3, None), (4, 8.0), (5, 8.0)]:
        assert not fd.update(step, {} if value is None else {"frechet": value})
    assert (fd.best, fd.best_step, fd.since) == (8.0, 4, 1)
    assert fd.update(6, {"frechet": 8.5}) and fd.reason().endswith("(best 8 at step 4)")
    off = checks.EarlyStop("", patience=1)
    assert not any(off.update(s, {"accuracy": 0.1}) for s in range(5)) and off.reason() == ""


def test_a_resumed_run_replays_its_checks_under_the_current_settings(typed: Params) -> None:
    history = [{"step": s, "kernel": v} for s, v in [(2, 0.3), (4, 0.2), (6, 0.25), (8, 0.4)]]
    train = replace(typed.train, eval_every=2, early_stop="kernel", early_stop_patience=2)
    stopped = checks.Checks.resume(train, True, None, history)
    assert stopped.early.stopped and stopped.early.best_step == 4
    assert stopped.history == history
    patient = checks.Checks.resume(replace(train, early_stop_patience=3), True, None, history)
    assert not patient.early.stopped and patient.early.since == 2


def test_a_check_is_the_same_at_every_call_and_draws_nothing_from_training(
    kit: tuple[Params, Path], model: Denoiser
) -> None:
    params, dataset = kit
    run, line = checks.start(_fabric(), params, dataset / "manifest.csv", model, [])
    assert run.on and run.checker is not None
    assert "quality checks every" in line and "against 16 originals" in line
    s = run.checker.settings  # sampled as the sample stage samples (params.yaml's sample)
    assert (s.grid_shifts, s.grid_below) == (params.sample.grid_shifts, params.sample.grid_below)
    assert (s.length_stretch, s.length_below) == (
        params.sample.length_stretch,
        params.sample.length_below,
    )
    torch.manual_seed(5)
    np.random.seed(5)
    before_torch, before_np = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    first = checks.measure(run.checker, model)
    assert torch.equal(torch.random.get_rng_state(), before_torch)
    assert np.array_equal(np.random.get_state()[1], before_np)
    assert checks.measure(run.checker, model) == first
    assert {"accuracy", "ceiling", "frechet", "frechet_floor", "kernel", "closest_ncc"} <= set(
        first
    )
    assert 0 <= first["accuracy"] <= 1 and first["frechet_floor"] > 0
    assert -1 <= first["closest_ncc"] <= 1 and -1 <= first["closest_mel"] <= 1


def test_a_set_too_small_to_judge_turns_the_checks_off(
    tmp_path: Path, model: Denoiser, one_thread: None
) -> None:
    write_kit(tmp_path, per_class=1)
    write_params(tmp_path, eval_every=2)
    params = core_params.load(tmp_path / "params.yaml")
    dataset = tmp_path / "data" / "augmented"
    run, line = checks.start(_fabric(), params, dataset / "manifest.csv", model, [])
    assert not run.on and run.checker is None
    assert line.startswith("quality checks off: ") and "originals each to be judged" in line
    stopping = replace(params, train=replace(params.train, early_stop="accuracy"))
    with pytest.raises(
        ConfigError, match="train.early_stop accuracy: .*originals each to be judged"
    ):
        checks.start(_fabric(), stopping, dataset / "manifest.csv", model, [])
