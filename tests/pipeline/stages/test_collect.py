"""collect with the ``local`` source: labels from folders and file names, files indexed in place,
duplicates refused, and bad settings refused in one line."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from chain import run

from pipeline.stages import collect, label, normalize, pad, trim

REPO = Path(__file__).resolve().parents[3]
SR = 44100
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3"}


def _hit(path: Path, seed: int, sr: int = SR) -> None:
    """A short decaying noise/sine hit with a little leading silence; distinct per seed."""
    rng = np.random.default_rng(seed)
    n, lead = int(0.4 * sr), int(0.03 * sr)
    t = np.arange(n - lead) / sr
    body = rng.standard_normal(t.size) * 0.3 + np.sin(2 * np.pi * (80 + 40 * seed) * t)
    body *= np.exp(-t / 0.08)
    y = np.concatenate([np.zeros(lead), 0.8 * body / np.max(np.abs(body))]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr)


def _make(root: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        _hit(root / name, seed=i + 1)


def _params(workdir: Path, **collect_cfg: object) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["collect"].update(collect_cfg)
    params["runner"]["workers"] = 1
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def _run(*modules: object) -> None:
    for module in modules:
        assert run(module, "--no-progress") == 0, module.__name__  # type: ignore[attr-defined]


def _manifest(stage_dir: str) -> list[dict[str, str]]:
    with (Path("data") / stage_dir / "manifest.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _rejects() -> list[dict[str, str]]:
    path = Path("data/rejects.csv")
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def collect_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty repo folder to run stages in; sample folders go beside it, outside the repo."""
    workdir = tmp_path / "repo"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


def test_class_folders_give_labels(collect_workdir: Path) -> None:
    lib = collect_workdir.parent / "My Samples"
    expected = {
        "kick/a.wav": "kick",
        "kick/b.flac": "kick",
        "Snares/tight.wav": "snare",
        "hihat/closed one.wav": "hihat",
        "clap/c.wav": "clap",
        "808 Kit/Kicks/BD01.wav": "kick",  # nearest folder names the class
        "snare/Kick_like_name.wav": "snare",  # the folder wins over the file name
    }
    _make(lib, list(expected))
    _params(collect_workdir, sources=["local"], local_dirs=[str(lib)])
    _run(collect, normalize, trim, pad, label)
    rows = _manifest("labeled")
    assert {r["source_id"]: r["label"] for r in rows} == expected
    assert {r["source"] for r in rows} == {"local"}
    assert {r["variant"] for r in rows} == {"original"}
    # Each clip sits in its class folder in data/labeled.
    assert all(r["path"].startswith(r["label"] + "/") for r in rows)
    assert all((Path("data/labeled") / r["path"]).is_file() for r in rows)


def test_flat_folder_labels_from_file_names(collect_workdir: Path) -> None:
    lib = collect_workdir.parent / "flat"
    expected = {
        "BD_808_01.wav": "kick",
        "Snare-Tight.wav": "snare",
        "hh_closed_3.flac": "hihat",
        "Clap 02.wav": "clap",
        "KickDrum.wav": "kick",
    }
    _make(lib, [*expected, "mystery_hit.wav"])
    _params(collect_workdir, sources=["local"], local_dirs=[str(lib)])
    _run(collect, normalize, trim, pad, label)
    assert {r["source_id"]: r["label"] for r in _manifest("labeled")} == expected
    # No class word anywhere: refused, not guessed.
    assert [(r["stage"], r["reason"]) for r in _rejects()] == [("label", "unlabeled")]
    # Later stages name their input (an intermediate file); the detail names the user's file.
    assert "mystery_hit.wav" in _rejects()[0]["detail"]


def test_source_id_is_path_relative_to_its_local_dir(collect_workdir: Path) -> None:
    lib1, lib2 = collect_workdir.parent / "lib1", collect_workdir.parent / "deep" / "lib2"
    _make(lib1, ["kick/k1.wav", "kick/sub/k2.wav"])
    _make(lib2, ["snare/s1.wav"])
    # The files of lib2 must differ in content from lib1's (same seeds would be duplicates).
    _hit(lib2 / "snare/s1.wav", seed=99)
    _params(collect_workdir, sources=["local"], local_dirs=[str(lib1), str(lib2)])
    _run(collect)
    rows = _manifest("collected")
    assert sorted(r["source_id"] for r in rows) == [
        "kick/k1.wav",
        "kick/sub/k2.wav",
        "snare/s1.wav",
    ]
    assert all(r["source"] == "local" and r["variant"] == "original" for r in rows)
    assert all(r["license"] and r["attribution"] for r in rows)


