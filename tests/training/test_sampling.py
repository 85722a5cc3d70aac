"""training.sampling: the four sampling algorithms on their own, without files or the command
line (which test_sample runs end to end), on the trained test network of conftest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from drumkit import LENGTH, SAMPLE_RATE, clip

from training.model import Denoiser
from training.sampling import (
    Settings,
    generate,
    inpaint,
    interpolate,
    join_head,
    make_noise,
    variation,
)

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 6
KEEP = round(30 * SAMPLE_RATE / 1000)  # samples of --keep-ms 30


def _settings(**changes: object) -> Settings:
    base = {"steps": STEPS, "sampler": "ddim", "guidance": 1.0, "seed": 0, "batch_size": 4,
            "device": torch.device("cpu"), "precision": "fp32", "refine": 2,
            "progress": False}  # fmt: skip
    return Settings(**{**base, **changes})


def test_from_init_with_strength_0_returns_the_clip(model: Denoiser) -> None:
    init = torch.from_numpy(clip("kick", 1))
    noise = make_noise(3, init.shape, 0)
    for out in (
        variation(model, init, noise, 0.0, 1, _settings()),
        inpaint(model, init, noise, KEEP, 0.0, 1, _settings()),
    ):
        assert out.shape == (3, 1, LENGTH) and all(torch.equal(o, init) for o in out)


def test_noise_is_drawn_in_order_from_the_seed() -> None:
    eight = make_noise(8, (1, 64), 3)
    assert torch.equal(make_noise(3, (1, 64), 3), eight[:3])
    assert not torch.equal(make_noise(3, (1, 64), 4), eight[:3])


def test_batches_do_not_change_what_is_sampled(model: Denoiser) -> None:
    noise = make_noise(3, (1, LENGTH), 0)
    one = generate(model, noise, 2, _settings(batch_size=1, guidance=2.0))
    three = generate(model, noise, 2, _settings(batch_size=3, guidance=2.0))
    assert one.shape == (3, 1, LENGTH) and one.dtype == torch.float32
    torch.testing.assert_close(one, three, rtol=0, atol=1e-5)  # kernels differ by batch shape


def test_inpaint_holds_the_head_and_variation_does_not(model: Denoiser) -> None:
    init = torch.from_numpy(clip("snare", 0))
    noise = make_noise(2, init.shape, 1)
    tails = inpaint(model, init, noise, KEEP, 1.0, None, _settings())
    assert all(torch.equal(t[..., :KEEP], init[..., :KEEP]) for t in tails)
    var = variation(model, init, noise, 0.5, None, _settings())
    assert not torch.equal(var[0, ..., :KEEP], init[..., :KEEP])
    with pytest.raises(ValueError, match="strength"):
        variation(model, init, noise, 1.5, None, _settings())


def test_interpolation_has_its_frames_and_needs_two(model: Denoiser) -> None:
    a, b = torch.from_numpy(clip("kick", 0)), torch.from_numpy(clip("hihat", 1))
    frames = interpolate(model, a, b, 3, None, _settings(steps=3))
    assert frames.shape == (3, 1, LENGTH)
    with pytest.raises(ValueError, match="at least 2 frames"):
        interpolate(model, a, b, 1, None, _settings())


def test_join_head_keeps_the_head_exactly_and_turns_a_loud_tail_down() -> None:
    x = np.full((1, 100), 0.5, dtype=np.float32)
    clips = np.stack([np.full((1, 100), 3.0, np.float32), np.full((1, 100), -0.2, np.float32)])
    out = join_head(x, clips, keep=10, fade_n=5)
    assert np.array_equal(out[:, :, :10], np.broadcast_to(x[:, :10], (2, 1, 10)))
    # The loud tail is turned down, not clipped (within the crossfade, where the gain is still
    # gliding, it may pass full scale: the WAV writer clips that).
    assert np.abs(out[:, :, 15:]).max() <= 1.0 + 1e-6
    assert out[1, 0, -1] == np.float32(-0.2)  # a quiet tail is the sampler's own
    assert np.all(np.diff(out[1, 0, 10:16]) <= 0)  # the crossfade glides from 0.5 to -0.2
