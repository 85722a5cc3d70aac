"""training.sample (``python -m training.sample``): the command line's contract, variations,
tail inpainting and interpolation, end to end (the algorithms alone: test_sampling).

A class-conditional project checkpoint of the small ``drumkit`` network (8 kHz, 1024 samples),
trained here for a few steps so that its class conditioning is not zero, and a reduced original
Dance Diffusion ``.ckpt`` (unconditional, stereo). Commands run in-process through
``training.sample.main`` in a temp folder holding params.yaml; one runs as a real subprocess to
check the exit status and the one-line error.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from drumkit import CLASSES, LENGTH, SAMPLE_RATE, clip, env, write_params

from core import params as core_params
from pipeline.audio import db_to_amp, resample
from training import outputs, sample, sample_inputs
from training.checkpoints import load_model, save_checkpoint
from training.diffusion import make_ema
from training.model import Denoiser, config_from_preset
from training.resume import checkpoint_state

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 6  # sample.steps in the tests' params.yaml
PEAK = db_to_amp(-1.0)  # sample.peak_db of the repo's params.yaml
Q24 = 2.0**-23  # one step of a 24-bit WAV, as soundfile decodes it to float
KEEP = round(30 * SAMPLE_RATE / 1000)  # samples of --keep-ms 30


def _write_params(root: Path, **changes: object) -> dict:
    """The repo's params.yaml for the kit, sampling on the CPU with few steps."""
    params = write_params(root)
    params["sample"].update({"device": "cpu", "steps": STEPS, "n": 3, "n_per_class": 2, **changes})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return params


@dataclass
class Cli:
    """``python -m training.sample`` in-process, in ``root``, with the test checkpoint."""

    root: Path
    ckpt: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        rc = sample.main(["--checkpoint", str(self.ckpt), "--no-progress", *args])
        out, err = self.capsys.readouterr()
        return rc, out, err

    def ok(self, *args: str) -> str:
        rc, out, err = self(*args)
        assert rc == 0, err
        assert out.startswith("sample: wrote ") and out.count("\n") == 1, out
        return out


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ckpt: Path
) -> Cli:
    _write_params(tmp_path)
    monkeypatch.chdir(tmp_path)
    return Cli(tmp_path, ckpt, capsys)


def _wav(path: Path, dtype: str = "float64") -> np.ndarray:
    """[channels, samples] as decoded (``int32`` for bit-exact comparisons)."""
    data, _ = sf.read(path, dtype=dtype, always_2d=True)
    return data.T


def _write_wav(path: Path, x: np.ndarray, sr: int = SAMPLE_RATE, subtype: str = "PCM_24") -> Path:
    sf.write(path, x.T, sr, subtype=subtype)
    return path


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative L2 distance of a to b."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _rows(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / outputs.CSV_NAME).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == outputs.CSV_COLUMNS
        return {r["path"]: r for r in reader}


def _one_line_error(rc: int, out: str, err: str, *words: str) -> None:
    assert rc == 2 and out == ""
    assert err.startswith("sample: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err


# ----------------------------------------------------------------------------- generation


def test_help_explains_every_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        sample.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--class", "--n", "--steps", "--seed", "--out", "--checkpoint", "--sampler",
                 "--guidance", "--device", "--batch-size", "--bit-depth", "--init",
                 "--strength", "--keep-ms", "--interpolate", "--frames", "--every-class",
                 "dpmpp-2m"):  # fmt: skip
        assert flag in out


