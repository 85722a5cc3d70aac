"""load_model on original Dance Diffusion checkpoints and on this project's; strict checks;
atomic saves."""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import dd_reference
import pytest
import torch

from training.checkpoints import (
    FORMAT,
    check_state_dict,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from training.diffusion import make_ema
from training.model import Denoiser, UNetConfig, valid_length

# A Dance Diffusion network at reduced depth: attention at levels 3-5, as n_attn_layers=1 gives.
DD_SMALL = {"io_channels": 2, "depth": 5, "channels": [32, 32, 32, 64, 64], "n_attn_layers": 1}
PROJECT = {**DD_SMALL, "name": "small", "kernel_size": 5, "class_dim": 8}
CLASSES = ["kick", "snare", "hihat", "clap"]


def random_weights(seed: int) -> dict[str, torch.Tensor]:
    """Weights in the original layout; the resampling kernels hold the original's values."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in dd_reference.layout(**DD_SMALL).items():
        if key.endswith(".kernel"):
            scale = 2 if key.endswith(".main.14.kernel") else 1
            out[key] = torch.tensor(dd_reference.CUBIC) * scale
        else:
            out[key] = torch.randn(shape, generator=g) * 0.2
    return out


def write_dd_checkpoint(path: Path, **extra: object) -> dict[str, torch.Tensor]:
    """A Lightning checkpoint as sample-generator's train_uncond.py leaves it; returns the EMA."""
    live, ema = random_weights(1), random_weights(2)
    state = {f"diffusion.{k}": v for k, v in live.items()}
    state.update({f"diffusion_ema.{k}": v for k, v in ema.items()})
    torch.save(
        {
            "epoch": 12,
            "global_step": 440_000,
            "pytorch-lightning_version": "1.7.2",
            "state_dict": state,
            "loops": {"fit_loop": {"state_dict": {}}},
            "callbacks": {
                "ModelCheckpoint{'monitor': None}": {"kth_value": torch.tensor(math.inf)}
            },
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 4e-5, "params": [0]}]}],
            "lr_schedulers": [],
            "native_amp_scaling_state": {"scale": torch.tensor(65536.0), "growth_factor": 2.0},
            **extra,
        },
        path,
    )
    return ema


