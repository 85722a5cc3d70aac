"""pad: every clip leaves exactly ``audio.duration`` long, the start untouched."""

from __future__ import annotations

import numpy as np
import pytest

from core.params import parse
from pipeline.audio import fix_length
from pipeline.stages.pad import clip_samples

SR = 44100


def clip(channels: int, n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(-0.9, 0.9, (channels, n))).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2])
def test_short_clip_is_zero_padded(channels: int) -> None:
    x = clip(channels, 1000)
    y = fix_length(x, SR, SR, 20.0)
    assert y.shape == (channels, SR)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[:, :1000], x)
    assert not y[:, 1000:].any()


@pytest.mark.parametrize("channels", [1, 2])
def test_long_clip_is_cropped_with_a_fade(channels: int) -> None:
    x = clip(channels, 60000)
    y = fix_length(x, SR, SR, 20.0)
    k = round(20.0 * SR / 1000)
    assert y.shape == (channels, SR)
    np.testing.assert_array_equal(y[:, : SR - k], x[:, : SR - k])  # the start is untouched
    assert np.abs(y[:, -1]).max() < 1e-7  # faded to zero at the cut
    assert np.all(np.abs(y[:, -k:]) <= np.abs(x[:, SR - k : SR]))
    assert not np.array_equal(y[:, -k:], x[:, SR - k : SR])


def test_crop_shorter_than_the_fade() -> None:
    x = clip(1, 5000)
    y = fix_length(x, 100, SR, 20.0)
    assert y.shape == (1, 100)
    assert y[0, 0] == x[0, 0]
    assert abs(float(y[0, -1])) < 1e-7


def test_exact_length_is_preserved() -> None:
    x = clip(2, SR)
    y = fix_length(x, SR, SR, 20.0)
    np.testing.assert_array_equal(y, x)


def target_samples(params: dict, audio: dict) -> int:
    """The stage's clip length for these ``audio`` settings."""
    return clip_samples(parse({**params, "audio": {**params["audio"], **audio}}))


@pytest.mark.parametrize(
    ("sample_rate", "duration", "n"), [(44100, 1.0, 44100), (48000, 0.5, 24000), (22050, 0.2, 4410)]
)
def test_target_samples(params: dict, sample_rate: int, duration: float, n: int) -> None:
    assert target_samples(params, {"sample_rate": sample_rate, "duration": duration}) == n


def test_target_samples_of_the_real_params(params: dict) -> None:
    audio = params["audio"]
    assert target_samples(params, audio) == round(audio["sample_rate"] * audio["duration"])