def test_generate_writes_named_files_csv_and_merges_rows(cli: Cli, ckpt: Path) -> None:
    out = cli.ok("--class", "kick", "--n", "3", "--seed", "5")
    folder = cli.root / "outputs" / "samples" / "kick"
    assert "wrote 3 files (3 kick;" in out and "to outputs/samples/kick/ " in out
    names = [f"kick_5_{i}.wav" for i in range(3)]
    assert sorted(p.name for p in folder.iterdir()) == [*names, "samples.csv"]
    for name in names:
        info = sf.info(folder / name)
        assert (info.samplerate, info.frames, info.channels) == (SAMPLE_RATE, LENGTH, 1)
        assert info.subtype == "PCM_24"  # sample.bit_depth
        assert abs(np.abs(_wav(folder / name)).max() - PEAK) <= Q24  # sample.peak_db
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    rows = _rows(folder)
    assert sorted(rows) == names
    for i, name in enumerate(names):
        assert rows[name] == {
            "path": name, "mode": "generate", "class": "kick", "index": str(i), "seed": "5",
            "steps": str(STEPS), "rho": "3.0", "sampler": "dpmpp-2m", "guidance": "1.5",
            "strength": "", "keep_ms": "", "weight": "", "init": "", "checkpoint": str(ckpt),
            "checkpoint_sha256": sha,
            "sample_rate": str(SAMPLE_RATE), "num_samples": str(LENGTH), "channels": "1",
            "bit_depth": "24", "device": "cpu",
        }  # fmt: skip

    # A second run into the same folder adds its rows; a file written again replaces its row.
    cli.ok("--class", "kick", "--n", "2", "--seed", "6", "--sampler", "ddim", "--steps", "4",
           "--guidance", "2.5")  # fmt: skip
    cli.ok("--class", "kick", "--n", "1", "--seed", "5", "--bit-depth", "16")
    merged = _rows(folder)
    assert sorted(merged) == sorted([*names, "kick_6_0.wav", "kick_6_1.wav"])
    assert {k: merged[k] for k in names[1:]} == {k: rows[k] for k in names[1:]}
    assert merged["kick_5_0.wav"]["bit_depth"] == "16"
    assert sf.info(folder / "kick_5_0.wav").subtype == "PCM_16"
    assert abs(np.abs(_wav(folder / "kick_5_0.wav")).max() - PEAK) <= 2.0**-15
    six = merged["kick_6_1.wav"]
    assert (six["seed"], six["steps"], six["sampler"], six["guidance"]) == ("6", "4", "ddim", "2.5")


def test_out_folder_holds_the_files_themselves(cli: Cli) -> None:
    cli.ok("--class", "snare", "--n", "2", "--out", "mine", "--bit-depth", "16")
    assert sorted(p.name for p in (cli.root / "mine").iterdir()) == [
        "samples.csv", "snare_0_0.wav", "snare_0_1.wav"]  # fmt: skip
    assert {sf.info(cli.root / "mine" / f"snare_0_{i}.wav").subtype for i in (0, 1)} == {"PCM_16"}
    assert not (cli.root / "outputs").exists()


def test_seed_decides_the_files(cli: Cli) -> None:
    hihat = ["--class", "hihat", "--seed", "3"]
    cli.ok(*hihat, "--n", "8", "--out", "a")
    cli.ok(*hihat, "--n", "8", "--out", "again")
    cli.ok(*hihat, "--n", "3", "--out", "b", "--batch-size", "1")
    cli.ok("--class", "hihat", "--n", "3", "--seed", "4", "--out", "c", "--batch-size", "2")
    a = [(cli.root / "a" / f"hihat_3_{i}.wav").read_bytes() for i in range(8)]
    again = [(cli.root / "again" / f"hihat_3_{i}.wav").read_bytes() for i in range(8)]
    assert a == again  # byte-identical: same seed, same command, same device
    assert len(set(a)) == 8  # every sound its own noise
    # The first k of --n 8 come from the same noises as --n k, whatever the batch size. Not to
    # the byte: oneDNN picks its convolution kernels by batch shape, which moves the float
    # result by ~1e-6, a few 24-bit steps (measured; so is the tiny preset at 44.1 kHz).
    for i in range(3):
        x, b = _wav(cli.root / "a" / f"hihat_3_{i}.wav"), _wav(cli.root / "b" / f"hihat_3_{i}.wav")
        c = _wav(cli.root / "c" / f"hihat_4_{i}.wav")
        assert _rel(b, x) < 1e-5 and _rel(c, x) > 0.1  # another seed: another sound


