"""The two pitch engines of augment (issue 14): Rubber Band in process (pedalboard) and the
`rubberband` CLI, given the same options, run the same engine (R2 by default, R3 with -3).
On drum-like hits they agree on length and onset and nearly on the spectrum; with R3 they
agree to ~40 dB. One known difference, kept as a strict xfail: pedalboard's R2 in crisp
mode misses the shift of low tones, which the CLI's R2 gets right. Thresholds were measured
and set with margin."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from core.errors import ConfigError
from core.params import parse
from pipeline import variants as ag
from pipeline.stages import augment as stage

SR = 44100
CRISP6 = {"--crisp": "6"}
HITS = [(1, 180.0), (2, 250.0), (3, 120.0)]  # (noise seed, tone Hz)
SHIFTS = [1.0, -1.25]

needs_cli = pytest.mark.skipif(shutil.which("rubberband") is None, reason="no rubberband CLI")


def hit(seed: int, f0: float) -> np.ndarray:
    """A 1 s one-shot: 10 ms of silence, a decaying tone and a short noise burst on top."""
    t = np.arange(SR - 441) / SR
    noise = np.random.default_rng(seed).standard_normal(t.size) * np.exp(-t / 0.01)
    x = np.zeros(SR)
    x[441:] = 0.8 * np.sin(2 * np.pi * f0 * t) * np.exp(-t / 0.15) + 0.5 * noise
    return (0.9 * x / np.abs(x).max()).astype(np.float32)[None, :]


def dominant_hz(x: np.ndarray) -> float:
    """The strongest frequency after the first 60 ms (past the noise burst, so the tone's), to
    0.25 Hz (zero-padded to 4 s)."""
    y = x[0, round(0.06 * SR) :]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size), n=4 * SR))
    return float(np.argmax(spectrum) * SR / (4 * SR))


def onset(x: np.ndarray) -> int:
    return int(np.flatnonzero(np.abs(x[0]) >= 0.1 * np.abs(x).max())[0])


def spectrum_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of the log-magnitude spectra: 1 = the same colour."""
    la, lb = (np.log1p(np.abs(np.fft.rfft(y[0]))) for y in (a, b))
    return float(np.corrcoef(la, lb)[0, 1])


def snr_db(ref: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((y - ref) ** 2)))


R3 = {"-3": ""}  # pyrubberband passes "-3" then an empty word, which the CLI ignores