def test_original_checkpoint_gives_the_original_networks_output(tmp_path: Path) -> None:
    path = tmp_path / "glitch-small.ckpt"
    ema = write_dd_checkpoint(path)
    model = load_model(path)
    assert not model.training and model.cond is None and model.class_names == []
    assert model.preset == {"name": "dance-diffusion", **DD_SMALL, "kernel_size": 5,
                            "class_dim": model.preset["class_dim"]}  # fmt: skip
    assert (model.sample_rate, model.length, model.data_channels) == (48000, 65536, 2)

    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(2, 2, valid_length(1, 5), generator=g), torch.rand(2, generator=g)
    with torch.no_grad():
        want = dd_reference.forward(ema, x, t)
        have = model(x, t)
        live = dd_reference.forward(random_weights(1), x, t)
    torch.testing.assert_close(have, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(have, live)  # the EMA weights, not the live ones


def test_original_checkpoint_with_overrides_and_zero_conditioning(tmp_path: Path) -> None:
    path = tmp_path / "honk.ckpt"
    write_dd_checkpoint(path)
    model = load_model(path, sample_rate=16000, length=1000, data_channels=1)
    assert (model.sample_rate, model.length, model.data_channels) == (16000, 1000, 1)
    x, t = torch.randn(3, 1, 1000), torch.rand(3)
    # Fine-tuning with classes starts from exactly the pretrained network.
    cond = Denoiser(
        UNetConfig.from_preset({**model.preset, "class_dim": 8}), CLASSES, 16000, 1000, 1
    )
    cond.unet.load_state_dict(model.unet.state_dict())
    with torch.no_grad():
        want = model(x, t)
        assert want.shape == x.shape
        for label in range(len(CLASSES) + 1):
            assert torch.equal(cond(x, t, torch.full((3,), label)), want)


def test_pickled_objects_load_only_from_trusted_files(tmp_path: Path) -> None:
    path = tmp_path / "hparams.ckpt"
    ema = write_dd_checkpoint(path, hyper_parameters=argparse.Namespace(ema_decay=0.995))
    with pytest.raises(ValueError, match="not loadable as plain weights"):
        load_model(path, trusted=False)
    with pytest.warns(UserWarning, match="runs code from the file"):
        model = load_model(path)
    torch.testing.assert_close(model.unet.state_dict()["net.0.main.0.weight"],
                               ema["net.0.main.0.weight"])  # fmt: skip


def test_mismatched_original_checkpoint_is_refused_with_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "broken.ckpt"
    write_dd_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    sd = ckpt["state_dict"]
    del sd["diffusion_ema.net.3.main.1.main.0.bias"]
    sd["diffusion_ema.net.0.main.0.bias"] = torch.zeros(7)
    sd["diffusion_ema.net.9.weight"] = torch.zeros(1)
    torch.save(ckpt, path)
    with pytest.raises(ValueError) as err:
        load_model(path)
    msg = str(err.value)
    assert "broken.ckpt (diffusion_ema.*) does not fit the model" in msg
    assert "1 missing keys (net.3.main.1.main.0.bias)" in msg
    assert "1 unexpected keys (net.9.weight)" in msg
    assert "net.0.main.0.bias [7] vs [32]" in msg


def project_models(seed: int = 0) -> tuple[Denoiser, Denoiser]:
    torch.manual_seed(seed)
    live = Denoiser(UNetConfig.from_preset(PROJECT), CLASSES, 8000, 1000, 1)
    ema = Denoiser(UNetConfig.from_preset(PROJECT), CLASSES, 8000, 1000, 1)
    with torch.no_grad():  # trained-looking conditioning, so a label changes the output
        for p in [*live.cond.parameters(), *ema.cond.parameters()]:
            p.normal_(0, 0.5)
    return live, ema


def project_state(live: Denoiser, ema_weights: dict) -> dict:
    return {
        "preset": live.preset,
        "class_names": live.class_names,
        "sample_rate": live.sample_rate,
        "length": live.length,
        "data_channels": live.data_channels,
        "model": live.state_dict(),
        "ema": ema_weights,
        "step": 7,
        "config": {"lr": 1e-4},
    }


def test_project_checkpoint_round_trip(tmp_path: Path) -> None:
    live, ema = project_models()
    opt = torch.optim.AdamW(live.parameters())
    path = tmp_path / "models" / "model.pt"
    save_checkpoint(path, **project_state(live, ema.state_dict()), optimizer=opt.state_dict())
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left

    model = load_model(path)
    assert not model.training
    assert model.preset == live.preset and model.class_names == CLASSES
    assert (model.sample_rate, model.length, model.data_channels) == (8000, 1000, 1)
    x, t, labels = torch.randn(4, 1, 1000), torch.rand(4), torch.arange(4)
    with torch.no_grad():
        assert torch.equal(model(x, t, labels), ema(x, t, labels))  # the EMA weights
        assert not torch.equal(model(x, t, labels), live(x, t, labels))

    ckpt = load_checkpoint(path)
    assert ckpt["format"] == FORMAT and ckpt["step"] == 7
    torch.optim.AdamW(live.parameters()).load_state_dict(ckpt["optimizer"])
    with pytest.raises(ValueError, match=f"not a {FORMAT} checkpoint"):
        write_dd_checkpoint(tmp_path / "dd.ckpt")
        load_checkpoint(tmp_path / "dd.ckpt")


def test_project_checkpoint_accepts_an_averaged_model_state(tmp_path: Path) -> None:
    live, ema = project_models()
    averaged = make_ema(ema, 0.99)
    path = tmp_path / "last.pt"
    save_checkpoint(path, **project_state(live, averaged.state_dict()))
    model = load_model(path)
    x, t = torch.randn(2, 1, 1000), torch.rand(2)
    with torch.no_grad():
        assert torch.equal(model(x, t, torch.tensor([0, 3])), ema(x, t, torch.tensor([0, 3])))


def test_project_checkpoint_mismatch_lists_keys(tmp_path: Path) -> None:
    live, ema = project_models()
    weights = ema.state_dict()
    for key in [k for k in weights if ".qkv_proj." in k]:
        del weights[key]
    weights["unet.timestep_embed.weight"] = torch.zeros(4, 1)
    path = tmp_path / "bad.pt"
    save_checkpoint(path, **project_state(live, weights))
    with pytest.raises(ValueError) as err:
        load_model(path)
    msg = str(err.value)
    assert "36 missing keys (unet.net.3.main.7.main.2.qkv_proj.weight" in msg and ", ...)" in msg
    assert "unet.timestep_embed.weight [4, 1] vs [8, 1]" in msg
    assert "unexpected" not in msg


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    live, ema = project_models()
    path = tmp_path / "last.pt"
    save_checkpoint(path, **project_state(live, ema.state_dict()))
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for a lambda
        save_checkpoint(path, **project_state(live, ema.state_dict()), bad=lambda: None)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert load_checkpoint(path)["step"] == 7


def test_the_same_state_saves_to_the_same_bytes(tmp_path: Path) -> None:
    # dvc.lock and the evaluate report record the checkpoint's hash: a retraining that gives
    # the same weights must give the same file, whatever temporary name the save went through.
    live, ema = project_models()
    a, b = tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt"
    for path in (a, b):
        path.parent.mkdir()
        save_checkpoint(path, **project_state(live, ema.state_dict()))
    assert a.read_bytes() == b.read_bytes()
    assert load_checkpoint(a)["step"] == 7


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_model(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="junk.ckpt"):
            load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, other)
    with pytest.raises(ValueError, match="neither"):
        load_model(other)
    torch.save([1, 2], other)
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_model(other)


def test_check_state_dict_accepts_an_exact_match() -> None:
    live, _ = project_models()
    check_state_dict(live, live.state_dict(), "itself")
