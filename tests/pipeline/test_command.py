"""What every stage command (pipeline.command) promises (issue 10): bad settings and an empty
library are one line and exit 2 before any file is touched, Ctrl-C is one line and exit 130
with the previous output kept, and what a stage writes is readable by others (the umask's
modes)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import chain
import pytest
import yaml
from chain import run

from core import files as atomic
from pipeline.stages import augment, collect, label, normalize, pad, trim

REPO = Path(__file__).resolve().parents[2]
STAGES = [collect, normalize, trim, pad, label, augment]


def _params(workdir: Path, edit=None, **collect_cfg: object) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["collect"].update(collect_cfg)
    params["collect"]["demo"]["per_class"] = 2
    params["runner"]["workers"] = 1
    if edit:
        edit(params)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (and its content): what a refused run must leave as it was."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _one_line(capfd: pytest.CaptureFixture[str], stage: str, *words: str) -> str:
    out, err = capfd.readouterr()
    assert err.startswith(f"{stage}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in out + err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repo folder where the whole chain ran once on a small demo kit."""
    workdir = tmp_path / "repo"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    _params(workdir)
    for stage in STAGES:
        assert run(stage, "--no-progress") == 0
    return workdir


def _set(path: str, value: object, delete: bool = False):
    def edit(params: dict) -> None:
        *parents, leaf = path.split(".")
        node = params
        for part in parents:
            node = node[part]
        if delete:
            del node[leaf]
        else:
            node[leaf] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_set("trim.threshhold_db", 40), ["trim.threshhold_db is not a setting", "threshold_db"]),
        (_set("audio.sample_rate", 0), ["audio.sample_rate must be in [8000, 384000], got 0"]),
        (_set("normalize.mode", "lfus"), ["normalize.mode must be one of peak, lufs, got 'lfus'"]),
        (_set("audio.duration", -1.0), ["audio.duration must be in (0, 60], got -1.0"]),
        (_set("normalise", {"mode": "peak"}), ["normalise is not a setting", "normalize"]),
        (_set("trim.tail_ms", None, delete=True), ["trim.tail_ms is missing"]),
        (_set("augment.variants", "three"), ["augment.variants must be a whole number"]),
        # A class renamed while its keywords keep the old name (claps silently unlabeled).
        (
            _set("label.classes", ["kick", "snare", "hihat", "clapp"]),
            ["label.keywords.clap names no class in label.classes"],
        ),
        # A class with no keywords at all.
        (
            _set("label.classes", ["kick", "snare", "hihat", "clap", "tom"]),
            ["label.keywords has no words for tom"],
        ),
    ],
)
def test_a_bad_setting_stops_every_stage_before_it_touches_a_file(
    built: Path, capfd: pytest.CaptureFixture[str], edit, words: list[str]
) -> None:
    before = _snapshot(built / "data")
    capfd.readouterr()
    _params(built, edit)
    for stage in STAGES:
        name = stage.__name__.rsplit(".", 1)[1]
        assert run(stage, "--no-progress") == 2, name
        _one_line(capfd, name, "params.yaml: ", *words)
    # No rejects rows, no wiped output folder: data/ is exactly as it was.
    assert _snapshot(built / "data") == before


def test_an_empty_sample_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "My Drums"
    (empty / "Kicks").mkdir(parents=True)
    (empty / "Kicks" / "notes.txt").write_text("no audio here", encoding="utf-8")
    workdir = tmp_path / "repo"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    _params(workdir, sources=["local"], local_dirs=[str(empty)])
    assert run(collect, "--no-progress") == 2
    _one_line(capfd, "collect", f"no audio files in {empty} (extensions wav, aif, aiff, flac")
    assert not (workdir / "data").exists()


def test_ctrl_c_stops_a_stage_in_one_line_and_keeps_its_last_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "repo"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    def more(params: dict) -> None:
        params["collect"]["demo"]["per_class"] = 12
        params["runner"].update(workers=2, chunk_size=2)
        params["augment"].update(variants=4, kinds=["pitch"], pitch_step=0.25)

    _params(workdir, more)
    for stage in STAGES:
        assert run(stage, "--no-progress") == 0
    before = _snapshot(workdir / "data")
    partial = workdir / "data" / ".augmented.partial"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.stages.augment", *chain.argv("augment")],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C reaches the whole process group, as in a terminal
        # ... where Ctrl-C is not ignored: a shell's background job (nohup make test &)
        # starts with SIGINT ignored, and a child keeps that unless told otherwise
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list(partial.rglob("*.wav")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "augment finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == "augment: interrupted; data/augmented/ and data/rejects.csv are as they were\n"
    assert "Traceback" not in out
    assert not partial.exists()
    assert _snapshot(workdir / "data") == before


def test_written_files_get_the_umasks_modes(tmp_path: Path) -> None:
    """0644 files and 0755 folders under umask 022 (the usual), 0640 / 0750 under 027: a DAW
    running as another user, a web server or a colleague can read them."""
    workdir = tmp_path / "repo"
    workdir.mkdir()
    _params(workdir)
    for umask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o027, 0o640, 0o750)):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.stages.collect",
                *chain.argv("collect"),
                "--no-progress",
            ],
            cwd=workdir,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            preexec_fn=lambda mask=umask: os.umask(mask),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        made = [workdir / "data" / "rejects.csv", *(workdir / "data" / "collected").rglob("*")]
        for path in made:
            want = dir_mode if path.is_dir() else file_mode
            assert path.stat().st_mode & 0o777 == want, (oct(umask), path)


def test_replacing_gives_the_umasks_mode(tmp_path: Path) -> None:
    with atomic.replacing(tmp_path / "x.csv") as tmp:
        tmp.write_text("a\n", encoding="utf-8")
    assert (tmp_path / "x.csv").stat().st_mode & 0o777 == atomic.FILE_MODE
    assert 0o666 & ~_current_umask() == atomic.FILE_MODE


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
