"""training.sampling: the four sampling algorithms on their own, without files or the command
line (which test_sample runs end to end), on the trained test network of conftest."""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import pytest
import torch
from drumkit import LENGTH, SAMPLE_RATE, clip

from core import params as core_params
from core.errors import ConfigError
from core.params import Trim
from training import sampling
from training.diffusion import schedule
from training.model import Denoiser
from training.sample_inputs import settings
from training.sampling import (
    Finish,
    Settings,
    finish,
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
    base = {"steps": STEPS, "rho": 1.0, "sampler": "ddim", "guidance": 1.0, "seed": 0,
            "batch_size": 4, "device": torch.device("cpu"), "precision": "fp32", "refine": 2,
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


FINISH = Finish(
    dc_cutoff_hz=10.0,
    trim=Trim(
        threshold_db=40.0,
        preroll_ms=5.0,
        fade_in_ms=1.0,
        tail_ms=20.0,
        fade_out_ms=10.0,
        window_ms=5.0,
        gap_ms=30.0,
        floor_db=6.0,
    ),  # fmt: skip
    fade_out_ms=20.0,
)


def _raw_sound(n: int = SAMPLE_RATE) -> torch.Tensor:
    """What a sampler may leave: a DC offset, a noise floor 50 dB down from the first sample
    on, a hit 100 ms in that decays into it."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(n) / SAMPLE_RATE
    hit = torch.sin(2 * torch.pi * 110 * t) * torch.exp(-t / 0.03)
    x = 0.003 * torch.randn(n, generator=g) + 0.05
    x[round(0.1 * SAMPLE_RATE) :] += 0.9 * hit[: n - round(0.1 * SAMPLE_RATE)]
    return x.view(1, 1, n)


def test_finish_conforms_a_sound_as_the_pipeline_does() -> None:
    """A raw sound leaves without its DC offset, its first sample silent, the hit 5 ms from
    the start (trim's pre-roll) and digital silence after the hit's tail: as the training clips
    are. Its length is kept; without a Finish the output is the sampler's, unchanged."""
    clips = torch.cat([_raw_sound(), _raw_sound()])
    out = finish(clips, SAMPLE_RATE, FINISH)
    assert out.shape == clips.shape and float(out[..., 0].abs().max()) == 0.0
    first_loud = int(torch.nonzero(out[0, 0].abs() > 0.05)[0])
    assert abs(first_loud - round(0.005 * SAMPLE_RATE)) < round(0.003 * SAMPLE_RATE)
    assert float(out[..., round(0.5 * SAMPLE_RATE) :].abs().max()) == 0.0  # the floor is cut
    assert abs(float(out[..., : round(0.2 * SAMPLE_RATE)].mean())) < 0.01  # no offset left
    assert float(out.abs().max()) > 0.8  # the hit is kept
    assert torch.equal(finish(clips, SAMPLE_RATE, None), clips)


def test_finish_ends_a_hit_that_decays_into_a_floor_within_the_threshold() -> None:
    """The residue a generated clap or hat ends on (a steady floor about 36 dB under its hit,
    within trim's 40 dB) is cut where the hit meets it, as trim's ``floor_db`` says; with the
    floor test off it stays to the end of the clip."""
    g = torch.Generator().manual_seed(1)
    x = _raw_sound() - 0.05 + 0.9 * 10 ** (-36 / 20) * torch.randn(SAMPLE_RATE, generator=g)
    out = finish(x, SAMPLE_RATE, FINISH)
    assert float(out[..., round(0.5 * SAMPLE_RATE) :].abs().max()) == 0.0
    off = replace(FINISH, trim=replace(FINISH.trim, floor_db=0.0))
    assert float(finish(x, SAMPLE_RATE, off)[..., -100:].abs().max()) > 0.01


def test_every_mode_steps_on_the_settings_rho(
    model: Denoiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sample.rho`` reaches the solver of new sounds and of variations alike."""
    seen: list[list[float]] = []
    solve = sampling.solve

    def spy(v, x, ts, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append([round(float(t), 4) for t in ts])
        return solve(v, x, ts, *args, **kwargs)

    monkeypatch.setattr(sampling, "solve", spy)
    noise = make_noise(1, (1, LENGTH), 0)
    generate(model, noise, 1, _settings(steps=2, rho=2.0))
    variation(model, noise[0] * 0.1, noise, 0.5, 1, _settings(steps=2, rho=2.0))

    def levels(t_start: float, rho: float) -> list[float]:
        return [round(float(t), 4) for t in schedule(2, t_start, name=model.schedule, rho=rho)]

    assert seen == [levels(1.0, 2.0), levels(0.5, 2.0)]
    assert seen[0] != levels(1.0, 1.0) and seen[1] != levels(0.5, 1.0)


def test_generate_finishes_what_it_makes(model: Denoiser) -> None:
    noise = make_noise(2, (1, LENGTH), 0)
    raw = generate(model, noise, 1, _settings())
    done = generate(model, noise, 1, _settings(finish=FINISH))
    torch.testing.assert_close(done, finish(raw, model.sample_rate, FINISH))
    assert float(done[..., 0].abs().max()) == 0.0 and float(raw[..., 0].abs().max()) > 0


def test_a_network_without_patches_is_not_grid_averaged(model: Denoiser) -> None:
    """Dance Diffusion's U-Net has no patch grid: grid_shifts leaves its sounds as they are."""
    noise = make_noise(2, (1, LENGTH), 0)
    plain = generate(model, noise, 1, _settings())
    torch.testing.assert_close(
        generate(model, noise, 1, _settings(grid_shifts=8, grid_below=1.0)), plain, rtol=0, atol=0
    )


@pytest.mark.parametrize(
    ("key", "value"), [("grid_shifts", 0), ("grid_shifts", 65), ("grid_shifts", 2.5),
                       ("grid_below", -0.1), ("grid_below", 1.5), ("length_stretch", 0.1),
                       ("length_stretch", 5), ("length_below", 1.5)]
)  # fmt: skip
def test_a_bad_grid_setting_names_its_key(params: dict, key: str, value: object) -> None:
    params["sample"][key] = value
    with pytest.raises(ConfigError, match=f"sample.{key} must be"):
        core_params.parse(params)


def test_the_grid_knobs_reach_the_command_lines_settings(params: dict) -> None:
    """params.yaml's sample.grid_* and length_* reach what sample and evaluate sample with."""
    params["sample"].update(grid_shifts=3, grid_below=0.25, length_stretch=1.5, length_below=0.1)
    typed = core_params.parse(params)
    ns = argparse.Namespace(sampler=None, device="cpu", steps=None, guidance=None, seed=None,
                            batch_size=None, no_progress=True)  # fmt: skip
    s = settings(ns, typed.sample, "generate")
    assert (s.grid_shifts, s.grid_below) == (3, 0.25)
    assert (s.length_stretch, s.length_below) == (1.5, 0.1)
