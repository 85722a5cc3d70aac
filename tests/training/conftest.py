"""Fixtures of the training tests: a trained checkpoint of the kit's small network, and an
original Dance Diffusion one (the sampling tests, of the command and of the algorithms)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from drumkit import CLASSES, LENGTH, SAMPLE_RATE, TEST_PRESET, clip
from test_checkpoints import write_dd_checkpoint

from training.checkpoints import load_model, save_checkpoint
from training.diffusion import make_ema, training_loss
from training.model import Denoiser, UNetConfig
from training.resume import checkpoint_state

TRAIN_STEPS = 16


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One thread: the suite shares two cores, and tiny convolutions gain nothing from two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _trained_model() -> Denoiser:
    """The test network after a few Adam steps on the kit (labels dropped at 20 %, as train
    does): weights that denoise somewhat and class embeddings that change the output."""
    torch.manual_seed(0)
    config = UNetConfig.from_preset({"name": "test", **TEST_PRESET})
    model = Denoiser(config, CLASSES, SAMPLE_RATE, LENGTH, 1)
    # Two clips a class, their first half (the attack): half the cost of a step.
    clips = torch.from_numpy(np.stack([clip(c, i) for c in CLASSES for i in range(2)]))
    clips = clips[..., : LENGTH // 2]
    labels = torch.arange(len(CLASSES)).repeat_interleave(2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(TRAIN_STEPS):
        loss = training_loss(model, clips, labels, 0.2, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """models/model.pt as the trainer writes it (its own ``checkpoint_state``)."""
    model = _trained_model()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    identity = {"train": {"steps": TRAIN_STEPS, "lr": 3e-3}}
    save_checkpoint(path, **checkpoint_state(model, make_ema(model, 0.99), identity, TRAIN_STEPS))
    return path


@pytest.fixture(scope="module")
def dd_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dd") / "glitch-small.ckpt"
    write_dd_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def model(ckpt: Path) -> Denoiser:
    return load_model(ckpt)