@pytest.fixture(scope="module")
def shifted() -> dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(input, pedalboard, CLI) per engine options, hit and shift."""
    out = {}
    for name, rbargs in (("r2", CRISP6), ("r3", R3)):
        for seed, f0 in HITS:
            x = hit(seed, f0)
            for s in SHIFTS:
                pb = ag.pitch_shift(x, SR, s, rbargs, engine="pedalboard")
                cli = None
                if shutil.which("rubberband"):
                    cli = ag.pitch_shift(x, SR, s, rbargs, engine="rubberband")
                out[name, seed, s] = (x, pb, cli)
    return out


def ratio(y: np.ndarray, x: np.ndarray) -> float:
    return dominant_hz(y) / dominant_hz(x)


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize(("seed", "f0"), HITS)
def test_pedalboard_r3_shifts_by_the_ratio(shifted: dict, seed: int, f0: float, shift: float):
    x, pb, _ = shifted["r3", seed, shift]
    assert pb.shape == x.shape and pb.dtype == np.float32
    assert ratio(pb, x) == pytest.approx(2 ** (shift / 12), rel=0.005)


@pytest.mark.xfail(strict=True, reason="pedalboard's R2 crisp mode misses low tones' shift")
def test_pedalboard_r2_crisp_shifts_low_tones(shifted: dict) -> None:
    """Known (issue 14): measured 120 Hz +1 st -> 120.25 Hz (the CLI: 127.25 Hz). Strict, so
    a pedalboard that fixes it turns this red and the note can go."""
    for seed, _f0 in HITS:
        for shift in SHIFTS:
            x, pb, _ = shifted["r2", seed, shift]
            assert ratio(pb, x) == pytest.approx(2 ** (shift / 12), rel=0.005)


@needs_cli
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize(("seed", "f0"), HITS)
@pytest.mark.parametrize("engine", ["r2", "r3"])
def test_cli_shifts_by_the_ratio(shifted: dict, engine: str, seed: int, f0: float, shift: float):
    x, _, cli = shifted[engine, seed, shift]
    assert cli.shape == x.shape
    assert ratio(cli, x) == pytest.approx(2 ** (shift / 12), rel=0.005)


@needs_cli
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize(("seed", "f0"), HITS)
def test_engines_agree_on_r2_crisp_6(shifted: dict, seed: int, f0: float, shift: float):
    """params.yaml's setting. Measured: onsets equal to the sample, log-spectrum correlation
    0.998-0.9999, SNR between the two waveforms 5.2-17.2 dB (see the xfail above)."""
    x, pb, cli = shifted["r2", seed, shift]
    assert cli.shape == pb.shape == x.shape
    assert abs(onset(pb) - onset(cli)) <= 4
    assert abs(onset(pb) - onset(x)) <= 44  # 1 ms
    assert spectrum_corr(pb, cli) >= 0.99
    assert snr_db(cli, pb) >= 3.0


@needs_cli
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize(("seed", "f0"), HITS)
def test_engines_agree_on_r3(shifted: dict, seed: int, f0: float, shift: float) -> None:
    """Measured: SNR 38.6-41.4 dB (the CLI's 16-bit round trip), onsets equal."""
    x, pb, cli = shifted["r3", seed, shift]
    assert onset(pb) == onset(cli)
    assert snr_db(cli, pb) >= 30.0


def test_pedalboard_is_deterministic() -> None:
    x = hit(7, 200.0)
    a, b = (ag.pitch_shift(x, SR, 1.5, CRISP6, engine="pedalboard") for _ in range(2))
    assert a.tobytes() == b.tobytes()


def test_stereo_channels_stay_in_place() -> None:
    x = np.concatenate([hit(1, 150.0), hit(2, 300.0)])
    y = ag.pitch_shift(x, SR, 12.0, CRISP6, engine="pedalboard")
    assert y.shape == x.shape
    assert dominant_hz(y[:1]) == pytest.approx(300.0, rel=0.02)
    assert dominant_hz(y[1:]) == pytest.approx(600.0, rel=0.02)


# ----------------------------------------------------------------------------- options


def test_crisp_6_is_no_lamination_and_a_short_window_on_r2() -> None:
    opts, together = ag.pedalboard_options(CRISP6)
    assert opts == {
        "high_quality": False,
        "transient_mode": "crisp",
        "transient_detector": "compound",
        "retain_phase_continuity": False,
        "use_long_fft_window": False,
        "use_time_domain_smoothing": False,
        "preserve_formants": False,
    }
    assert not together


def test_flags_map_and_crispness_overrides_them() -> None:
    opts, together = ag.pedalboard_options(
        {"--no-transients": "", "-F": "", "-3": "", "--centre-focus": "", "-c": "0"}
    )
    assert opts["preserve_formants"] and opts["high_quality"] and together
    assert opts["transient_mode"] == "smooth" and opts["use_long_fft_window"] is True
    assert ag.pedalboard_options({"--detector-soft": ""})[0]["transient_detector"] == "soft"
    assert ag.pedalboard_options({})[0]["retain_phase_continuity"] is True


@pytest.mark.parametrize("args", [{"--crisp": "7"}, {"--crisp": "x"}, {"--timemap": "m.txt"}])
def test_options_without_an_equivalent_are_refused(args: dict) -> None:
    with pytest.raises(ValueError, match="rubberband_args"):
        ag.pedalboard_options(args)


def test_stage_refuses_them_before_running(params: dict) -> None:
    params["augment"]["pitch_engine"] = "pedalboard"
    params["augment"]["rubberband_args"] = {"--crisp": 6, "--timemap": "m.txt"}
    with pytest.raises(ConfigError, match="augment.rubberband_args --timemap"):
        stage.check(parse(params))
    params["augment"]["pitch_engine"] = "rubberband"
    stage.check(parse(params))  # the CLI takes what it takes


def test_stage_command_exits_2_before_touching_a_file(
    params: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`python -m pipeline.stages.augment` with an option pedalboard cannot honour: one line,
    exit 2, no output folder, no rejects list."""
    params["augment"]["pitch_engine"] = "pedalboard"
    params["augment"]["rubberband_args"] = {"--crisp": 6, "--timemap": "m.txt"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    out = tmp_path / "data" / "augmented"
    argv = [str(tmp_path / "labeled"), str(out), "--params", str(tmp_path / "params.yaml")]
    rc = stage.main([*argv, "--reports", str(tmp_path / "r"), "--attribution", "A.md"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and "--timemap" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_a_missing_engine_is_one_line(params: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage.importlib.util, "find_spec", lambda name: None)
    params["augment"]["pitch_engine"] = "pedalboard"
    with pytest.raises(ConfigError, match="pip install pedalboard"):
        stage.check(parse(params))
    params["augment"]["pitch_engine"] = "rubberband"
    monkeypatch.setattr(stage.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="rubberband` CLI"):
        stage.check(parse(params))
    params["augment"]["kinds"] = ["gain"]  # no pitch variant: no engine needed
    stage.check(parse(params))


def decay_db_per_s(x: np.ndarray) -> float:
    """How fast the tone dies away: the slope of its level (10 ms frames, 0.1-0.5 s)."""
    frames = x[0, round(0.1 * SR) : round(0.5 * SR)].reshape(-1, SR // 100)
    level = 10 * np.log10((frames.astype(np.float64) ** 2).mean(1))
    return float(np.polyfit(np.arange(len(level)) / 100, level, 1)[0])


@pytest.mark.parametrize("shift", [*SHIFTS, 1.5, -1.5])
@pytest.mark.parametrize(("seed", "f0"), HITS)
def test_resample_repitches_as_a_sampler_does(seed: int, f0: float, shift: float) -> None:
    """The in-process default: every tone moves by the ratio (the low ones too, where
    pedalboard's crisp R2 fails), the hit plays that much faster or slower, its attack stays
    where it was to within a millisecond, and the clip keeps its length."""
    x = hit(seed, f0)
    y = ag.pitch_shift(x, SR, shift, CRISP6, engine="resample")
    r = 2 ** (shift / 12)
    assert y.shape == x.shape and y.dtype == np.float32
    assert ratio(y, x) == pytest.approx(r, rel=0.005)
    assert decay_db_per_s(y) == pytest.approx(decay_db_per_s(x) * r, rel=0.02)
    assert abs(onset(y) - onset(x)) <= SR // 1000
    assert np.abs(y).max() == pytest.approx(np.abs(x).max(), rel=1e-3)
    assert np.array_equal(y, ag.pitch_shift(x, SR, shift, CRISP6, engine="resample"))


def test_resample_keeps_stereo_channels_apart() -> None:
    x = np.concatenate([hit(1, 180.0), hit(2, 250.0)])
    y = ag.pitch_shift(x, SR, 1.0, {}, engine="resample")
    assert [ratio(y[c : c + 1], x[c : c + 1]) for c in (0, 1)] == pytest.approx(
        [2 ** (1 / 12)] * 2, rel=0.005
    )
