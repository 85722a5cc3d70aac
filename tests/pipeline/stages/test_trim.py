"""trim: the onset lands at the pre-roll, the attack is untouched, trailing silence goes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.errors import Reject
from pipeline.audio import fade, sound_bounds, tail_floor, trim

SR = 44100
ONE_MS = 44  # samples at 44.1 kHz


def burst(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A decaying tone plus noise that starts at full level on its first sample."""
    t = np.arange(round(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    y = (np.cos(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(t.size)) * np.exp(-t / 0.04)
    y /= np.abs(y).max()
    y[0] = 1.0
    return (0.8 * y).astype(np.float32)


def one_shot(
    sr: int = SR, lead_s: float = 0.3, body_s: float = 0.4, end_s: float = 0.3, floor: float = 0.0
) -> np.ndarray:
    """``lead_s`` of silence (or a noise floor far below the threshold), a burst, then silence."""
    lead, end = round(lead_s * sr), round(end_s * sr)
    x = np.concatenate([np.zeros(lead), burst(sr, body_s), np.zeros(end)])
    x += np.random.default_rng(9).standard_normal(x.size) * floor
    return x.astype(np.float32)[None, :]


def above(x: np.ndarray, threshold_db: float) -> np.ndarray:
    env = np.max(np.abs(x), axis=0)
    return np.flatnonzero(env >= env.max() * 10 ** (-threshold_db / 20))


@pytest.fixture
def cfg(params: dict) -> dict[str, Any]:
    return {k: float(v) for k, v in params["trim"].items()}


def run(x: np.ndarray, cfg: dict[str, Any], sr: int = SR) -> np.ndarray:
    return trim(
        x,
        sr,
        cfg["threshold_db"],
        cfg["preroll_ms"],
        cfg["fade_in_ms"],
        cfg["tail_ms"],
        cfg["fade_out_ms"],
        cfg["window_ms"],
        cfg["gap_ms"],
        cfg["floor_db"],
    )


def test_onset_lands_at_the_preroll(cfg: dict) -> None:
    x = one_shot()
    onset_in = round(0.3 * SR)
    assert above(x, cfg["threshold_db"])[0] == onset_in  # the signal is what it claims
    y = run(x, cfg)
    onset_out = int(above(y, cfg["threshold_db"])[0])
    assert abs(onset_out - cfg["preroll_ms"] * SR / 1000) <= ONE_MS
    assert onset_out > 0


def test_attack_is_bit_identical(cfg: dict) -> None:
    x = one_shot()
    y = run(x, cfg)
    onset_in = round(0.3 * SR)
    onset_out = int(above(y, cfg["threshold_db"])[0])
    fade_out = round(cfg["fade_out_ms"] * SR / 1000)
    kept = y.shape[1] - fade_out - onset_out  # everything from the onset up to the fade-out
    assert kept > round(0.1 * SR)
    np.testing.assert_array_equal(
        y[:, onset_out : onset_out + kept], x[:, onset_in : onset_in + kept]
    )


def test_fade_in_stays_inside_the_preroll(cfg: dict) -> None:
    x = one_shot(floor=1e-4)  # a noise floor (-78 dBFS) the fade has something to act on
    y = run(x, cfg)
    preroll = round(cfg["preroll_ms"] * SR / 1000)
    fade_in = round(cfg["fade_in_ms"] * SR / 1000)
    start = round(0.3 * SR) - preroll
    assert fade_in < preroll
    assert y[0, 0] == 0.0  # the ramp starts at zero: no click at the cut
    assert np.all(np.abs(y[:, :fade_in]) <= np.abs(x[:, start : start + fade_in]))
    assert not np.array_equal(y[:, :fade_in], x[:, start : start + fade_in])
    np.testing.assert_array_equal(y[:, fade_in:preroll], x[:, start + fade_in : start + preroll])


def test_trailing_silence_is_removed(cfg: dict) -> None:
    x = one_shot()
    hot = above(x, cfg["threshold_db"])
    onset, end = int(hot[0]), int(hot[-1]) + 1
    preroll = round(cfg["preroll_ms"] * SR / 1000)
    tail = round(cfg["tail_ms"] * SR / 1000)
    y = run(x, cfg)
    assert y.shape == (1, (end - onset) + preroll + tail)
    assert y.shape[1] < x.shape[1] - round(0.25 * SR)
    assert abs(float(y[0, -1])) < 1e-7  # faded out
    # the last sample above the threshold is still there, untouched
    assert y[0, preroll + (end - 1 - onset)] == x[0, end - 1]


def test_no_leading_cut_when_the_sound_starts_at_zero(cfg: dict) -> None:
    x = one_shot(lead_s=0.0)
    y = run(x, cfg)
    assert y[0, 0] == x[0, 0] == pytest.approx(0.8)
    np.testing.assert_array_equal(y[:, :1000], x[:, :1000])


def test_no_trailing_cut_when_the_sound_runs_to_the_end(cfg: dict) -> None:
    x = one_shot(end_s=0.0)
    t = np.arange(round(0.4 * SR)) / SR
    x[0, -t.size :] += (0.3 * np.exp(-t / 0.3)).astype(np.float32)  # still ringing at the end
    x[0, -1] = 0.5  # loud last sample
    y = run(x, cfg)
    assert y[0, -1] == np.float32(0.5)


def test_stereo_cuts_both_channels_at_the_earliest_onset(cfg: dict) -> None:
    left = one_shot(lead_s=0.3)[0]
    right = 0.5 * one_shot(lead_s=0.25, body_s=0.45)[0]  # earlier, quieter, above threshold
    x = np.stack([left, right]).astype(np.float32)
    y = run(x, cfg)
    preroll = round(cfg["preroll_ms"] * SR / 1000)
    assert y.shape[0] == 2
    assert int(np.flatnonzero(np.abs(y[1]) > 0)[0]) == preroll  # right leads
    shift = round(0.25 * SR) - preroll
    kept = y.shape[1] - round(cfg["fade_out_ms"] * SR / 1000)
    assert kept > round(0.1 * SR)
    np.testing.assert_array_equal(y[:, preroll:kept], x[:, shift + preroll : shift + kept])


def test_other_rates_use_milliseconds(cfg: dict) -> None:
    x = one_shot(sr=48000)
    y = run(x, cfg, sr=48000)
    assert int(above(y, cfg["threshold_db"])[0]) == round(cfg["preroll_ms"] * 48)


@pytest.mark.parametrize("x", [np.zeros((1, 1000)), np.zeros((2, 500)), np.zeros((1, 0))])
def test_silence_is_rejected(cfg: dict, x: np.ndarray) -> None:
    with pytest.raises(Reject) as exc:
        run(x.astype(np.float32), cfg)
    assert exc.value.code == "silent"


def test_sound_bounds_threshold_is_relative_to_the_peak() -> None:
    sr = 8000
    x = one_shot(sr=sr)
    bounds = sound_bounds(x, sr, 40.0, 5.0, 30.0, 6.0)
    assert bounds == sound_bounds(x * 0.001, sr, 40.0, 5.0, 30.0, 6.0)
    # No click, no noise floor: the hit's bounds are its first and last sample above the
    # threshold, exactly.
    hot = above(x, 40.0)
    assert bounds == (int(hot[0]), int(hot[-1]) + 1)


def test_fade_is_a_half_cosine_ramp() -> None:
    up, down = fade(100, rising=True), fade(100, rising=False)
    assert up[0] == 0.0 and up[-1] == pytest.approx(1.0)
    np.testing.assert_array_equal(down, up[::-1])
    assert np.all(np.diff(up) >= 0)


def test_an_isolated_click_before_the_hit_is_not_the_onset(cfg: dict) -> None:
    """The demo kit's hihat_003 case: a -38 dB blip at 0 ms, silence, the hit at 175 ms."""
    x = one_shot(lead_s=0.175)
    x[0, 3] = np.float32(0.8 * 10 ** (-38 / 20))  # within 40 dB of the peak: a sample-level
    assert above(x, cfg["threshold_db"])[0] == 3  # onset search would start at the blip
    y = run(x, cfg)
    onset_out = int(above(y, cfg["threshold_db"])[0])
    assert abs(onset_out - cfg["preroll_ms"] * SR / 1000) <= ONE_MS  # the hit, at the pre-roll
    assert y.shape[1] < x.shape[1] - round(0.15 * SR)  # the 175 ms before it are gone


def test_a_longer_click_separated_by_silence_is_ignored_too(cfg: dict) -> None:
    x = one_shot(lead_s=0.2)
    x[0, 100:300] = 0.05  # a 4.5 ms thump at -24 dB, then 190 ms of silence before the hit
    y = run(x, cfg)
    assert abs(int(above(y, cfg["threshold_db"])[0]) - cfg["preroll_ms"] * SR / 1000) <= ONE_MS


def test_a_clap_s_bursts_stay_one_hit(cfg: dict) -> None:
    """Silences shorter than gap_ms are inside the hit: the first burst is the onset."""
    x = one_shot(lead_s=0.1, body_s=0.05, end_s=0.0)
    second = one_shot(lead_s=0.012, body_s=0.3, end_s=0.1)  # 12 ms after the first burst
    x = np.concatenate([x, second], axis=1)
    y = run(x, cfg)
    assert abs(int(above(y, cfg["threshold_db"])[0]) - cfg["preroll_ms"] * SR / 1000) <= ONE_MS
    assert y.shape[1] > round(0.2 * SR)  # both bursts kept (the first alone is 0.06 s)


def test_a_noise_floor_just_above_the_threshold_does_not_keep_the_whole_tail(cfg: dict) -> None:
    """Noise whose peaks reach 38 dB under the hit's peak (its energy lies far lower) all
    through a 2 s file: the tail is cut where the hit's energy falls into it."""
    floor = 0.8 * 10 ** (-38 / 20) / 3.5  # peaks of Gaussian noise reach about 3.5 sigma
    x = one_shot(lead_s=0.05, body_s=0.4, end_s=1.6, floor=floor)
    assert above(x, cfg["threshold_db"])[-1] > x.shape[1] - round(0.1 * SR)  # samples say: all
    y = run(x, cfg)
    assert y.shape[1] < round(0.45 * SR), y.shape[1] / SR  # the hit and its tail, not 2 s


def floor_tail(sr: int = SR, floor_db: float = -32.0, seconds: float = 1.0) -> np.ndarray:
    """A hit, then a steady noise floor ``floor_db`` under its peak to the end of the file
    (energy within the threshold: a generated sound's residue, a recording's hiss)."""
    x = one_shot(sr, lead_s=0.05, body_s=0.4, end_s=seconds - 0.45)
    noise = np.random.default_rng(4).standard_normal(x.shape[1]) * 0.8 * 10 ** (floor_db / 20)
    return (x + noise).astype(np.float32)


def test_a_steady_floor_within_the_threshold_ends_the_hit(cfg: dict) -> None:
    """A floor 32 dB under the peak, to the end: the hit ends where it meets the floor (its
    amplitude falls 217 dB/s, so about 0.1 s in), not at the end of the file; off, it stays."""
    x = floor_tail()
    y = run(x, cfg)
    assert y.shape[1] < round(0.2 * SR), y.shape[1] / SR
    kept = run(x, {**cfg, "floor_db": 0.0})
    assert kept.shape[1] > round(0.9 * SR), kept.shape[1] / SR


def test_a_slow_decay_is_not_taken_for_a_floor(cfg: dict) -> None:
    """A tail that starts 25 dB down and falls 12 dB/s to the end of the file is the hit's
    own ring (as a long open hat's): kept whole, as with the floor test off."""
    t = np.arange(round(1.2 * SR)) / SR
    ring = np.random.default_rng(5).standard_normal(t.size) * 10 ** ((-25 - 12 * t) / 20)
    x = one_shot(lead_s=0.05, body_s=0.1, end_s=0.0)
    x = np.concatenate([x, (0.8 * ring).astype(np.float32)[None]], axis=1)
    y = run(x, cfg)
    assert y.shape == run(x, {**cfg, "floor_db": 0.0}).shape
    assert y.shape[1] > x.shape[1] - round(0.1 * SR)


def test_the_floor_is_read_only_on_a_flat_deep_tail() -> None:
    """tail_floor: the last block's energy for a flat tail well under the peak; 0 for a
    decaying tail, a sustained loud one, digital silence, or a clip too short to tell."""
    energy = np.concatenate([np.full(50, 1.0), np.full(400, 1e-3)])
    assert tail_floor(energy, 1.0) == pytest.approx(1e-3)
    assert tail_floor(np.concatenate([np.full(50, 1.0), np.full(400, 0.5)]), 1.0) == 0.0
    decaying = 1e-2 * 10 ** (-np.arange(400) * 0.02 / 10)  # 20 dB/s
    assert tail_floor(np.concatenate([np.full(50, 1.0), decaying]), 1.0) == 0.0
    assert tail_floor(np.concatenate([np.full(50, 1.0), np.zeros(400)]), 1.0) == 0.0
    assert tail_floor(np.full(250, 1e-3), 1.0) == 0.0
