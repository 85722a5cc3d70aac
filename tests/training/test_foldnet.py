"""The CPU preset's network (training/foldnet.py): its preset checks, the fold and its inverse,
conditioning, and a checkpoint of it that loads and samples."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from drumkit import CLASSES

from core import params as core_params
from core.errors import ConfigError
from training.checkpoints import load_model, save_checkpoint
from training.config import build_model, model_config
from training.diffusion import make_ema, sample_t, schedule, training_loss, unwarp, warp
from training.foldnet import FoldConfig, FoldUNet, as_v
from training.model import Denoiser, config_from_preset
from training.patches import dct_matrix, fold, unfold
from training.resume import checkpoint_state
from training.sampling import Settings, generate, make_noise

SMALL = {
    "arch": "fold", "io_channels": 1, "fold": 8, "channels": [16, 32], "blocks": 1,
    "factor": 4, "heads": 2, "pos": 4, "class_dim": 16, "schedule": "cosine",
}  # fmt: skip


def small(classes: list[str] = CLASSES, io: int = 1, data: int = 1, seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    config = FoldConfig.from_preset({**SMALL, "io_channels": io, "name": "small"})
    return Denoiser(config, classes, 8000, 1000, data)


def test_the_default_preset_is_the_fold_network(typed: core_params.Params) -> None:
    config = model_config(typed.model)
    assert isinstance(config, FoldConfig) and config.name == "fold"
    assert config.schedule == "cosine"
    model = build_model(typed, CLASSES)
    assert isinstance(model.unet, FoldUNet) and model.cond is None
    assert sum(p.numel() for p in model.parameters()) < 4_000_000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fold": 0}, "must be positive"),
        ({"fold": 2.5}, "model fold must be a whole number"),
        ({"channels": [16, 30]}, "multiples of 8: [30]"),
        ({"channels": []}, "model channels must be a list"),
        ({"factor": 1}, "factor must be at least 2"),
        ({"pos": 3}, "pos must be an even number"),
        ({"heads": 3}, "heads (3) must divide the deepest channels (32)"),
        ({"schedule": "linear"}, "schedule must be one of cosine, crash"),
        ({"folds": 8}, "unknown key(s) folds"),
        ({"fold": None}, "model fold must be a whole number"),
        ({"dropout": 1.0}, "model dropout must be a number in [0, 1), got 1.0"),
        ({"dropout": -0.1}, "model dropout must be a number in [0, 1)"),
        ({"dropout": True}, "model dropout must be a number in [0, 1)"),
        ({"dropout": "0.1"}, "model dropout must be a number in [0, 1)"),
    ],
)
def test_a_bad_fold_preset_names_its_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_preset({**SMALL, **change})
    assert message in str(err.value)


def test_a_missing_key_and_an_unknown_arch_are_refused() -> None:
    with pytest.raises(ConfigError, match="lacks blocks"):
        config_from_preset({k: v for k, v in SMALL.items() if k != "blocks"})
    with pytest.raises(ConfigError, match="arch must be dance-diffusion or fold"):
        config_from_preset({**SMALL, "arch": "wavenet"})


def test_the_preset_round_trips_as_a_plain_dict() -> None:
    config = FoldConfig.from_preset({**SMALL, "name": "small"})
    assert config_from_preset(config.as_preset()) == config
    assert config.block() == 32  # fold 8, one 4x downsampling


def test_any_length_comes_back_and_the_fold_puts_every_sample_back() -> None:
    model = small()
    for n in (1000, 1024, 37):
        x = torch.randn(2, 1, n)
        assert model(x, torch.rand(2), torch.tensor([0, 4])).shape == (2, 1, n)
    x = torch.arange(2 * 2 * 12, dtype=torch.float32).view(2, 2, 12)
    h = fold(x, 4)
    assert h.shape == (2, 8, 3)
    assert float(h[1, 1 * 4 + 3, 2]) == float(x[1, 1, 2 * 4 + 3])  # channel c * 4 + j, step k
    assert torch.equal(unfold(h, 2), x)


def test_the_output_starts_at_zero_and_labels_condition_it() -> None:
    model = small()
    x, t = torch.randn(4, 1, 1000), torch.rand(4)
    labels = torch.arange(4)
    assert torch.equal(model.unet(x, t, labels), torch.zeros_like(x))  # predicts silence
    torch.testing.assert_close(model(x, t, labels), as_v(torch.zeros_like(x), x, t, "x0"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    clips = torch.randn(4, 1, 1000) * torch.linspace(1, 0, 1000)
    for _ in range(3):
        loss = training_loss(model, clips, labels, 0.0, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        kick, snare = (
            model(x, t, torch.zeros(4, dtype=torch.long)),
            model(x, t, torch.ones(4, dtype=torch.long)),
        )
        null = model(x, t, None)
    assert not torch.allclose(kick, snare) and not torch.allclose(kick, null)


def test_stereo_data_and_an_unconditional_model() -> None:
    stereo = small(io=2, data=2)
    assert stereo(torch.randn(2, 2, 500), torch.rand(2), torch.tensor([1, 2])).shape == (2, 2, 500)
    mono_on_stereo = small(io=2, data=1)
    assert mono_on_stereo(torch.randn(2, 1, 500), torch.rand(2)).shape == (2, 1, 500)
    uncond = small(classes=[])
    assert uncond.null_label is None and uncond.unet.labels.num_embeddings == 1
    assert uncond(torch.randn(2, 1, 500), torch.rand(2)).shape == (2, 1, 500)


def test_the_cosine_schedule_draws_and_steps_uniformly_in_t() -> None:
    u = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(warp(u, "cosine"), u)
    for name in ("cosine", "crash"):
        torch.testing.assert_close(unwarp(warp(u, name), name), u)
    assert not torch.allclose(warp(u, "crash"), u)
    torch.testing.assert_close(schedule(4, name="cosine"), torch.tensor([1, 0.75, 0.5, 0.25, 0]))
    partial = schedule(2, t_start=0.5, name="cosine")
    torch.testing.assert_close(partial, torch.tensor([0.5, 0.25, 0.0]))
    # rho spends the steps at low noise: t = u^rho, from the start level down.
    spaced = schedule(4, name="cosine", rho=2.0)
    torch.testing.assert_close(spaced, torch.tensor([1, 0.5625, 0.25, 0.0625, 0]))
    partial = schedule(2, t_start=0.5, name="cosine", rho=3.0)
    torch.testing.assert_close(partial, torch.tensor([0.5, 0.0625, 0.0]))
    crash = schedule(4, name="crash", rho=2.0)
    torch.testing.assert_close(crash, warp(torch.tensor([1, 0.5625, 0.25, 0.0625, 0.0])))
    with pytest.raises(ValueError, match="rho must be positive"):
        schedule(4, name="cosine", rho=0.0)
    t = sample_t(20000, torch.Generator().manual_seed(0), name="cosine")
    assert abs(float((t > 0.5).float().mean()) - 0.5) < 0.02  # crash puts ~37 % above 0.5
    t = sample_t(20000, torch.Generator().manual_seed(0), name="crash")
    assert float((t > 0.5).float().mean()) < 0.4


def test_training_follows_the_models_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    import training.diffusion as diffusion

    real = diffusion.sample_t

    def spy(*args: Any) -> torch.Tensor:
        seen.append(args[3])
        return real(*args)

    monkeypatch.setattr(diffusion, "sample_t", spy)
    training_loss(small(), torch.randn(2, 1, 200), torch.tensor([0, 1]))
    assert seen == ["cosine"]


def test_a_fold_checkpoint_loads_and_samples_the_same(tmp_path: Path) -> None:
    model = small(seed=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # trained-looking weights: a non-zero output
    path = tmp_path / "model.pt"
    save_checkpoint(path, **checkpoint_state(model, make_ema(model, 0.99), {"train": {}}, 5))
    loaded = load_model(path)
    assert isinstance(loaded.config, FoldConfig) and loaded.schedule == "cosine"
    assert loaded.preset == model.preset
    cpu = torch.device("cpu")
    s = Settings(steps=4, rho=1.0, sampler="dpmpp-2m", guidance=2.0, seed=0, batch_size=4,
                 device=cpu, precision="fp32", refine=0, progress=False)  # fmt: skip
    noise = make_noise(2, (1, 1000), 0)
    a, b = generate(model.eval(), noise, 1, s), generate(loaded, noise, 1, s)
    assert torch.equal(a, b) and a.abs().max() > 0


def test_an_x0_prediction_becomes_the_v_that_gives_it_back() -> None:
    x, t = torch.randn(3, 1, 64), torch.tensor([0.1, 0.5, 0.9])
    x0 = torch.randn(3, 1, 64)
    v = as_v(x0, x, t, "x0")
    a, s = torch.cos(t * torch.pi / 2)[:, None, None], torch.sin(t * torch.pi / 2)[:, None, None]
    torch.testing.assert_close(x * a - v * s, x0)  # what every sampler reads back as x0
    silent = as_v(torch.zeros_like(x), x, t, "x0")  # silence: v = (alpha / sigma) x_t
    torch.testing.assert_close(silent, x * a / s)
    assert torch.isfinite(as_v(x0, x, torch.zeros(3), "x0")).all()  # t = 0 stays finite
    assert as_v(x0, x, t, "v") is x0


def test_the_snr_cap_weights_low_noise_levels_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the cap each clip's v error is weighted by min(1, cap sigma^2); a cap above every
    clip's SNR + 1 is the plain v error."""
    model = small(seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    clips, labels = torch.randn(4, 1, 256) * 0.3, torch.arange(4)
    t = torch.tensor([0.05, 0.2, 0.6, 0.95])
    import training.diffusion as diffusion

    monkeypatch.setattr(diffusion, "sample_t", lambda *a: t)

    def loss(cap: float) -> float:
        gen = torch.Generator().manual_seed(0)
        return float(training_loss(model, clips, labels, 0.0, gen, cap).detach())

    plain = loss(0.0)
    assert loss(1e9) == pytest.approx(plain, rel=1e-6)
    # By hand: the same noise, each clip's error weighted.
    noise = torch.randn(clips.shape, generator=torch.Generator().manual_seed(0))
    a, s = torch.cos(t * torch.pi / 2)[:, None, None], torch.sin(t * torch.pi / 2)[:, None, None]
    with torch.no_grad():
        err = (model(clips * a + noise * s, t, labels) - (a * noise - s * clips)) ** 2
    weight = (2.0 * s.flatten() ** 2).clamp(max=1)
    assert loss(2.0) == pytest.approx(float((err.mean((1, 2)) * weight).mean()), rel=1e-5)
    assert loss(2.0) < plain


def test_a_masked_x0_network_scales_each_patchs_frequencies_of_its_input() -> None:
    """``x0-masked``: the prediction is a residual plus the noisy input with one gain per patch
    and DCT frequency. All gains one: the input itself, sample for sample; only the lowest
    frequency: each patch's mean (a mute high band); stereo channels kept apart."""
    config = FoldConfig.from_preset({**SMALL, "io_channels": 2, "predict": "x0-masked"})
    net = Denoiser(config, CLASSES, 8000, 1000, 2).unet
    f = SMALL["fold"]
    d = dct_matrix(f)
    torch.testing.assert_close(d @ d.T, torch.eye(f), atol=1e-6, rtol=0)
    x, t, labels = torch.randn(2, 2, 1000), torch.rand(2), torch.tensor([0, 1])
    shut, full = 0.0, 1.0
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
        net.out.bias[2 * f :] = full
    torch.testing.assert_close(net(x, t, labels), x, atol=1e-5, rtol=0)
    with torch.no_grad():
        net.out.bias[2 * f :] = shut
        net.out.bias[2 * f] = full  # channel 0, frequency 0
    y = net(x, t, labels)
    patches = torch.nn.functional.pad(x[:, 0], (0, 24)).view(2, -1, f)  # 1000 -> 1024
    want = patches.mean(-1, keepdim=True).expand_as(patches).reshape(2, -1)[:, :1000]
    torch.testing.assert_close(y[:, 0], want, atol=1e-5, rtol=0)
    assert torch.equal(y[:, 1], torch.zeros_like(y[:, 1]))


def test_the_mask_leaves_the_bins_below_mask_from_alone() -> None:
    """With ``mask_from: 2`` the lowest two frequencies of every patch get no gain: all gains
    at one give the input without its patch-wise DCT bins 0 and 1."""
    preset = {**SMALL, "predict": "x0-masked", "mask_from": 2}
    net = Denoiser(FoldConfig.from_preset(preset), CLASSES, 8000, 1000, 1).unet
    f = SMALL["fold"]
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
        net.out.bias[f:] = 1.0
    x = torch.randn(2, 1, 1024)
    patches = x.view(2, -1, f)  # [b, patch, sample]
    d = dct_matrix(f)
    coeffs = patches @ d.T
    coeffs[..., :2] = 0.0
    want = (coeffs @ d).reshape(2, 1, -1)
    torch.testing.assert_close(net(x, torch.rand(2), torch.tensor([0, 1])), want, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="mask_from must be a frequency bin in"):
        FoldConfig.from_preset({**preset, "mask_from": f})


def _high_band_through_mask(mask: str) -> tuple[float, float, float]:
    """A hat-like input (white noise differenced three times: nearly all of it high) through a
    fold-32 mask passing bins 2 and up whole: its share of power in the lowest 1.5 bins before
    and after, in dB, and the output's power against the input's."""
    f, n = 32, 4096
    x = torch.randn(2, 1, n + 3, generator=torch.Generator().manual_seed(0))
    x = x.diff(dim=-1).diff(dim=-1).diff(dim=-1)
    preset = {**SMALL, "fold": f, "predict": "x0-masked", "mask": mask, "mask_from": 2}
    net = Denoiser(FoldConfig.from_preset(preset), CLASSES, 8000, n, 1).unet
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
        net.out.bias[f:] = 1.0
        y = net(x, torch.rand(2), torch.tensor([0, 1]))
    low = round(n / (2 * f) * 1.5)

    def share(z: torch.Tensor) -> float:
        power = torch.fft.rfft(z, dim=-1).abs() ** 2
        total = (torch.fft.rfft(x, dim=-1).abs() ** 2).sum()
        return float(10 * torch.log10(power[..., :low].sum() / total))

    return share(x), share(y), float(10 * torch.log10((y**2).sum() / (x**2).sum()))


def test_a_lapped_mask_leaves_no_staircase_under_a_high_sound() -> None:
    """``mask: mdct``: the gains act on MDCT frames of two patches (sine window, hop one
    patch), not patch by patch. Taking the low two bins out of a hat patch by patch leaves
    each patch's mean as a step, a low band 28 dB louder than the hat's own; lapped, the low
    band stays as it was. All gains one from bin 0: the input back exactly."""
    before, block, _ = _high_band_through_mask("dct")
    assert block > before + 20  # the staircase the lapped mask is for
    before, lapped, kept = _high_band_through_mask("mdct")
    assert lapped < before + 3 and abs(kept) < 0.5
    preset = {**SMALL, "io_channels": 2, "predict": "x0-masked", "mask": "mdct"}
    net = Denoiser(FoldConfig.from_preset(preset), CLASSES, 8000, 1000, 2).unet
    x = torch.randn(2, 2, 1000)
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
        net.out.bias[2 * SMALL["fold"] :] = 1.0
        torch.testing.assert_close(
            net(x, torch.rand(2), torch.tensor([0, 1])), x, atol=1e-5, rtol=0
        )
    assert FoldConfig.from_preset(preset).as_preset()["mask"] == "mdct"
    assert FoldConfig.from_preset({**SMALL, "predict": "x0-masked"}).mask == "dct"  # old presets
    with pytest.raises(ConfigError, match="model mask must be one of dct, mdct"):
        FoldConfig.from_preset({**preset, "mask": "stft"})


def test_the_gate_multiplies_each_sample_by_a_gain_between_zero_and_one() -> None:
    """``gate: true``: a third head's sigmoid scales the masked prediction sample by sample, so
    a silence the network is sure of comes out as silence (-100 dB here), not a residue."""
    preset = {**SMALL, "predict": "x0-masked", "gate": True}
    net = Denoiser(FoldConfig.from_preset(preset), CLASSES, 8000, 1000, 1).unet
    assert FoldConfig.from_preset(preset).as_preset()["gate"] is True
    f = SMALL["fold"]
    x, t, labels = torch.randn(2, 1, 1024), torch.rand(2), torch.tensor([0, 1])
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
        net.out.bias[f : 2 * f] = 1.0  # every gain of the mask at one: the input back
        net.out.bias[2 * f :] = 20.0  # the gate open
        torch.testing.assert_close(net(x, t, labels), x, atol=1e-5, rtol=0)
        net.out.bias[2 * f : 2 * f + f // 2] = -20.0  # the gate shut on the first half of patches
        y = net(x, t, labels)
    shut = y.view(2, 1, -1, f)[..., : f // 2]
    assert float(shut.abs().max()) < 1e-5 * float(x.abs().max())
    torch.testing.assert_close(
        y.view(2, 1, -1, f)[..., f // 2 :], x.view(2, 1, -1, f)[..., f // 2 :], atol=1e-5, rtol=0
    )
    with pytest.raises(ConfigError, match="model gate must be true or false"):
        FoldConfig.from_preset({**preset, "gate": 1})
    with pytest.raises(ConfigError, match="model gate needs predict x0 or x0-masked"):
        FoldConfig.from_preset({**preset, "predict": "v"})


def test_dropout_acts_in_training_only_and_travels_in_the_checkpoint(tmp_path: Path) -> None:
    """Dropout regularises a small kit's training; sampling (the EMA copy, a loaded model)
    must be deterministic, and a preset without it builds the network it always did."""
    torch.manual_seed(0)
    config = FoldConfig.from_preset({**SMALL, "dropout": 0.2, "name": "small"})
    assert config.as_preset()["dropout"] == 0.2 and config_from_preset(config.as_preset()) == config
    model = Denoiser(config, CLASSES, 8000, 1000, 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    x, t, labels = torch.randn(2, 1, 1000), torch.rand(2), torch.tensor([0, 1])
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x, t, labels), model(x, t, labels))
        ema = make_ema(model, 0.99)
        assert not ema.training and torch.equal(ema.module(x, t, labels), ema.module(x, t, labels))
        model.eval()
        plain = model(x, t, labels)
    path = tmp_path / "model.pt"
    save_checkpoint(path, **checkpoint_state(model, ema, {"train": {}}, 5))
    loaded = load_model(path)
    assert loaded.config.dropout == 0.2
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, labels), ema.module(x, t, labels))
    assert torch.equal(plain, model(x, t, labels))

    off = small(seed=3)
    assert off.unet.config.dropout == 0 and "dropout" not in off.unet.config.as_preset()
    assert not any(isinstance(m, torch.nn.Dropout) for m in off.modules())
    torch.manual_seed(3)
    zero = Denoiser(FoldConfig.from_preset({**SMALL, "dropout": 0, "name": "small"}),
                    CLASSES, 8000, 1000, 1)  # fmt: skip
    pairs = zip(off.state_dict().values(), zero.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_sampling_averages_a_fold_model_over_its_patch_grid_at_low_noise() -> None:
    """sample.grid_shifts reaches the network: the steps at noise levels up to grid_below see
    the clip once per offset of the fold (padded by one patch), the others once."""
    model = small().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    lengths: list[int] = []
    model.unet.register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[-1]))
    s = Settings(steps=4, rho=1.0, sampler="ddim", guidance=1.0, seed=0, batch_size=2,
                 device=torch.device("cpu"), precision="fp32", refine=0, progress=False,
                 grid_shifts=4, grid_below=0.3)  # fmt: skip
    noise = make_noise(2, (1, 1000), 0)
    averaged = generate(model, noise, 1, s)  # levels 1, 0.75, 0.5, 0.25: the last is averaged
    assert lengths == [1000] * 3 + [1000 + SMALL["fold"]] * 4
    lengths.clear()
    plain = generate(model, noise, 1, replace(s, grid_shifts=1))
    assert lengths == [1000] * 4 and not torch.allclose(averaged, plain)