def test_same_relative_path_in_two_libraries_keeps_both(collect_workdir: Path) -> None:
    """Two packs with the same layout must not overwrite each other downstream."""
    lib1, lib2 = collect_workdir.parent / "pack1", collect_workdir.parent / "pack2"
    _hit(lib1 / "kick/kick01.wav", seed=1)
    _hit(lib2 / "kick/kick01.wav", seed=2)
    _params(collect_workdir, sources=["local"], local_dirs=[str(lib1), str(lib2)])
    _run(collect, normalize, trim, pad, label)
    rows = _manifest("labeled")
    assert [r["source_id"] for r in rows] == ["kick/kick01.wav", "kick/kick01.wav"]
    assert len({r["uid"] for r in rows}) == 2
    assert len({(Path("data/labeled") / r["path"]).read_bytes() for r in rows}) == 2


def test_local_files_are_referenced_not_copied(collect_workdir: Path) -> None:
    lib = collect_workdir.parent / "lib"
    names = ["kick/k.wav", "snare/s.flac", "clap/c.wav"]
    _make(lib, names)
    _params(collect_workdir, sources=["local"], local_dirs=[str(lib)])
    _run(collect)
    rows = _manifest("collected")
    assert len(rows) == len(names)
    for r in rows:
        assert not os.path.isabs(r["path"]), r["path"]
        assert (Path("data/collected") / r["path"]).resolve() == (lib / r["source_id"]).resolve()
        assert int(r["sample_rate"]) == SR and int(r["num_samples"]) == int(0.4 * SR)
    copies = [p for p in Path("data/collected").rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES]
    assert copies == []
    # Nothing in the user's folder was touched.
    assert sorted(p.relative_to(lib).as_posix() for p in lib.rglob("*.*")) == sorted(names)


def test_duplicate_content_is_refused_once(collect_workdir: Path) -> None:
    lib = collect_workdir.parent / "lib"
    _make(lib, ["kick/original.wav", "snare/other.wav"])
    (lib / "kick/original copy.wav").write_bytes((lib / "kick/original.wav").read_bytes())
    _params(collect_workdir, sources=["local"], local_dirs=[str(lib)])
    _run(collect)
    kept = {r["source_id"] for r in _manifest("collected")}
    dups = [r for r in _rejects() if r["reason"] == "duplicate"]
    assert len(dups) == 1 and dups[0]["stage"] == "collect"
    assert "snare/other.wav" in kept
    pair = {"kick/original.wav", "kick/original copy.wav"}
    assert len(kept & pair) == 1
    refused = (pair - kept).pop()
    assert Path(dups[0]["path"]).resolve() == (lib / refused).resolve()
    assert len(_rejects()) == 1


def _assert_one_line_error(capfd: pytest.CaptureFixture[str], *words: str) -> None:
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("collect: error:"), err
    for word in words:
        assert word in lines[0], (word, err)
    # Nothing was collected: no silent fallback to another source.
    assert not Path("data/collected/manifest.csv").exists()


def test_unknown_source_exits_2(collect_workdir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _params(collect_workdir, sources=["demo", "soundcloud"])
    assert run(collect, "--no-progress") == 2
    _assert_one_line_error(capfd, "soundcloud")


def test_missing_local_dir_exits_2(
    collect_workdir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = collect_workdir.parent / "no such folder"
    _params(collect_workdir, sources=["local"], local_dirs=[str(missing)])
    assert run(collect, "--no-progress") == 2
    _assert_one_line_error(capfd, "no such folder")


def test_local_without_dirs_exits_2(
    collect_workdir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _params(collect_workdir, sources=["local"], local_dirs=[])
    assert run(collect, "--no-progress") == 2
    _assert_one_line_error(capfd, "local_dirs")


@pytest.mark.parametrize("sources", [["freesound"], ["demo", "freesound"]])
def test_freesound_without_key_is_a_one_line_error(
    collect_workdir: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sources: list[str],
) -> None:
    monkeypatch.delenv("FREESOUND_API_KEY", raising=False)
    monkeypatch.setenv("FREESOUND_API_URL", "http://127.0.0.1:9/apiv2")  # never the internet
    _params(collect_workdir, sources=sources)
    assert run(collect, "--no-progress") == 2
    _assert_one_line_error(capfd, "freesound")
