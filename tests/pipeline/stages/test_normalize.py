"""normalize: channel mixing, resampling, DC removal and level (pipeline.audio), on
synthesized signals, with the settings the stage (pipeline.stages.normalize) passes in."""

from __future__ import annotations

import copy
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest

from core.errors import Reject
from core.params import parse
from pipeline import audio as nz

SR = 44100
REPO = Path(__file__).resolve().parents[3]
MINUS_1_DBFS = 10 ** (-1 / 20)


def noise(shape: tuple[int, int], scale: float = 0.1, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None, :]


def hit(sr: int, lead_s: float = 0.3, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Silence, then a decaying noise burst: a one-shot with a silent lead."""
    n, lead = round(seconds * sr), round(lead_s * sr)
    t = np.arange(n - lead) / sr
    body = np.random.default_rng(seed).standard_normal(n - lead) * np.exp(-t / 0.05)
    x = np.zeros(n)
    x[lead:] = 0.5 * body / np.abs(body).max()
    return x.astype(np.float32)[None, :]


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * sr / x.size)


def lufs(x: np.ndarray, sr: int) -> float:
    return float(pyloudnorm.Meter(sr).integrated_loudness(x.T.astype(np.float64)))


def _normalize(x: np.ndarray, sr: int, audio: dict, norm: dict) -> tuple[np.ndarray, int]:
    """pipeline.audio.normalize with the ``audio`` and ``normalize`` sections' values, as the
    stage passes them."""
    return nz.normalize(
        x,
        sr,
        sample_rate=int(audio["sample_rate"]),
        channels=int(audio["channels"]),
        dc_cutoff_hz=float(norm["dc_cutoff_hz"]),
        resample_quality=str(norm["resample_quality"]),
        silence_db=float(norm["silence_db"]),
        mode=str(norm["mode"]),
        peak_db=float(norm["peak_db"]),
        lufs=float(norm["lufs"]),
    )


# ----------------------------------------------------------------------------- mix_channels


def test_mix_channels_mono_to_stereo_duplicates() -> None:
    x = noise((1, 1000))
    y = nz.mix_channels(x, 2)
    assert y.shape == (2, 1000)
    np.testing.assert_array_equal(y[0], x[0])
    np.testing.assert_array_equal(y[1], x[0])


def test_mix_channels_stereo_to_mono_is_the_mean() -> None:
    x = noise((2, 1000))
    y = nz.mix_channels(x, 1)
    assert y.shape == (1, 1000)
    np.testing.assert_allclose(y[0], (x[0] + x[1]) / 2, atol=1e-7)
    # Opposite polarity cancels: a mean, not the first channel or a sum.
    np.testing.assert_allclose(nz.mix_channels(np.stack([x[0], -x[0]]), 1), 0.0, atol=1e-7)


def test_mix_channels_six_to_mono_keeps_every_channel() -> None:
    x = np.arange(1, 7, dtype=np.float32)[:, None] * np.ones((6, 10), np.float32)
    y = nz.mix_channels(x, 1)
    assert y.shape == (1, 10)
    np.testing.assert_allclose(y, 3.5, atol=1e-6)  # mean of 1..6


def test_mix_channels_six_to_stereo_folds_through_mono() -> None:
    x = noise((6, 500))
    y = nz.mix_channels(x, 2)
    assert y.shape == (2, 500)
    np.testing.assert_allclose(y[0], x.mean(axis=0), atol=1e-7)
    np.testing.assert_array_equal(y[0], y[1])


def test_mix_channels_same_count_is_unchanged() -> None:
    x = noise((2, 100))
    np.testing.assert_array_equal(nz.mix_channels(x, 2), x)


# ----------------------------------------------------------------------------- resample


@pytest.mark.parametrize(
    ("sr_in", "sr_out", "n"),
    [(48000, 44100, 48000), (22050, 44100, 22050), (44100, 48000, 12345), (48000, 44100, 777)],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_resample_length(sr_in: int, sr_out: int, n: int, channels: int) -> None:
    y = nz.resample(noise((channels, n)), sr_in, sr_out)
    assert y.shape[0] == channels
    assert abs(y.shape[1] - round(n * sr_out / sr_in)) <= 1
    assert y.dtype == np.float32
    assert np.isfinite(y).all()


@pytest.mark.parametrize("sr_in", [22050, 48000])
def test_resample_keeps_a_sine_at_its_frequency(sr_in: int) -> None:
    y = nz.resample(sine(1000.0, 1.0, sr_in), sr_in, SR)
    assert abs(dominant_hz(y[0], SR) - 1000.0) <= 1.0
    # and at its level, away from the edges
    assert np.abs(y[0, 1000:-1000]).max() == pytest.approx(0.5, rel=0.01)


def test_resample_same_rate_is_a_no_op() -> None:
    x = noise((1, 1000))
    np.testing.assert_array_equal(nz.resample(x, SR, SR), x)


# ----------------------------------------------------------------------------- remove_dc


def test_remove_dc_removes_a_constant_offset() -> None:
    clean = hit(SR)
    x = clean + np.float32(0.05)
    y = nz.remove_dc(x, SR, 10.0)
    lead = round(0.3 * SR)
    assert y.shape == x.shape
    assert np.abs(y[:, :lead]).max() < 1e-4  # the silent lead is silent again
    assert abs(float(y.mean())) < 1e-3  # input mean is about 0.05
    # and the sound itself survives
    assert np.corrcoef(y[0], clean[0])[0, 1] > 0.99


def test_remove_dc_per_channel() -> None:
    clean = np.concatenate([hit(SR, seed=1), hit(SR, seed=2)])
    x = clean + np.array([[0.03], [-0.04]], dtype=np.float32)
    y = nz.remove_dc(x, SR, 10.0)
    lead = round(0.3 * SR)
    assert np.abs(y[:, :lead]).max() < 1e-4
    assert np.abs(y.mean(axis=1)).max() < 1e-3


def test_remove_dc_off_when_cutoff_is_zero() -> None:
    x = hit(SR) + np.float32(0.05)
    np.testing.assert_array_equal(nz.remove_dc(x, SR, 0.0), x)


@pytest.mark.parametrize("sr", [22050, 44100, 96000])
def test_the_filter_state_is_scipys_steady_state(sr: int) -> None:
    """steady_state is lfilter_zi's answer (the state after a constant 1 forever), checked for
    the DC high-pass at three rates and for filters of other orders."""
    from scipy.signal import butter, cheby1, lfilter, lfilter_zi

    filters = [
        butter(2, 10.0 / (sr / 2), btype="highpass"),
        butter(5, 0.25),
        cheby1(4, 1, 0.3),
        (np.array([1.0, 0.5]), np.array([2.0, -0.5, 0.1])),  # a[0] != 1, b shorter than a
    ]
    for b, a in filters:
        zi = nz.steady_state(b, a)
        np.testing.assert_allclose(zi, lfilter_zi(b, a), rtol=1e-9, atol=1e-12)
        y, _ = lfilter(b, a, np.ones(64), zi=zi)  # started in steady state: no transient
        np.testing.assert_allclose(y, y[0], atol=1e-9)


REMOVE_DC = """
import sys
import numpy as np
from pipeline.audio import remove_dc
x = np.random.default_rng(0).standard_normal((2, 44100)).astype(np.float32) + np.float32(0.05)
sys.stdout.write(remove_dc(x, 22050, 10.0).tobytes().hex())
"""


def _avx512() -> bool:
    try:
        return "avx512f" in Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False


@pytest.mark.skipif(platform.machine() != "x86_64" or not _avx512(), reason="needs AVX-512")
def test_remove_dc_is_the_same_under_every_blas_kernel() -> None:
    """A LAPACK solve's last bits depend on the BLAS kernel the CPU gets (OpenBLAS's Haswell and
    SkylakeX kernels gave scipy's lfilter_zi different bits, and the data stages different data
    from the same files), so the DC filter's state is computed without one: the committed
    dvc.lock holds on every x86-64 CPU."""
    out = []
    for kernel in ("Haswell", "SkylakeX"):
        env = {**os.environ, "OPENBLAS_CORETYPE": kernel, "PYTHONPATH": str(REPO)}
        run = subprocess.run(
            [sys.executable, "-c", REMOVE_DC], env=env, capture_output=True, text=True, check=True
        )
        out.append(run.stdout)
    assert out[0] == out[1]


# ----------------------------------------------------------------------------- levels


@pytest.mark.parametrize("start_peak", [0.01, 0.3, 1.7])
def test_peak_normalize_sets_the_peak(start_peak: float) -> None:
    x = noise((2, 2000))
    x *= np.float32(start_peak / np.abs(x).max())
    y = nz.peak_normalize(x, -1.0)
    assert abs(float(np.abs(y).max()) - MINUS_1_DBFS) < 1e-6
    np.testing.assert_allclose(y, x * (MINUS_1_DBFS / start_peak), rtol=1e-5, atol=1e-7)


def test_peak_normalize_leaves_silence_alone() -> None:
    x = np.zeros((1, 100), np.float32)
    np.testing.assert_array_equal(nz.peak_normalize(x, -1.0), x)


@pytest.mark.parametrize("target", [-30.0, -23.0, -16.0])
def test_loudness_normalize_reaches_the_target(target: float) -> None:
    x = noise((1, SR), scale=0.05)
    y = nz.loudness_normalize(x, SR, target, -1.0)
    assert abs(lufs(y, SR) - target) < 0.5
    assert np.abs(y).max() <= MINUS_1_DBFS + 1e-6


def test_loudness_normalize_never_exceeds_the_ceiling() -> None:
    x = noise((2, SR), scale=0.05)
    y = nz.loudness_normalize(x, SR, -3.0, -1.0)  # -3 LUFS of noise would peak above 0 dBFS
    assert abs(float(np.abs(y).max()) - MINUS_1_DBFS) < 1e-6
    assert lufs(y, SR) < -3.0


def test_loudness_normalize_short_clip() -> None:
    x = hit(SR, lead_s=0.0, seconds=0.1)  # shorter than one 400 ms gating block
    y = nz.loudness_normalize(x, SR, -20.0, -1.0)
    assert y.shape == x.shape
    assert np.isfinite(y).all()
    assert 0.0 < np.abs(y).max() <= MINUS_1_DBFS + 1e-6


# ----------------------------------------------------------------------------- normalize()


def test_normalize_end_to_end(params: dict) -> None:
    audio, norm = params["audio"], params["normalize"]
    x = np.concatenate([hit(48000, seed=3), hit(48000, seed=4)]) * np.float32(0.2)
    x += np.float32(0.02)  # a DC offset
    y, sr = _normalize(x, 48000, audio, norm)
    assert sr == audio["sample_rate"] == 44100
    assert y.shape[0] == audio["channels"] == 1
    assert abs(y.shape[1] - 44100) <= 1
    assert y.dtype == np.float32
    assert abs(float(np.abs(y).max()) - 10 ** (norm["peak_db"] / 20)) < 1e-6
    assert np.abs(y[:, : round(0.25 * SR)]).max() < 1e-4  # the offset is gone from the lead


def test_normalize_to_stereo(params: dict) -> None:
    audio = {**params["audio"], "channels": 2}
    y, sr = _normalize(hit(22050), 22050, audio, params["normalize"])
    assert sr == 44100
    assert y.shape == (2, 44100)
    np.testing.assert_array_equal(y[0], y[1])


def test_normalize_lufs_mode(params: dict) -> None:
    norm = {**params["normalize"], "mode": "lufs", "lufs": -20.0}
    y, _ = _normalize(noise((1, SR), scale=0.3), SR, params["audio"], norm)
    assert abs(lufs(y, SR) - (-20.0)) < 0.5
    assert np.abs(y).max() <= 10 ** (norm["peak_db"] / 20) + 1e-6


@pytest.mark.parametrize("level", [0.0, 1e-4])  # all zeros, -80 dBFS
def test_normalize_rejects_silence(params: dict, level: float) -> None:
    x = sine(440.0, 0.5, SR, amp=level)
    with pytest.raises(Reject) as exc:
        _normalize(x, SR, params["audio"], params["normalize"])
    assert exc.value.code == "silent"


def test_normalize_keeps_a_quiet_but_audible_clip(params: dict) -> None:
    x = sine(440.0, 0.5, SR, amp=10 ** (-50 / 20))  # above silence_db = -60
    y, _ = _normalize(x, SR, params["audio"], params["normalize"])
    assert abs(float(np.abs(y).max()) - MINUS_1_DBFS) < 1e-6


def test_normalize_rejects_an_unknown_mode(params: dict) -> None:
    # An unknown mode never reaches the maths: params.yaml is checked before any work.
    norm = copy.deepcopy(params["normalize"])
    norm["mode"] = "rms"
    with pytest.raises(ValueError, match="mode"):
        parse({**params, "normalize": norm})