def test_samplers_both_run_and_differ(cli: Cli) -> None:
    for sampler in sample.SAMPLERS:
        cli.ok("--class", "clap", "--n", "2", "--sampler", sampler, "--out", sampler)
    for i in range(2):
        ddim = _wav(cli.root / "ddim" / f"clap_0_{i}.wav")
        dpm = _wav(cli.root / "dpmpp-2m" / f"clap_0_{i}.wav")
        assert ddim.shape == dpm.shape == (1, LENGTH) and not np.array_equal(ddim, dpm)
    assert _rows(cli.root / "ddim")["clap_0_0.wav"]["sampler"] == "ddim"


def test_every_class_writes_each_class_and_a_grid(cli: Cli) -> None:
    out = cli.ok("--every-class", "--seed", "2", "--out", "stage")
    assert "2 sounds per class" in out
    root = cli.root / "stage"
    for name in CLASSES:  # sample.n_per_class each, in <out>/<class>/
        assert {p.name for p in (root / name).iterdir()} == {
            f"{name}_2_0.wav", f"{name}_2_1.wav", "samples.csv"}  # fmt: skip
    assert (root / sample.GRID_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The label reaches the network: one noise, four classes, four different sounds.
    firsts = {(root / c / f"{c}_2_0.wav").read_bytes() for c in CLASSES}
    assert len(firsts) == len(CLASSES)
    # ... and each class's files are what --class gives for the same seed.
    cli.ok("--class", "snare", "--n", "2", "--seed", "2", "--out", "single")
    for i in range(2):
        assert (cli.root / "single" / f"snare_2_{i}.wav").read_bytes() == (
            root / "snare" / f"snare_2_{i}.wav"
        ).read_bytes()
    # Without --out: the DVC stage's outputs/samples/<class>/.
    cli.ok("--every-class", "--n", "1")
    default = cli.root / "outputs" / "samples"
    assert all((default / c / f"{c}_0_0.wav").is_file() for c in CLASSES)
    assert (default / sample.GRID_NAME).is_file()


def test_original_dance_diffusion_checkpoint_samples_unconditionally(
    cli: Cli, dd_ckpt: Path
) -> None:
    dd = ["--checkpoint", str(dd_ckpt), "--sample-rate", "8000", "--length", "1024", "--steps", "3"]
    cli.ok(*dd, "--n", "2", "--seed", "1")
    folder = cli.root / "outputs" / "samples" / "unconditional"
    for i in range(2):
        info = sf.info(folder / f"unconditional_1_{i}.wav")
        assert (info.samplerate, info.frames, info.channels) == (8000, 1024, 2)  # a stereo net
    row = _rows(folder)["unconditional_1_0.wav"]
    assert (row["class"], row["guidance"]) == ("unconditional", "1.0")
    assert row["checkpoint_sha256"] == hashlib.sha256(dd_ckpt.read_bytes()).hexdigest()
    _one_line_error(*cli(*dd, "--class", "kick"), "unconditional", "leave out --class")


def test_guidance_without_a_class_is_noted_and_not_recorded(cli: Cli) -> None:
    rc, _, err = cli("--guidance", "3", "--n", "1")
    assert rc == 0 and "--guidance needs --class" in err
    row = _rows(cli.root / "outputs" / "samples" / "unconditional")["unconditional_0_0.wav"]
    assert (row["class"], row["guidance"]) == ("unconditional", "1.0")


def test_hit_ms_asks_a_length_model_for_a_length(cli: Cli, tmp_path: Path) -> None:
    """--hit-ms reaches a model told lengths (other lengths, other files; the same length,
    the same files); a model without them notes that it ignores it."""
    rc, _, err = cli("--class", "kick", "--n", "1", "--hit-ms", "60", "--out", "plain")
    assert rc == 0 and "--hit-ms needs a model told lengths" in err
    torch.manual_seed(0)
    preset = {"arch": "fold", "io_channels": 1, "fold": 8, "channels": [16, 32], "blocks": 1,
              "factor": 4, "heads": 2, "pos": 4, "class_dim": 16, "lengths": True}  # fmt: skip
    model = Denoiser(config_from_preset(preset), CLASSES, SAMPLE_RATE, LENGTH, 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # a non-zero output
    model.length_counts[0, 40] = 3  # kicks of 2 ** (-8 + 40.5 * 10 / 80) s = 131 ms
    cli.ckpt = tmp_path / "lengths.pt"
    save_checkpoint(cli.ckpt, **checkpoint_state(model, make_ema(model, 0.9), {"train": {}}, 1))
    with pytest.raises(SystemExit):
        sample.main(["--checkpoint", str(cli.ckpt), "--help"])
    assert "Median hit lengths: kick 131 ms, snare none" in " ".join(
        cli.capsys.readouterr().out.split()
    )
    got = {}
    for ms, out in (("30", "a"), ("600", "b"), ("30", "c")):
        rc, _, err = cli("--class", "kick", "--n", "1", "--hit-ms", ms, "--out", out)
        assert rc == 0 and "note" not in err
        got[out] = _wav(cli.root / out / "kick_0_0.wav")
    assert np.array_equal(got["a"], got["c"]) and not np.array_equal(got["a"], got["b"])


# ----------------------------------------------------------------------------- bad input


@pytest.fixture
def inputs(cli: Cli) -> Path:
    """x.wav (a snare at the model's format), silent.wav, and noise.wav that is no audio."""
    _write_wav(cli.root / "x.wav", clip("snare", 0))
    _write_wav(cli.root / "silent.wav", np.zeros((1, LENGTH), np.float32))
    (cli.root / "noise.wav").write_bytes(b"RIFF, but not really a wave file at all" * 4)
    return cli.root


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--class", "cowbell"], ["unknown class 'cowbell'", *CLASSES]),
        (["--strength", "0.5"], ["need --init"]),
        (["--keep-ms", "30"], ["need --init"]),
        (["--frames", "4"], ["--frames belongs to --interpolate"]),
        (["--interpolate", "x.wav", "x.wav", "--n", "3"], ["--frames, not --n"]),
        (["--interpolate", "x.wav", "x.wav", "--frames", "1"], ["--frames must be at least 2"]),
        (["--interpolate", "x.wav", "x.wav", "--frames", "0"], ["--frames must be at least"]),
        (["--interpolate", "x.wav", "x.wav", "--sampler", "dpmpp-2m"], ["ddim"]),
        (["--interpolate", "x.wav", "x.wav", "--init", "x.wav"], ["goes alone"]),
        (["--init", "x.wav", "--every-class"], ["goes alone"]),
        (["--every-class", "--class", "kick"], ["leave out --class"]),
        (["--init", "x.wav", "--keep-ms", "200"], ["--keep-ms", "128 ms"]),
        (["--init", "x.wav", "--keep-ms", "0"], ["--keep-ms"]),
        (["--init", "x.wav", "--strength", "1.5"], ["--strength must be in [0, 1]"]),
        (["--init", "missing.wav"], ["missing.wav: no such file"]),
        (["--init", "noise.wav"], ["noise.wav: cannot use it"]),
        (["--init", "silent.wav"], ["silent.wav: silent"]),
        (["--interpolate", "x.wav", "silent.wav"], ["silent.wav: silent"]),
        (["--class", "kick", "--n", "0"], ["--n must be at least 1"]),
        (["--class", "kick", "--steps", "0"], ["--steps must be at least 1"]),
        (["--class", "kick", "--batch-size", "0"], ["--batch-size must be at least 1"]),
        (["--device", "banana"], ["unknown device 'banana'"]),
        (["--checkpoint", "nowhere.pt"], ["nowhere.pt: no such checkpoint"]),
        (["--checkpoint", "x.wav"], ["x.wav: not a checkpoint"]),
        (["--params", "nope.yaml"], ["nope.yaml not found"]),
    ],
)
def test_bad_input_exits_2_with_one_line(cli: Cli, inputs: Path, args: list, words: list) -> None:
    _one_line_error(*cli(*args), *words)
    assert not (cli.root / "outputs").exists()  # nothing half-done left behind


