"""The U-Net matches Dance Diffusion's layout and maths; the Denoiser wrapper pads, maps channels
and conditions on classes without disturbing a pretrained network."""

from __future__ import annotations

from typing import Any

import dd_reference
import pytest
import torch

from core import params as core_params
from core.errors import ConfigError
from core.params import Params
from training.checkpoints import load_model, save_checkpoint
from training.config import build_model, model_config
from training.model import (
    Denoiser,
    DiffusionAttnUnet1D,
    UNetConfig,
    attention_levels,
    count_parameters,
    infer_preset,
    valid_length,
)

DD_PARAMETERS = 221_389_322  # every public Dance Diffusion checkpoint
# Small enough for milliseconds, deep enough for attention at three levels (3, 4 and 5).
SMALL = {
    "name": "small",
    "io_channels": 2,
    "depth": 5,
    "channels": [8, 32, 32, 64, 64],
    "n_attn_layers": 1,
    "kernel_size": 5,
    "class_dim": 16,
}
CLASSES = ["kick", "snare", "hihat", "clap"]


def small_denoiser(classes: list[str] | None = None, data_channels: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    config = UNetConfig.from_preset(SMALL)
    return Denoiser(config, CLASSES if classes is None else classes, 8000, 1000, data_channels)


def arch(preset: UNetConfig) -> dict[str, Any]:
    """The keys of the reference's layout (all but the kernel size)."""
    return {k: v for k, v in preset.arch().items() if k != "kernel_size"}


def test_dance_diffusion_preset_has_the_public_checkpoints_layout(typed: Params) -> None:
    preset = model_config(typed.model, "dance-diffusion")
    with torch.device("meta"):  # shapes only: no 885 MB of weights
        unet = DiffusionAttnUnet1D(**preset.arch())
    have = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    want = dd_reference.layout(**arch(preset))
    assert list(have) == list(want)  # same keys in the same order...
    assert have == want  # ...with the same shapes
    assert len(want) == 932
    assert count_parameters(unet) == DD_PARAMETERS
    # The layout itself, checked against the published size (buffers are the 26 kernels).
    buffers = [k for k in want if k.endswith(".kernel")]
    assert sum(torch.Size(s).numel() for k, s in want.items() if k not in buffers) == DD_PARAMETERS
    assert attention_levels(14, 4) == [9, 10, 11, 12, 13, 14]  # the 6 deepest levels
    assert infer_preset(unet.state_dict()) == preset.arch()


def test_tiny_preset_layout_and_size(params, typed: Params) -> None:
    preset = model_config(typed.model, "tiny")
    assert preset.name == "tiny"
    params["model"]["preset"] = "tiny"
    model = build_model(core_params.parse(params), CLASSES)
    sd = model.state_dict()
    unet_keys = {k[len("unet.") :]: tuple(v.shape) for k, v in sd.items() if k.startswith("unet.")}
    assert unet_keys == dd_reference.layout(**arch(preset))
    assert all(k.startswith(("unet.", "cond.")) for k in sd)
    assert count_parameters(model) < 2_000_000  # trains on a CPU
    assert (model.sample_rate, model.length) == (44100, 44100)
    assert model.data_channels == params["audio"]["channels"]
    assert model.class_names == CLASSES


@pytest.mark.parametrize("depth", [2, 5])
def test_unet_computes_what_the_original_computes(depth: int) -> None:
    torch.manual_seed(depth)
    channels = [32, 32, 64, 64, 64][:depth]
    unet = DiffusionAttnUnet1D(2, depth, channels, n_attn_layers=1, kernel_size=5)
    with torch.no_grad():  # larger weights than the 0.5-scaled init, so errors would show
        for p in unet.parameters():
            p.normal_(0, 0.2)
    x = torch.randn(3, 2, valid_length(700, depth))
    t = torch.rand(3)
    with torch.no_grad():
        want = dd_reference.forward(unet.state_dict(), x, t)
        have = unet(x, t)
    assert want.abs().max() > 0.1
    torch.testing.assert_close(have, want, rtol=1e-5, atol=1e-5)


def test_valid_length_is_what_the_unet_accepts() -> None:
    assert valid_length(44100, 14) == 49152
    assert valid_length(1, 14) == 24576  # 3 * 8192: the deepest level needs 3 samples
    assert valid_length(65536, 14) == 65536
    assert valid_length(65537, 14) == 73728
    depth = 4
    unet = DiffusionAttnUnet1D(1, depth, [8, 8, 8, 8], n_attn_layers=0, kernel_size=3)
    t = torch.zeros(1)
    with torch.no_grad():
        for n in (24, 32, 40):
            assert valid_length(n, depth) == n
            assert unet(torch.zeros(1, 1, n), t).shape == (1, 1, n)
        for n in (16, 28):  # too short for the deepest level / not a multiple of 2**3
            with pytest.raises(RuntimeError):
                unet(torch.zeros(1, 1, n), t)
    with pytest.raises(ValueError):
        valid_length(0, 4)


@pytest.mark.parametrize("n", [1000, 44100 // 40, 1])
def test_denoiser_pads_and_crops(n: int) -> None:
    model = small_denoiser([])
    x, t = torch.randn(2, 2, n), torch.rand(2)
    with torch.no_grad():
        v = model(x, t)
        padded = torch.nn.functional.pad(x, (0, valid_length(n, SMALL["depth"]) - n))
        want = model.unet(padded, t)[..., :n]
    assert v.shape == x.shape
    torch.testing.assert_close(v, want, rtol=0, atol=0)


def test_mono_data_on_a_stereo_network() -> None:
    model = small_denoiser([], data_channels=1)
    x, t = torch.randn(2, 1, 500), torch.rand(2)
    with torch.no_grad():
        v = model(x, t)
        stereo = model.unet(torch.nn.functional.pad(x.repeat(1, 2, 1), (0, 12)), t)[..., :500]
    assert v.shape == (2, 1, 500)
    torch.testing.assert_close(v, stereo.mean(dim=1, keepdim=True))
    with pytest.raises(ValueError, match="1-channel audio, got 2"):
        model(torch.zeros(1, 2, 500), torch.zeros(1))
    with pytest.raises(ConfigError, match="2-channel data cannot feed a 1-channel model"):
        Denoiser(UNetConfig.from_preset({**SMALL, "io_channels": 1}), [], 8000, 1000, 2)


def test_scalar_t_means_the_same_level_for_the_batch() -> None:
    model = small_denoiser([])
    x = torch.randn(3, 2, 256)
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.tensor(0.3)), model(x, torch.full((3,), 0.3)))


def test_unconditional_model_has_no_conditioning_path() -> None:
    model = small_denoiser([])
    assert model.cond is None and model.null_label is None
    assert not [k for k in model.state_dict() if not k.startswith("unet.")]
    cond = small_denoiser()
    assert cond.null_label == len(CLASSES)
    assert cond.cond.embed.weight.shape == (len(CLASSES) + 1, SMALL["class_dim"])
    extra = {k for k in cond.state_dict() if not k.startswith("unet.")}
    assert extra and all(k.startswith("cond.") for k in extra)


def test_zero_initialised_conditioning_changes_nothing_until_trained() -> None:
    pretrained = small_denoiser([], seed=1)
    model = small_denoiser(seed=2)
    model.unet.load_state_dict(pretrained.unet.state_dict())
    x, t = torch.randn(5, 2, 300), torch.rand(5)
    with torch.no_grad():
        want = pretrained(x, t)
        for labels in (None, torch.arange(5), torch.zeros(5, dtype=torch.long)):
            assert torch.equal(model(x, t, labels), want)

    opt = torch.optim.SGD(model.cond.parameters(), lr=0.1)
    target = torch.randn(5, 2, 300)
    torch.nn.functional.mse_loss(model(x, t, torch.arange(5)), target).backward()
    opt.step()
    with torch.no_grad():
        outs = [model(x[:1], t[:1], torch.tensor([c])) for c in range(5)]
    for a in range(5):
        for b in range(a + 1, 5):
            assert not torch.allclose(outs[a], outs[b]), (a, b)
    pairs = zip(model.unet.parameters(), pretrained.unet.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)  # only the conditioning moved


def test_bad_presets_are_refused(typed: Params) -> None:
    with pytest.raises(ConfigError, match="multiples of 32"):
        UNetConfig.from_preset({**SMALL, "channels": [8, 16, 16, 64, 64]})
    with pytest.raises(ConfigError, match="must be odd"):
        UNetConfig.from_preset({**SMALL, "kernel_size": 4})
    with pytest.raises(ConfigError, match="needs 5 entries"):
        UNetConfig.from_preset({**SMALL, "channels": [8, 32]})
    with pytest.raises(ConfigError, match="lacks depth"):
        UNetConfig.from_preset({k: v for k, v in SMALL.items() if k != "depth"})
    # core.params checks model.preset against model.presets; a preset named otherwise is
    # refused here the same way.
    with pytest.raises(ConfigError, match="unknown model preset 'huge'; known: fold, tiny"):
        model_config(typed.model, "huge")
    with pytest.raises(ConfigError, match="repeat"):
        Denoiser(UNetConfig.from_preset(SMALL), ["kick", "kick"], 8000, 1000, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kernal_size": 5}, "unknown key(s) kernal_size"),
        ({"depth": 4.5}, "model depth must be a whole number, got 4.5"),
        ({"depth": True}, "model depth must be a whole number"),
        ({"channels": 64}, "model channels must be a list of whole numbers"),
        ({"channels": [8, 32, "32", 64, 64]}, "model channels must be whole numbers"),
        ({"class_dim": 0}, "class_dim positive"),
    ],
)
def test_a_preset_key_that_is_unknown_or_not_a_number_is_refused(
    change: dict[str, Any], message: str
) -> None:
    """params.yaml's presets are the model's own keys (core.params does not know them): the
    model names the key, as core.params does for its own."""
    with pytest.raises(ConfigError) as err:
        UNetConfig.from_preset({**SMALL, **change})
    assert message in str(err.value)


