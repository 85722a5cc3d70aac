"""training.train: the loop, its checkpoints and resume, DDP on the CPU, NaN, DVCLive output,
and the command line (the pieces it uses have their own tests: test_resume, test_tracking).

Everything runs on the small synthesized kit of ``drumkit`` (0.128 s clips at 8 kHz) with a
four-level network, in a temp folder laid out as the repo (params.yaml, data/augmented/).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import drumkit
import pytest
import soundfile as sf
import torch
import yaml
from drumkit import (
    CLASSES,
    LENGTH,
    SAMPLE_RATE,
    env,
    kill_and_resume,
    run_train,
    write_kit,
)
from test_dvc_pipeline import _copy_repo

import training.train as tt
from core import params as core_params
from training import checks
from training.checkpoints import load_checkpoint, load_model
from training.config import build_model
from training.data import Clips, load_clips
from training.diffusion import alpha_sigma, v_target
from training.model import Denoiser


def write_params(root: Path, **train) -> dict:
    """drumkit's params.yaml with the quality checks off unless a test turns them on: they
    cost a few seconds a run, and the tests of the checks below turn them on."""
    return drumkit.write_params(root, **{"eval_every": 0, **train})


def _project(root: Path, per_class: int = 4, **train) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_kit(root, per_class=per_class)
    write_params(root, **train)
    return root


def _history(root: Path, name: str = "loss") -> list[tuple[int, float]]:
    with (root / "dvclive/plots/metrics/train" / f"{name}.tsv").open(encoding="utf-8") as fh:
        return [(int(r["step"]), float(r[name])) for r in csv.DictReader(fh, delimiter="\t")]


def _checks(root: Path, name: str) -> list[tuple[int, float]]:
    """A quality check's curve, eval/<name>."""
    with (root / "dvclive/plots/metrics/eval" / f"{name}.tsv").open(encoding="utf-8") as fh:
        return [(int(r["step"]), float(r[name])) for r in csv.DictReader(fh, delimiter="\t")]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder that is also the working directory, for in-process runs.

    One thread: on a busy 2-core machine two OpenMP threads spin against each other and a
    step takes several times longer.
    """
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield root
    torch.set_num_threads(threads)


def _fixed_loss(model: Denoiser, clips: Clips) -> float:
    """The v-objective on every clip at fixed noise levels and noise: a loss that moves only
    when the weights do (the training loss draws new noise levels every step)."""
    gen = torch.Generator().manual_seed(123)
    x0, labels = clips.audio.repeat(4, 1, 1), clips.labels.repeat(4)
    t = torch.linspace(0.05, 0.95, len(labels))
    noise = torch.randn(x0.shape, generator=gen)
    alpha, sigma = (s[:, None, None] for s in alpha_sigma(t))
    with torch.no_grad():
        v = model(x0 * alpha + noise * sigma, t, labels)
    return float(((v - v_target(x0, noise, t)) ** 2).mean())


# ----------------------------------------------------------------------------- in-process


def test_training_lowers_the_loss_and_writes_everything(project: Path) -> None:
    steps = 40
    _project(
        project,
        steps=steps,
        batch_size=8,
        lr=2e-3,
        warmup_steps=5,
        lr_final=0.1,
        checkpoint_every=20,
        demo_every=20,
    )
    params = core_params.load(project / "params.yaml")
    torch.manual_seed(params.train.seed)  # the trainer's initial weights
    initial = build_model(params, CLASSES)
    assert tt.main(["--no-progress"]) == 0

    clips = load_clips(
        project / "data/augmented/manifest.csv",
        class_names=CLASSES,
        sample_rate=SAMPLE_RATE,
        length=LENGTH,
        channels=1,
        progress=False,
    )
    before, after = _fixed_loss(initial, clips), _fixed_loss(load_model("models/model.pt"), clips)
    assert after < 0.5 * before, (before, after)

    history = _history(project)
    assert [s for s, _ in history] == list(range(1, steps + 1))
    assert all(math.isfinite(v) for _, v in history)
    lrs = [v for _, v in _history(project, "lr")]
    # Warm-up to train.lr at step 5, then down a half cosine to lr_final of it at the last step.
    assert lrs[0] == pytest.approx(2e-3 / 5) and lrs[4] == pytest.approx(2e-3)
    assert lrs[-1] == pytest.approx(2e-4) and all(a > b for a, b in itertools.pairwise(lrs[4:]))
    assert all(v > 0 for _, v in _history(project, "samples_per_s"))
    metrics = yaml.safe_load((project / "dvclive/metrics.json").read_text())
    assert metrics["step"] == steps and metrics["train"]["loss"] == pytest.approx(history[-1][1])

    # Demo clips (one per class, the model's rate and length) and one spectrogram per demo.
    for step in ("000020", "000040"):
        for cls in CLASSES:
            info = sf.info(str(project / "dvclive/demo" / step / f"{cls}.wav"))
            assert (info.samplerate, info.frames, info.channels) == (SAMPLE_RATE, LENGTH, 1)
        png = project / "dvclive/plots/images/demo" / f"{step}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"

    last_ckpt = load_checkpoint(project / "models/checkpoints/last.pt")
    final = load_checkpoint(project / "models/model.pt")
    assert last_ckpt["step"] == final["step"] == steps
    assert _same_weights(last_ckpt["ema"], final["ema"])
    assert "optimizer" in last_ckpt and "optimizer" not in final
    assert final["class_names"] == CLASSES and final["sample_rate"] == SAMPLE_RATE


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(project, steps=10, checkpoint_every=2)
    real, calls = tt.training_loss, []

    def diverging(*args, **kw):
        calls.append(1)
        loss = real(*args, **kw)
        return loss * float("nan") if len(calls) >= 5 else loss

    monkeypatch.setattr(tt, "training_loss", diverging)
    assert tt.main(["--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "loss is nan at step 5: stopped" in err and "(step 4)" in err
    assert "Traceback" not in err
    ckpt = load_checkpoint(project / "models/checkpoints/last.pt")
    assert ckpt["step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (project / "models/model.pt").exists()


def test_other_settings_start_afresh_and_more_steps_continue(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(project, steps=2)
    assert tt.main(["--no-progress"]) == 0
    write_params(project, steps=3)  # a schedule knob: continue where the last run stopped
    assert tt.main(["--no-progress"]) == 0
    assert "resuming from models/checkpoints/last.pt at step 2" in capsys.readouterr().out
    write_params(project, steps=3, lr=5e-4)
    assert tt.main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "starting afresh (models/checkpoints/last.pt is from other train.lr)" in out
    assert "3 steps (0 -> 3)" in out
    assert [s for s, _ in _history(project)] == [1, 2, 3]  # the old curve was cleared
    assert tt.main(["--no-progress", "--fresh"]) == 0
    assert "starting afresh (--fresh)" in capsys.readouterr().out


def test_the_low_noise_share_reaches_the_training_levels(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.diffusion as diffusion

    _project(project, steps=2, low_noise_share=0.5)
    seen, real = [], diffusion.sample_t

    def spy(*args: object) -> torch.Tensor:
        seen.append(args[4])
        return real(*args)

    monkeypatch.setattr(diffusion, "sample_t", spy)
    assert tt.main(["--no-progress"]) == 0
    assert len(seen) == 2 and set(seen) == {0.5}


def test_a_compiled_run_trains_the_same_network_and_resumes_uncompiled(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """train.compile runs the step through torch.compile: the same losses as eager (to float
    rounding), a checkpoint of the plain network, and a run that goes on without compiling."""
    losses = {}
    for compiled in (False, True):
        root = _project(project / str(compiled), steps=3, compile=compiled)
        monkeypatch.chdir(root)
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        assert tt.main(["--no-progress"]) == 0
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        assert (graphs > 0) == compiled
        losses[compiled] = [loss for _, loss in _history(root)]
        state = load_checkpoint(root / "models/model.pt")
        assert not [k for k in state["model"] if "_orig_mod" in k]
        assert isinstance(load_model(root / "models/model.pt"), Denoiser)
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)
    write_params(root, steps=4, compile=False)
    capsys.readouterr()
    assert tt.main(["--no-progress"]) == 0
    assert "resuming from models/checkpoints/last.pt at step 3" in capsys.readouterr().out


def test_the_same_data_copied_with_new_times_resumes(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The data is known by content: a copy, a relink or a fresh clone + `dvc pull` gives
    every file a new time (and the files new inodes), and the run still resumes."""
    _project(project, steps=2)
    data = project / "data/augmented"
    (data / "manifest.csv").write_text(_with_hashes(data), encoding="utf-8")
    assert tt.main(["--no-progress"]) == 0
    capsys.readouterr()
    copy = project / "data/copy"
    shutil.copytree(data, copy)
    shutil.rmtree(data)
    time.sleep(0.01)
    for path in sorted(copy.rglob("*")):  # new files, new times: what a relink leaves
        if path.is_file():
            path.write_bytes(path.read_bytes())
    copy.rename(data)
    write_params(project, steps=3)
    assert tt.main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming from models/checkpoints/last.pt at step 2" in out, out

    # Changed content under the same manifest is not the same data: it is refused.
    wav = next(data.rglob("*.wav"))
    y, sr = sf.read(wav, dtype="float32")
    sf.write(wav, y * 0.5, sr, subtype="FLOAT")
    assert tt.main(["--no-progress"]) == 2
    assert "is not what the manifest's sha256 says" in capsys.readouterr().err


