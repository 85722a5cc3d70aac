"""A hit's length as a condition (training/lengths.py and its use by the fold network,
training and sampling): measured as trim measures, kept per class, drawn back, obeyed."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from drumkit import CLASSES
from torch import Tensor, nn

from core.errors import ConfigError
from training import lengths as hl
from training.checkpoints import load_model, save_checkpoint
from training.config import count_lengths
from training.data import Clips, MemoryBatches
from training.diffusion import guided_v, make_ema, training_loss
from training.foldnet import FoldConfig
from training.model import Denoiser, config_from_preset
from training.resume import checkpoint_state
from training.sampling import Settings, draw_lengths, generate, make_noise

SR = 8000
SMALL = {
    "arch": "fold", "io_channels": 1, "fold": 8, "channels": [16, 32], "blocks": 1,
    "factor": 4, "heads": 2, "pos": 4, "class_dim": 16, "schedule": "cosine", "lengths": True,
}  # fmt: skip
MEASURE = hl.Measure(SR, threshold_db=40.0, window_ms=5.0, gap_ms=30.0, floor_db=6.0)


def hit(tau: float, start: float = 0.01, n: int = SR, seed: int = 0) -> np.ndarray:
    """[1, n]: silence, then a 200 Hz tone decaying with time constant ``tau`` seconds."""
    t = np.arange(n) / SR
    rng = np.random.default_rng(seed)
    y = np.sin(2 * np.pi * 200 * t + rng.uniform(0, 6)) * np.exp(-(t - start) / tau)
    return (y * (t >= start))[None].astype(np.float32)


def model(lengths: bool = True, seed: int = 0, length_map: bool = False) -> Denoiser:
    torch.manual_seed(seed)
    preset = {**SMALL, "lengths": lengths, "length_map": length_map, "name": "small"}
    config = FoldConfig.from_preset(preset)
    m = Denoiser(config, CLASSES, SR, 1000, 1)
    with torch.no_grad():  # trained-looking weights: the zero-initialised output moves
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def settings(length: float | None = None, seed: int = 0) -> Settings:
    return Settings(steps=3, rho=1.0, sampler="dpmpp-2m", guidance=2.0, seed=seed, batch_size=3,
                    device=torch.device("cpu"), precision="fp32", refine=0, progress=False,
                    length=length)  # fmt: skip


def test_the_length_is_where_the_hit_falls_under_trims_threshold() -> None:
    clips = torch.from_numpy(np.stack([hit(0.02), hit(0.08), hit(0.08, start=0.2)]))
    got = MEASURE(clips)
    # a decay of tau reaches -40 dB after tau * ln(100); the envelope's window blurs a little
    want = torch.tensor([0.02, 0.08, 0.08]) * math.log(100)
    torch.testing.assert_close(got, want, atol=0.006, rtol=0)
    assert math.isnan(float(MEASURE(torch.zeros(1, 1, SR))[0]))  # silence has no length


def test_a_histogram_per_class_is_read_back_at_quantiles() -> None:
    lengths = torch.tensor([0.05, 0.05, 0.4, float("nan"), 0.4])
    counts = hl.histogram(lengths, torch.tensor([0, 0, 1, 1, 1]), 3)
    assert counts.sum(1).tolist() == [2, 2, 0]  # the NaN is not counted
    u = torch.linspace(0, 0.999, 50)
    a = hl.quantiles(counts[0], u)
    octave = 2 ** (1 / hl.BINS * (hl.LOG2_HIGH - hl.LOG2_LOW))  # one bin wide
    assert a is not None and ((a > 0.05 / octave) & (a < 0.05 * octave)).all()
    assert bool((a[1:] >= a[:-1]).all())  # an inverse CDF: rising with the quantile
    mixed = hl.histogram(torch.tensor([0.02] * 30 + [0.5] * 10), torch.zeros(40).long(), 1)
    got = hl.quantiles(mixed[0], torch.tensor([0.1, 0.7, 0.74, 0.76, 0.99]))
    assert [bool(v > 0.2) for v in got] == [False, False, False, True, True]  # 3 in 4 short
    assert hl.quantiles(counts[2], u) is None  # a class with none
    assert hl.describe(counts[1]).endswith(" ms") and hl.describe(counts[2]) == "none"


def test_the_length_conditions_the_network_and_nan_means_not_said() -> None:
    m = model()
    x, t, labels = torch.randn(3, 1, 1000), torch.rand(3), torch.tensor([0, 1, 2])
    with torch.no_grad():
        short = m(x, t, labels, torch.full((3,), 0.03))
        long = m(x, t, labels, torch.full((3,), 0.6))
        unsaid = m(x, t, labels, torch.full((3,), float("nan")))
        none = m(x, t, labels)
    assert not torch.allclose(short, long)
    torch.testing.assert_close(unsaid, none)
    plain = model(lengths=False)
    with pytest.raises(ValueError, match="not conditioned on length"):
        plain(x, t, labels, torch.full((3,), 0.1))
    assert plain.length_counts is None and m.length_counts.shape == (len(CLASSES), hl.BINS)


def test_the_preset_key_is_checked_and_kept() -> None:
    with pytest.raises(ConfigError, match="model lengths must be true or false"):
        config_from_preset({**SMALL, "lengths": "yes"})
    config = FoldConfig.from_preset(SMALL)
    assert config.lengths and config_from_preset(config.as_preset()) == config
    old = {k: v for k, v in SMALL.items() if k != "lengths"}  # a checkpoint from before
    assert not FoldConfig.from_preset(old).lengths
    mapped = FoldConfig.from_preset({**SMALL, "length_map": True})
    assert mapped.length_map and config_from_preset(mapped.as_preset()) == mapped
    assert not config.length_map  # absent (every checkpoint before it): no map channels
    with pytest.raises(ConfigError, match="length_map needs lengths"):
        config_from_preset({**SMALL, "lengths": False, "length_map": True})


def test_the_length_map_marks_where_the_asked_length_ends() -> None:
    m = model(length_map=True)
    net = m.unet
    steps = 125  # 1000 samples folded by 8 at 8 kHz: a position is 1 ms
    got = net._length_map(torch.tensor([0.05, float("nan"), 0.02]), steps, torch.zeros(3, 1, 1))
    assert got.shape == (3, 2, steps)
    assert got[0, 0].eq(1).all() and got[1].eq(0).all()  # said / not said (all zero)
    for row, ms in ((0, 50), (2, 20)):  # the time over the length crosses 1 at the length
        ratio = got[row, 1]
        assert float(ratio[ms - 1]) < 1 < float(ratio[ms + 1]) and float(ratio.max()) == 2.0
    assert net._length_map(None, steps, torch.zeros(2, 1, 1)).eq(0).all()
    with torch.no_grad():  # the map alone conditions the network: the embedding's share off
        for p in net.len_mlp.parameters():
            p.zero_()
        x, t, labels = torch.randn(3, 1, 1000), torch.rand(3), torch.tensor([0, 1, 2])
        short = m(x, t, labels, torch.full((3,), 0.03))
        long = m(x, t, labels, torch.full((3,), 0.6))
    assert not torch.allclose(short, long)


class Recorder(nn.Module):
    """Returns zeros and remembers the labels and lengths it was given."""

    null_label = 4

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(self, x: Tensor, t: Tensor, labels: Tensor, lengths: Tensor) -> Tensor:
        self.calls.append((labels, lengths))
        return torch.zeros_like(x) + self.bias


def test_training_drops_the_length_with_the_label_and_on_its_own() -> None:
    rec, n = Recorder(), 4000
    lengths, labels = torch.full((n,), 0.1), torch.zeros(n, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    training_loss(rec, torch.zeros(n, 1, 8), labels, 0.2, gen, lengths=lengths)
    got_labels, got_lengths = rec.calls[-1]
    dropped_label, dropped_len = got_labels == 4, got_lengths.isnan()
    assert bool((dropped_len | ~dropped_label).all())  # no label, no length
    alone = float((dropped_len & ~dropped_label).float().mean())
    assert 0.12 < alone < 0.2  # 0.2 of the 0.8 that kept their label
    assert 0.17 < float(dropped_label.float().mean()) < 0.23
    assert torch.equal(got_lengths[~dropped_len], lengths[~dropped_len])
    v = guided_v(rec, torch.tensor([1, 2]), 2.0, torch.tensor([0.1, 0.2]))
    v(torch.zeros(2, 1, 8), torch.rand(2))
    both_labels, both_lengths = rec.calls[-1]
    assert both_labels.tolist() == [1, 2, 4, 4]  # the unconditional half says nothing
    assert both_lengths[:2].tolist() == pytest.approx([0.1, 0.2])
    assert both_lengths[2:].isnan().all()


def test_sampling_draws_a_length_per_sound_or_takes_the_asked_one(tmp_path: Path) -> None:
    m = model()
    assert draw_lengths(m, 0, 4, settings()) is None  # nothing counted yet: not said
    m.length_counts[0] = hl.histogram(torch.tensor([0.02, 0.5]), torch.zeros(2).long(), 1)[0]
    m.length_counts[1] = hl.histogram(torch.tensor([0.02] * 3 + [0.5]), torch.zeros(4).long(), 1)[0]
    drawn = draw_lengths(m, 0, 64, settings())
    assert drawn is not None and ((drawn < 0.03) | (drawn > 0.45)).all()
    assert {bool(v > 0.1) for v in drawn} == {True, False}  # both kinds, not their mean
    assert torch.equal(drawn, draw_lengths(m, 0, 64, settings()))
    assert not torch.equal(drawn, draw_lengths(m, 0, 64, settings(seed=1)))
    for n in (4, 8, 16):  # any set is spread as the class is: a quarter long, give or take one
        for seed in range(5):
            long = int((draw_lengths(m, 1, n, settings(seed=seed)) > 0.1).sum())
            assert abs(long - n / 4) <= 1, (n, seed, long)
    assert torch.equal(drawn[:5], draw_lengths(m, 0, 5, settings()))  # --n 5 = first 5 of 64
    assert draw_lengths(m, 0, 3, settings(length=0.25)).tolist() == pytest.approx([0.25] * 3)
    assert draw_lengths(m, None, 3, settings()) is None  # unconditional sounds
    noise = make_noise(3, (1, 1000), 0)
    short, long = generate(m, noise, 0, settings(0.02)), generate(m, noise, 0, settings(0.5))
    assert not torch.allclose(short, long)
    path = tmp_path / "model.pt"  # the counts travel with the weights
    save_checkpoint(path, **checkpoint_state(m, make_ema(m, 0.99), {"train": {}}, 5))
    loaded = load_model(path)
    assert torch.equal(loaded.length_counts, m.length_counts)
    torch.testing.assert_close(
        generate(loaded, noise, 0, settings()), generate(m, noise, 0, settings())
    )


def test_training_counts_the_lengths_of_its_clips() -> None:
    m = model()
    audio = torch.from_numpy(np.stack([hit(0.01, seed=i) for i in range(6)] + [hit(0.1)] * 2))
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    clips = Clips(audio, labels, list(CLASSES), SR, total=8, fingerprint="x")
    count_lengths(m, MemoryBatches(clips, 3, seed=0), MEASURE)
    assert m.length_counts.sum(1).tolist()[:2] == [6, 2]  # every clip once
    assert hl.describe(m.length_counts[0]) != hl.describe(m.length_counts[1])


def test_the_lowest_noise_levels_can_be_told_a_longer_length() -> None:
    """sample.length_stretch: the steps at noise levels up to length_below are told each
    length times the stretch, the others the length itself; over every step it is the same
    as asking for the longer length, and 1 changes nothing."""
    m = model(length_map=True)
    told: list[float] = []
    m.unet.register_forward_hook(lambda mod, args, out: told.append(float(args[3][0])))
    noise = make_noise(2, (1, 1000), 0)
    plain = generate(m, noise, 0, settings(0.1))  # levels 1, 2/3, 1/3: 3 calls of 2 sounds
    assert told == pytest.approx([0.1] * 3)
    told.clear()
    mixed = generate(m, noise, 0, replace(settings(0.1), length_stretch=2.0, length_below=0.4))
    assert told == pytest.approx([0.1, 0.1, 0.2])
    whole = replace(settings(0.1), length_stretch=2.0, length_below=1.0)
    torch.testing.assert_close(generate(m, noise, 0, whole), generate(m, noise, 0, settings(0.2)))
    assert not torch.allclose(mixed, plain)
    torch.testing.assert_close(
        generate(m, noise, 0, replace(settings(0.1), length_stretch=1.0, length_below=1.0)), plain
    )