def test_missing_default_checkpoint_says_how_to_make_it(cli: Cli) -> None:
    rc = sample.main(["--class", "kick"])  # models/model.pt, relative to the project
    out, err = cli.capsys.readouterr()
    _one_line_error(rc, out, err)
    assert (
        err == "sample: error: models/model.pt: no such checkpoint (run `dvc repro train` first)\n"
    )


def test_command_exits_2_with_one_line_and_no_traceback(tmp_path: Path, ckpt: Path) -> None:
    _write_params(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "training.sample", "--checkpoint", str(ckpt), "--class", "tom"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "sample: error: unknown class 'tom'; known classes: kick, snare, hihat, clap\n"
    )
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        # Numbers that are not numbers, or out of range: refused before any work (issue 10).
        (["--class", "kick", "--guidance", "nan"], ["--guidance must be a finite number"]),
        (["--class", "kick", "--guidance", "inf"], ["--guidance must be a finite number"]),
        (["--class", "kick", "--guidance", "-1"], ["--guidance must be in [0, 100]"]),
        (["--class", "kick", "--seed", "-3"], ["--seed must be in [0,"]),
        (["--class", "kick", "--hit-ms", "0"], ["--hit-ms must be between 1 and 4000 ms"]),
        (["--class", "kick", "--hit-ms", "nan"], ["--hit-ms must be between 1 and 4000 ms"]),
        (["--init", "x.wav", "--strength", "nan"], ["--strength must be a finite number"]),
        (["--init", "x.wav", "--keep-ms", "nan"], ["--keep-ms must be a positive number"]),
        (["--init", "x.wav", "--keep-ms", "-5"], ["--keep-ms must be a positive number"]),
        # A project checkpoint knows its clip format: --length / --sample-rate cannot change it.
        (["--class", "kick", "--length", "7"], ["--length 7", "1024 samples at 8000 Hz"]),
        (["--class", "kick", "--length", "-5"], ["--length -5"]),
        (["--class", "kick", "--sample-rate", "44100"], ["--sample-rate 44100"]),
        # --out: a folder that can be made and written, never a file.
        (["--class", "kick", "--out", "new.wav"], ["looks like a file name", "--out new/"]),
        (["--class", "kick", "--out", "x.wav"], ["--out x.wav is a file"]),
        (["--class", "kick", "--out", "/proc/oneshot-test"], ["cannot make the folder /proc/"]),
        (["--class", "kick", "--out", "/sys/oneshot-test"], ["cannot make the folder /sys/"]),
    ],
)
def test_bad_numbers_and_folders_exit_2_before_any_work(
    cli: Cli, inputs: Path, args: list, words: list
) -> None:
    before = sorted(p.name for p in cli.root.iterdir())
    _one_line_error(*cli(*args), *words)
    assert sorted(p.name for p in cli.root.iterdir()) == before  # nothing made, nothing written


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--length", "7"], ["--length must be in [1024,"]),
        (["--length", "-5"], ["--length must be in [1024,"]),
        (["--sample-rate", "0"], ["--sample-rate must be in [8000, 384000], got 0"]),
    ],
)
def test_original_checkpoint_clip_format_is_checked(
    cli: Cli, dd_ckpt: Path, args: list, words: list
) -> None:
    rc = sample.main(["--checkpoint", str(dd_ckpt), "--no-progress", "--n", "1", *args])
    _one_line_error(rc, *cli.capsys.readouterr(), *words)
    assert not (cli.root / "outputs").exists()