def test_a_checkpoint_stores_the_preset_as_a_plain_dict(tmp_path) -> None:
    """The checkpoint format is unchanged: ``preset`` is a dict of plain values, which loads
    with ``weights_only`` and gives back the same config."""
    model = small_denoiser()
    assert model.preset == SMALL
    assert UNetConfig.from_preset(model.preset) == model.config
    path = tmp_path / "model.pt"
    save_checkpoint(
        path,
        preset=model.preset,
        class_names=model.class_names,
        sample_rate=model.sample_rate,
        length=model.length,
        data_channels=model.data_channels,
        model=model.state_dict(),
        ema=model.state_dict(),
        step=0,
    )
    assert type(torch.load(path, weights_only=True)["preset"]) is dict
    assert load_model(path).config == model.config


@pytest.mark.parametrize(
    "preset",
    [
        {"io_channels": 1, "depth": 3, "channels": [8, 8, 8], "n_attn_layers": 0, "kernel_size": 3},
        {
            "io_channels": 2,
            "depth": 6,
            "channels": [8, 32, 32, 32, 64, 64],
            "n_attn_layers": 2,
            "kernel_size": 5,
        },
    ],
)
def test_infer_preset_reads_the_architecture_off_the_weights(preset: dict[str, Any]) -> None:
    with torch.device("meta"):
        unet = DiffusionAttnUnet1D(**preset)
    assert infer_preset(unet.state_dict()) == preset
    with pytest.raises(ValueError, match="not a Dance Diffusion U-Net"):
        infer_preset({"weight": torch.zeros(1)})


def test_runs_under_bf16_autocast_and_on_the_meta_device() -> None:
    model = small_denoiser()
    x, t = torch.randn(2, 2, 256), torch.rand(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.unet.timestep_embed(t[:, None])
        v = model(x, t, torch.tensor([0, 4]))
    assert features.dtype == torch.float32  # the noise level keeps full precision
    assert v.shape == x.shape and v.dtype == torch.bfloat16
    with torch.device("meta"):  # what FLOP counting and shape checks use
        meta = small_denoiser()
        assert meta(torch.zeros(2, 2, 256), torch.zeros(2)).shape == (2, 2, 256)