def _with_hashes(data: Path) -> str:
    """The kit's manifest with a sha256 column, as the pipeline writes it."""
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["sha256"] = hashlib.sha256((data / row["path"]).read_bytes()).hexdigest()
    lines = [",".join(rows[0])] + [",".join(r.values()) for r in rows]
    return "\n".join(lines) + "\n"


def test_starting_afresh_keeps_the_other_runs_checkpoint(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(project, steps=2)
    assert tt.main(["--no-progress"]) == 0
    first = (project / "models/checkpoints/last.pt").read_bytes()
    capsys.readouterr()
    write_params(project, steps=2, lr=5e-4)
    assert tt.main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    kept = sorted((project / "models/checkpoints").glob("last-*.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == first
    assert f"the old checkpoint is kept as models/checkpoints/{kept[0].name}" in out, out
    assert tt.main(["--no-progress", "--fresh"]) == 0
    assert len(list((project / "models/checkpoints").glob("last-*.pt"))) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 0}, "train.steps must be at least 1"),
        ({"lr": "fast"}, "train.lr must be a number"),
        ({"label_dropout": 1.5}, "train.label_dropout must be in [0, 1]"),
        ({"init_checkpoint": "nowhere.ckpt"}, "train.init_checkpoint nowhere.ckpt is not a file"),
        ({"early_stop": "accuracy"}, "train.early_stop accuracy needs quality checks"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], change: dict, message: str
) -> None:
    _project(project, per_class=1, **change)
    assert tt.main(["--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: ") and message in err and "\n" not in err


def test_a_set_that_does_not_fit_exits_2(project: Path, capsys: pytest.CaptureFixture) -> None:
    _project(project, per_class=1)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["audio"]["sample_rate"] = 16000
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert tt.main(["--no-progress"]) == 2
    assert "not audio.sample_rate 16000" in capsys.readouterr().err


# ----------------------------------------------------------------------------- quality checks


def test_quality_checks_are_logged_at_their_steps_and_leave_training_alone(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(project, steps=6, eval_every=4, checkpoint_every=3)
    assert tt.main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train: quality checks every 4 steps: 4 sounds per class, 12 " in out
    assert "2 quality checks in " in out and "stopped early" not in out
    names = ("accuracy", "ceiling", "frechet", "frechet_floor", "kernel", "closest_ncc")
    for name in names:  # every eval_every steps, and at the end
        assert [s for s, _ in _checks(project, name)] == [4, 6], name
    accuracy = _checks(project, "accuracy")
    assert all(0 <= v <= 1 for _, v in accuracy)
    metrics = json.loads((project / "dvclive/metrics.json").read_text())
    assert metrics["eval"]["accuracy"] == accuracy[-1][1] and "loss" in metrics["train"]
    last = load_checkpoint(project / "models/checkpoints/last.pt")
    assert [c["step"] for c in last["checks"]] == [4, 6]
    assert last["checks"][-1]["accuracy"] == accuracy[-1][1]
    with_checks = load_checkpoint(project / "models/model.pt")
    assert with_checks["stopped"] == "" and len(with_checks["checks"]) == 2
    card = (project / "models/MODEL_CARD.md").read_text(encoding="utf-8")
    assert "- Trained: 6 optimizer steps\n" in card and "Not evaluated yet" in card

    # The same run without checks: the very same weights (a check draws no training noise).
    write_params(project, steps=6, eval_every=0, checkpoint_every=3)
    assert tt.main(["--no-progress", "--fresh"]) == 0
    without = load_checkpoint(project / "models/model.pt")
    assert _same_weights(with_checks["model"], without["model"])
    assert _same_weights(with_checks["ema"], without["ema"])
    assert "quality checks" not in capsys.readouterr().out


def test_an_interrupted_run_goes_on_with_its_check_curves_as_if_uninterrupted(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"steps": 8, "eval_every": 2, "checkpoint_every": 4}
    _project(project, **settings)
    assert tt.main(["--no-progress"]) == 0
    reference = project

    other = _project(tmp_path / "interrupted", **settings)
    monkeypatch.chdir(other)
    real, calls = tt.train_step, []

    def interrupted(*args, **kw):
        calls.append(1)
        if len(calls) == 7:  # after step 6's check, logged after the checkpoint at step 4
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(tt, "train_step", interrupted)
    assert tt.main(["--no-progress"]) == 130
    assert [s for s, _ in _checks(other, "accuracy")] == [2, 4, 6]
    assert load_checkpoint(other / "models/checkpoints/last.pt")["step"] == 4
    monkeypatch.setattr(tt, "train_step", real)
    assert tt.main(["--no-progress"]) == 0

    for name in ("accuracy", "frechet", "frechet_floor", "kernel", "closest_ncc", "closest_mel"):
        assert _checks(other, name) == _checks(reference, name), name  # once each, same values
    assert [s for s, _ in _checks(other, "accuracy")] == [2, 4, 6, 8]
    assert _history(other) == _history(reference)
    a = load_checkpoint(reference / "models/model.pt")
    b = load_checkpoint(other / "models/model.pt")
    assert _same_weights(a["ema"], b["ema"]) and a["checks"] == b["checks"]


def test_early_stop_ends_the_run_and_a_rerun_keeps_it_ended(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = iter([0.5, 0.75, 0.75, 0.5] + [0.1] * 20)
    monkeypatch.setattr(checks, "measure", lambda checker, model: {"accuracy": next(figures)})
    settings = {"steps": 30, "eval_every": 2, "checkpoint_every": 5, "early_stop": "accuracy"}
    _project(project, **settings, early_stop_patience=2)
    assert tt.main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    stop = "stopped early: eval/accuracy has not improved for 2 checks (best 0.75 at step 4)"
    assert "8 steps (0 -> 8)" in out and stop in out, out
    final = load_checkpoint(project / "models/model.pt")
    last = load_checkpoint(project / "models/checkpoints/last.pt")
    assert final["step"] == last["step"] == 8 and final["stopped"] == stop
    assert _same_weights(final["ema"], last["ema"])
    assert [s for s, _ in _history(project)] == list(range(1, 9))
    assert [s for s, _ in _checks(project, "accuracy")] == [2, 4, 6, 8]
    assert f"- Trained: 8 optimizer steps ({stop})" in (project / "models/MODEL_CARD.md").read_text(
        encoding="utf-8"
    )

    # The same settings again: the run stays stopped.
    assert tt.main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no steps left (the checkpoint is at step 8)" in out and stop in out
    # More patience: it goes on from step 8 until 5 checks since the best one.
    write_params(project, **settings, early_stop_patience=5)
    assert tt.main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming from models/checkpoints/last.pt at step 8" in out
    assert "6 steps (8 -> 14)" in out and "not improved for 5 checks" in out, out
    assert [s for s, _ in _checks(project, "accuracy")] == [2, 4, 6, 8, 10, 12, 14]


def test_a_set_too_small_to_judge_trains_without_checks(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(project, per_class=1, steps=2, eval_every=1)
    assert tt.main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train: quality checks off: " in out and "originals each to be judged" in out
    assert not (project / "dvclive/plots/metrics/eval").exists()
    write_params(project, steps=2, eval_every=1, early_stop="kernel")
    assert tt.main(["--no-progress", "--fresh"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: train.early_stop kernel: ") and "\n" not in err


# ----------------------------------------------------------------------------- subprocesses


def test_killed_run_resumes_at_its_checkpoint_and_ends_as_an_uninterrupted_one(
    tmp_path: Path, project: Path
) -> None:
    settings = {"steps": 40, "checkpoint_every": 4}
    reference = _project(project, **settings)
    assert tt.main(["--no-progress"]) == 0  # in this process: one start-up fewer

    root = _project(tmp_path / "killed", **settings)
    killed_at, out = kill_and_resume(root)
    assert 4 <= killed_at < 40
    assert f"({killed_at} -> 40)" in out.stdout
    # Same optimizer, EMA, noise and batches after the restart: the very same weights.
    a = load_checkpoint(reference / "models/model.pt")
    b = load_checkpoint(root / "models/model.pt")
    assert _same_weights(a["model"], b["model"]) and _same_weights(a["ema"], b["ema"])
    # The curve has every step once, as if nothing had happened.
    assert _history(root) == _history(reference)


def test_two_process_ddp_on_the_cpu(tmp_path: Path) -> None:
    root = _project(tmp_path / "ddp", per_class=3, steps=4, checkpoint_every=2, devices=2)
    out = run_train(root)
    assert out.returncode == 0, out.stdout
    assert "2 process(es) on cpu" in out.stdout and "8 clips per step" in out.stdout
    assert "Traceback" not in out.stdout
    ckpt = load_checkpoint(root / "models/checkpoints/last.pt")
    assert ckpt["step"] == 4 and ckpt["identity"]["world_size"] == 2
    # Each rank drew its own noise (and its own shard, rows rank::2 of the manifest).
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0], ckpt["rng"][1])
    # Rank 0 alone logs: every step once.
    assert [s for s, _ in _history(root)] == [1, 2, 3, 4]
    assert all(math.isfinite(v) for _, v in _history(root))
    assert (root / "models/model.pt").is_file()


def test_two_process_ddp_checks_on_rank_0_and_every_rank_stops_together(tmp_path: Path) -> None:
    """Rank 0 alone samples and judges; every rank learns the figures, so an early stop ends
    both ranks at the same step (one that did not would wait for the other forever)."""
    root = _project(tmp_path / "ddp", steps=6, checkpoint_every=3, devices=2, eval_every=2,
                    early_stop="accuracy", early_stop_patience=1)  # fmt: skip
    out = run_train(root)
    assert out.returncode == 0, out.stdout
    assert "Traceback" not in out.stdout and "quality checks every 2 steps" in out.stdout
    checked = [s for s, _ in _checks(root, "accuracy")]
    assert checked[:2] == [2, 4] and checked == list(range(2, checked[-1] + 1, 2))
    ckpt = load_checkpoint(root / "models/model.pt")
    assert ckpt["step"] == checked[-1] == _history(root)[-1][0]
    assert [c["step"] for c in ckpt["checks"]] == checked
    assert ("stopped early" in out.stdout) == (checked[-1] < 6) == bool(ckpt["stopped"])


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        tt.parse_args(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "models/checkpoints/last.pt" in out and "--fresh" in out and "dvc repro" in out


def test_dvc_train_stage_resumes_and_shows_the_curves(tmp_path: Path) -> None:
    """The `train` stage in dvc.yaml: the checkpoint survives a re-run (persist), and
    `dvc metrics show` / `dvc plots show` find DVCLive's files where the stage declares them."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    _project(repo, per_class=2, steps=4, checkpoint_every=2, demo_every=2)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True, capture_output=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=repo, check=True, capture_output=True)
    dvc_env = {
        **env(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
    }

    def dvc(*args: str) -> str:
        """Standard output of a dvc command (its warnings go to stderr)."""
        out = subprocess.run(
            ["dvc", *args], cwd=repo, env=dvc_env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    assert "8 clips in 1 shard(s)" in dvc("repro", "--single-item", "shard")  # a dep of train
    assert "starting afresh (no checkpoint)" in dvc("repro", "--single-item", "train")
    metrics = json.loads(dvc("metrics", "show", "--json"))
    live = metrics[""]["data"]["dvclive/metrics.json"]["data"]
    assert live["step"] == 4 and math.isfinite(live["train"]["loss"])
    plots = json.loads(dvc("plots", "show", "--json"))["data"]
    assert {"dvclive/plots/metrics/train/loss.tsv", "dvclive/plots/images/demo/000004.png"} <= set(
        plots
    )
    assert [
        p["step"]
        for p in plots["dvclive/plots/metrics/train/loss.tsv"][0]["content"]["data"]["values"]
    ] == ["1", "2", "3", "4"]

    write_params(repo, steps=6, checkpoint_every=2, demo_every=2)
    out = dvc("repro", "--single-item", "train")
    assert "resuming from models/checkpoints/last.pt at step 4" in out, out
    assert [s for s, _ in _history(repo)] == [1, 2, 3, 4, 5, 6]

    # The `sample` stage after it: n_per_class sounds of each class from the model just
    # trained, the grid, and a csv that names the checkpoint by hash, in reports/samples/.
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["sample"].update(n_per_class=1, steps=2, device="cpu", batch_size=4)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    assert "wrote 4 files" in dvc("repro", "--single-item", "sample")
    samples = repo / "reports" / "samples"
    model_sha = hashlib.sha256((repo / "models" / "model.pt").read_bytes()).hexdigest()
    for cls in CLASSES:
        info = sf.info(samples / cls / f"{cls}_0_0.wav")
        assert (info.samplerate, info.frames) == (SAMPLE_RATE, LENGTH)
        with (samples / cls / "samples.csv").open(newline="", encoding="utf-8") as f:
            (row,) = csv.DictReader(f)
        assert (row["class"], row["checkpoint_sha256"]) == (cls, model_sha)
    assert (samples / "spectrograms.png").stat().st_size > 0
    assert "up to date" in dvc("status", "sample")
    assert not (repo / "outputs").exists()  # outputs/ is the user's: no stage writes there

    # Sounds sampled by hand with the CLI's defaults (outputs/samples/<class>/) survive
    # every later `dvc repro` and `dvc checkout -f` (issue 10).
    hand = subprocess.run(
        [sys.executable, "-m", "training.sample", "--class", "kick", "--seed", "5", "--n", "1",
         "--steps", "2"],
        cwd=repo, env=dvc_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert hand.returncode == 0, hand.stderr
    mine = repo / "outputs" / "samples" / "kick" / "kick_5_0.wav"
    before = mine.read_bytes()
    dvc("repro", "--force", "--single-item", "sample")
    dvc("checkout", "--force", "sample")
    dvc("checkout", "--force", "train")
    assert mine.read_bytes() == before
    assert sorted(p.name for p in mine.parent.iterdir()) == ["kick_5_0.wav", "samples.csv"]


def test_a_length_conditioned_model_counts_its_clips_and_continues_exactly(
    tmp_path: Path, project: Path
) -> None:
    """The fold preset told each hit's length (the default's ``lengths: true``): training
    measures every clip, keeps the counts in the checkpoint, and a run stopped and continued
    ends with the same weights and counts as one that ran straight through."""
    fold = {"arch": "fold", "io_channels": 1, "fold": 8, "channels": [16, 32], "blocks": 1,
            "factor": 4, "heads": 2, "pos": 4, "class_dim": 16, "lengths": True}  # fmt: skip

    def run(root: Path, steps: int) -> dict:
        params = write_params(root, steps=steps, checkpoint_every=2, batch_size=4)
        params["model"]["presets"]["test"] = fold
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert tt.main(["--no-progress"]) == 0
        return load_checkpoint(root / "models/model.pt")

    write_kit(project, per_class=4)
    straight = run(project, 6)
    counts = straight["ema"]["unet.length_counts"]
    assert counts.sum(1).tolist() == [4, 4, 4, 4]  # every clip once, in its class
    assert torch.equal(counts, straight["model"]["unet.length_counts"])
    other = tmp_path / "other"
    write_kit(other, per_class=4)
    os.chdir(other)
    run(other, 3)
    continued = run(other, 6)
    assert _same_weights(straight["model"], continued["model"])
    assert _same_weights(straight["ema"], continued["ema"])