def test_a_full_disk_is_one_line_and_exit_1(tmp_path: Path, ckpt: Path) -> None:
    """A disk that fills up while the files are written (a file size limit stands in for
    it): one line naming the file, no traceback, no half-written file."""
    import resource

    _write_params(tmp_path)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    done = subprocess.run(
        [sys.executable, "-m", "training.sample", "--checkpoint", str(ckpt), "--class", "kick",
         "--n", "2"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120,
        preexec_fn=small_files,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("sample: error: cannot write outputs/samples/kick/kick_0_0.wav")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not list((tmp_path / "outputs/samples/kick").iterdir())


def test_summaries_count_and_name_what_they_made(cli: Cli, inputs: Path) -> None:
    assert "wrote 1 file (1 kick;" in cli.ok("--class", "kick", "--n", "1")
    out = cli.ok("--init", "x.wav", "--class", "kick", "--n", "1", "--strength", "0.4")
    assert "wrote 1 file (1 variation of x.wav (strength 0.4, towards kick);" in out
    out = cli.ok("--init", "x.wav", "--keep-ms", "30", "--n", "2")
    assert "wrote 2 files (2 new tails for x.wav after 30 ms (strength 1);" in out


def test_help_lists_the_checkpoints_classes(
    cli: Cli, dd_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for checkpoint, words in (
        (cli.ckpt, ", ".join(CLASSES)),
        (dd_ckpt, "unconditional"),
        (Path("models/model.pt"), "does not exist yet"),
    ):
        with pytest.raises(SystemExit):
            sample.main(["--checkpoint", str(checkpoint), "--help"])
        assert words in capsys.readouterr().out


def test_no_progress_bars_in_a_pipe(tmp_path: Path, ckpt: Path) -> None:
    """Piped (a log, CI), the command writes its summary line and no bar: no carriage
    returns or cursor codes."""
    _write_params(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "training.sample", "--checkpoint", str(ckpt), "--class", "kick",
         "--n", "2"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.count("\n") == 1
    assert "\r" not in done.stdout and "\x1b[" not in done.stdout


# ----------------------------------------------------------------------------- variations


def test_strength_0_writes_the_input_exactly(cli: Cli) -> None:
    # The input is one of the model's own sounds, at its rate: the way back in must be open.
    cli.ok("--class", "kick", "--n", "1", "--seed", "9")
    fav = cli.root / "outputs" / "samples" / "kick" / "kick_9_0.wav"
    cli.ok("--init", str(fav), "--strength", "0", "--n", "2")
    for i in range(2):
        out = cli.root / "outputs" / "variations" / f"kick_9_0_var_0_{i}.wav"
        assert sf.info(out).samplerate == SAMPLE_RATE
        assert np.array_equal(_wav(out, "int32"), _wav(fav, "int32"))
    # Another rate and two channels: exactly load_init's conversion (24-bit quantized).
    y = np.concatenate(
        [clip("clap", 2, 2 * LENGTH, 16000), 0.5 * clip("hihat", 3, 2 * LENGTH, 16000)]
    )
    _write_wav(cli.root / "y.wav", y, 16000, "FLOAT")
    cli.ok("--init", "y.wav", "--strength", "0", "--n", "1", "--out", "v")
    want = sample_inputs.load_init(
        cli.root / "y.wav", load_model(cli.ckpt), core_params.load("params.yaml")
    )
    got = _wav(cli.root / "v" / "y_var_0_0.wav")
    assert got.shape == want.shape == (1, LENGTH)
    np.testing.assert_allclose(got, want, rtol=0, atol=Q24)


def test_variations_stay_closer_to_the_input_at_lower_strength(cli: Cli, inputs: Path) -> None:
    x = _wav(inputs / "x.wav")
    dist = {}
    for s in ("0.2", "1"):
        cli.ok("--init", "x.wav", "--strength", s, "--n", "3", "--seed", "4", "--out", s)
        clips = [_wav(cli.root / s / f"x_var_4_{i}.wav") for i in range(3)]
        assert all(c.shape == (1, LENGTH) for c in clips)
        assert all(not np.array_equal(a, b) for a, b in itertools.combinations(clips, 2))
        dist[s] = [_rel(c, x) for c in clips]
        assert min(dist[s]) > 0.01  # a variation, not a copy
        assert _rows(cli.root / s)["x_var_4_0.wav"]["strength"] == str(float(s))
    assert max(dist["0.2"]) < min(dist["1"]), dist


def test_variations_towards_a_class_follow_the_class(cli: Cli, inputs: Path) -> None:
    for cls in ("kick", "hihat"):
        cli.ok("--init", "x.wav", "--class", cls, "--strength", "0.8", "--n", "2", "--out", cls)
    for i in range(2):
        kick = _wav(cli.root / "kick" / f"x_to-kick_0_{i}.wav")
        hihat = _wav(cli.root / "hihat" / f"x_to-hihat_0_{i}.wav")
        assert _rel(kick, hihat) > 1e-3  # same noise, other label: another sound (2 %)
    assert _rows(cli.root / "hihat")["x_to-hihat_0_1.wav"]["class"] == "hihat"


# ----------------------------------------------------------------------------- inpainting


def test_inpainting_keeps_the_head_exactly_and_renews_the_tail(cli: Cli, inputs: Path) -> None:
    x = _wav(inputs / "x.wav", "int32")
    cli.ok("--init", "x.wav", "--keep-ms", "30", "--n", "2", "--seed", "1")
    folder = cli.root / "outputs" / "inpaint"
    outs = [_wav(folder / f"x_tail_1_{i}.wav", "int32") for i in range(2)]
    for out in outs:
        assert out.shape == x.shape
        assert np.array_equal(out[:, :KEEP], x[:, :KEEP])  # bit-exact: 24-bit in and out
        assert _rel(out[:, KEEP:].astype(float), x[:, KEEP:].astype(float)) > 0.05
    assert _rel(outs[0][:, KEEP:].astype(float), outs[1][:, KEEP:].astype(float)) > 0.01
    row = _rows(folder)["x_tail_1_0.wav"]
    assert (row["mode"], row["keep_ms"], row["strength"]) == ("inpaint", "30.0", "1.0")

    # With --strength < 1 the new tail stays nearer the old one.
    cli.ok("--init", "x.wav", "--keep-ms", "30", "--n", "2", "--seed", "1", "--strength",
           "0.3", "--out", "near")  # fmt: skip
    for i, out in enumerate(outs):
        near = _wav(cli.root / "near" / f"x_tail_1_{i}.wav", "int32")
        assert np.array_equal(near[:, :KEEP], x[:, :KEEP])
        tail = x[:, KEEP:].astype(float)
        assert _rel(near[:, KEEP:].astype(float), tail) < _rel(out[:, KEEP:].astype(float), tail)


def test_inpainted_tail_is_shaped_by_the_kept_head(cli: Cli, inputs: Path) -> None:
    # Two inputs alike but for the head's polarity: same level, same old tail. At strength 1
    # the start state holds nothing of the input; only the head held at every step (the
    # replacement method) can make their new tails differ.
    x = _wav(inputs / "x.wav")
    flipped = x.copy()
    flipped[:, :KEEP] *= -1
    _write_wav(cli.root / "flipped.wav", flipped)
    tails = []
    for stem in ("x", "flipped"):
        cli.ok("--init", f"{stem}.wav", "--keep-ms", "30", "--n", "1", "--out", "h")
        tails.append(_wav(cli.root / "h" / f"{stem}_tail_0_0.wav")[:, KEEP:])
    # 0.3 % on this barely trained network; exactly 0 without the held head.
    assert _rel(tails[1], tails[0]) > 5e-4


def test_inpainting_a_resampled_stereo_input_keeps_its_converted_head(cli: Cli) -> None:
    y = np.concatenate([clip("kick", 3, 3 * LENGTH, 22050), clip("snare", 3, 3 * LENGTH, 22050)])
    _write_wav(cli.root / "y.wav", 0.7 * y, 22050, "FLOAT")
    cli.ok("--init", "y.wav", "--keep-ms", "30", "--n", "2", "--bit-depth", "24")
    want = sample_inputs.load_init(
        cli.root / "y.wav", load_model(cli.ckpt), core_params.load("params.yaml")
    )
    # ... which is the channels' mean at the model's rate (soxr, as the normalize stage does).
    mono = resample(0.7 * y.mean(axis=0, keepdims=True), 22050, SAMPLE_RATE)
    np.testing.assert_allclose(want[:, :KEEP], mono[:, :KEEP], rtol=0, atol=1e-6)
    for i in range(2):
        out = _wav(cli.root / "outputs" / "inpaint" / f"y_tail_0_{i}.wav")
        assert out.shape == want.shape == (1, LENGTH)
        np.testing.assert_allclose(out[:, :KEEP], want[:, :KEEP], rtol=0, atol=Q24)
        assert _rel(out[:, KEEP:], want[:, KEEP:]) > 0.05


# ----------------------------------------------------------------------------- interpolation


def test_interpolation_ends_reconstruct_the_inputs(cli: Cli) -> None:
    a = _write_wav(cli.root / "a.wav", clip("kick", 0))
    b = _write_wav(cli.root / "b.wav", 0.5 * clip("snare", 1))  # another level too
    cli.ok("--interpolate", "a.wav", "b.wav", "--frames", "4", "--steps", "12")
    folder = cli.root / "outputs" / "interpolations"
    names = [f"a_to_b_{i:02d}.wav" for i in range(4)]
    assert sorted(p.name for p in folder.iterdir()) == [*names, "samples.csv"]
    frames = [_wav(folder / n) for n in names]
    xa, xb = _wav(a), _wav(b)
    # Inversion refined by sample.inversion_refine (2) passes is the exact reverse of DDIM up to
    # the fixed point's residual: 0.07 % (a) and 1.1 % (b) relative L2 at 12 steps on this
    # network (0.3 % / 5 % with 1 pass), where plain DDIM inversion (refine 0) leaves 21 % /
    # 46 %: 3 % passes the refined inversion and fails the plain one, with a margin either way.
    assert _rel(frames[0], xa) < 0.03 and _rel(frames[-1], xb) < 0.03
    # The middle frames are new sounds on the way from a to b, not the ends at a gliding level:
    # in shape (unit norm) each is further from a and nearer to b than the one before (this
    # network: 0.11 and 0.37 from a, 1.33 and 1.13 from b).
    unit = [f / np.linalg.norm(f) for f in frames]
    from_a = [_rel(u, xa / np.linalg.norm(xa)) for u in unit]
    from_b = [_rel(u, xb / np.linalg.norm(xb)) for u in unit]
    assert all(d > 0.05 for d in from_a[1:] + from_b[:-1]), (from_a, from_b)
    assert from_a == sorted(set(from_a)) and from_b == sorted(set(from_b), reverse=True)
    rows = _rows(folder)
    # The interpolation weight has its own column; strength is for variations.
    assert [rows[n]["weight"] for n in names] == ["0.0000", "0.3333", "0.6667", "1.0000"]
    assert {rows[n]["strength"] for n in names} == {""}
    assert {rows[n]["mode"] for n in names} == {"interpolate"}
    assert {rows[n]["sampler"] for n in names} == {"ddim"}
