"""The stage runner: real stages on a corpus of broken and good files, and the runner's own parts.

The corpus is laid out as a user's sample folder (``<dir>/<class>/*.wav``). Each broken file must
end up in ``data/rejects.csv`` with its own specific reason, every good file must reach
``data/augmented/manifest.csv`` with its class and variants, and nothing may print a traceback.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
import shutil
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from chain import run

from core import audio_io
from core import params as core_params
from core.errors import Reject
from pipeline import manifests, runner
from pipeline.stages import augment, collect, label, normalize, pad, trim

REPO = Path(__file__).resolve().parents[2]
SR = 44100
STAGE_MODULES = [collect, normalize, trim, pad, label, augment]
STAGE_NAMES = ["collect", "normalize", "trim", "pad", "label", "augment"]
STAGE_DIRS = ["collected", "normalized", "trimmed", "padded", "labeled", "augmented"]
VARIANTS = 3
VARIANT_RE = re.compile(r"^(phase_flip|pitch_[+-]\d+\.\d\d|saturate_\d+\.\d\d|gain_-?\d+\.\d\d)$")


# ----------------------------------------------------------------------------- corpus


def _burst(n: int, sr: int, lead: float, kind: str, seed: int, channels: int = 1) -> np.ndarray:
    """A drum-like burst: leading silence, then a decaying sine (kick) or noise (snare)."""
    rng = np.random.default_rng(seed)
    lead_n = int(lead * sr)
    t = np.arange(n - lead_n) / sr
    chans = []
    for _ in range(channels):
        if kind == "kick":
            body = np.sin(2 * np.pi * (50 + 120 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.4)
        else:
            body = rng.standard_normal(t.size) * np.exp(-t / 0.12)
            body += 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)
        chans.append(np.concatenate([np.zeros(lead_n), 0.7 * body / np.max(np.abs(body))]))
    return np.stack(chans).T.astype(np.float32)  # [frames, channels] for soundfile


# Good files: relative path -> class. Different rates, channel counts, formats and lengths
# (the 2.5 s one is longer than audio.duration after trimming, so pad must crop it).
GOOD = {
    "kick/Kick 01.wav": "kick",
    "kick/kick_long.flac": "kick",
    "snare/snare_a.wav": "snare",
    "snare/snare_b.flac": "snare",
}

# Broken files: relative path -> (stage that must refuse it, reason code).
BROKEN = {
    "kick/truncated_header.wav": ("collect", "corrupt_header"),
    "kick/zero_bytes.wav": ("collect", "empty_file"),
    "snare/readme.wav": ("collect", "not_audio"),
    "snare/has_nan.wav": ("normalize", "non_finite"),
    "kick/surround_6ch.wav": ("collect", "too_many_channels"),
    "snare/lofi_8k.wav": ("collect", "sample_rate_too_low"),
    "kick/hires_96k.wav": ("collect", "sample_rate_too_high"),
    "snare/long_30s.wav": ("collect", "too_long"),
    "kick/all_zeros.wav": ("normalize", "silent"),
    "snare/x.wav": ("collect", "not_a_file"),
    "kick/cut_off.wav": ("collect", "truncated"),
}


def make_corpus(root: Path) -> None:
    """Write the good and broken files under ``root/<class>/``."""
    for cls in ("kick", "snare"):
        (root / cls).mkdir(parents=True)
    sf.write(root / "kick/Kick 01.wav", _burst(int(0.6 * SR), SR, 0.1, "kick", 1), SR, "PCM_16")
    sf.write(root / "kick/kick_long.flac", _burst(120000, 48000, 0.2, "kick", 2, 2), 48000)
    sf.write(root / "snare/snare_a.wav", _burst(9000, 22050, 0.05, "snare", 3), 22050, "FLOAT")
    sf.write(root / "snare/snare_b.flac", _burst(int(0.8 * SR), SR, 0.15, "snare", 4), SR)

    valid = io.BytesIO()
    sf.write(valid, _burst(SR // 2, SR, 0.0, "kick", 5), SR, format="WAV", subtype="PCM_16")
    whole = valid.getvalue()
    (root / "kick/truncated_header.wav").write_bytes(whole[:30])
    (root / "kick/cut_off.wav").write_bytes(whole[: len(whole) // 2])
    (root / "kick/zero_bytes.wav").write_bytes(b"")
    (root / "snare/readme.wav").write_text("These are my favourite snares.\n" * 20)
    nan = _burst(SR // 2, SR, 0.0, "snare", 6)
    nan[1000:1010] = np.nan
    sf.write(root / "snare/has_nan.wav", nan, SR, "FLOAT")
    sf.write(root / "kick/surround_6ch.wav", _burst(SR // 2, SR, 0.0, "kick", 7, 6), SR)
    sf.write(root / "snare/lofi_8k.wav", _burst(4000, 8000, 0.0, "snare", 8), 8000)
    sf.write(root / "kick/hires_96k.wav", _burst(48000, 96000, 0.0, "kick", 9), 96000)
    sf.write(root / "snare/long_30s.wav", _burst(30 * SR, SR, 0.0, "snare", 10), SR, "PCM_16")
    sf.write(root / "kick/all_zeros.wav", np.zeros((SR // 2, 1), np.float32), SR, "PCM_16")
    (root / "snare/x.wav").mkdir()


def write_params(workdir: Path, corpus: Path, *, workers: int, chunk_size: int) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["collect"]["sources"] = ["local"]
    params["collect"]["local_dirs"] = [str(corpus)]
    params["runner"]["workers"] = workers
    params["runner"]["chunk_size"] = chunk_size
    params["augment"]["variants"] = VARIANTS
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


@contextlib.contextmanager
def captured_output(log: Path) -> Iterator[None]:
    """Send everything written to stdout/stderr, by this process and its workers, to ``log``.

    File-descriptor level, so a traceback printed in a forked worker is caught as well.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    with log.open("ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        stream = open(1, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
        sys.stdout = sys.stderr = stream
        try:
            yield
        finally:
            stream.flush()
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)


def run_all_stages(workdir: Path, log: Path, argv: list[str]) -> dict[str, int]:
    """Call every stage's ``main`` in order from ``workdir``; the exit code of each."""
    codes: dict[str, int] = {}
    old = Path.cwd()
    os.chdir(workdir)
    try:
        with captured_output(log):
            for name, module in zip(STAGE_NAMES, STAGE_MODULES, strict=True):
                codes[name] = run(module, *argv)
    finally:
        os.chdir(old)
    return codes


@dataclass
class PipelineRun:
    workdir: Path
    corpus: Path
    codes: dict[str, int]
    output: str

    def manifest(self, stage_dir: str) -> list[dict[str, str]]:
        with (self.workdir / "data" / stage_dir / "manifest.csv").open(newline="") as fh:
            return list(csv.DictReader(fh))

    def rejects(self) -> tuple[list[str], list[dict[str, str]]]:
        with (self.workdir / "data/rejects.csv").open(newline="") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), list(reader)

    def reject_target(self, path: str) -> Path:
        """The file a rejects row names (a relative path is relative to the repo root)."""
        p = Path(path)
        return (p if p.is_absolute() else self.workdir / p).resolve()


@pytest.fixture(scope="module")
def broken_corpus_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """All six stages, with two worker processes and small chunks, on the broken corpus."""
    base = tmp_path_factory.mktemp("runner")
    corpus, workdir = base / "samples", base / "repo"
    make_corpus(corpus)
    workdir.mkdir()
    write_params(workdir, corpus, workers=2, chunk_size=2)
    log = base / "output.log"
    codes = run_all_stages(workdir, log, ["--no-progress"])
    return PipelineRun(workdir, corpus, codes, log.read_text(encoding="utf-8", errors="replace"))


# ----------------------------------------------------------------------------- the real stages


def test_every_stage_succeeds(broken_corpus_run: PipelineRun) -> None:
    assert broken_corpus_run.codes == dict.fromkeys(STAGE_NAMES, 0), broken_corpus_run.output
    # Each stage printed its summary line (so the output was really captured).
    for name in STAGE_NAMES:
        assert re.search(rf"^{name}: \d+ in, \d+ out, \d+ refused", broken_corpus_run.output, re.M)


def test_no_traceback_printed(broken_corpus_run: PipelineRun) -> None:
    assert "Traceback" not in broken_corpus_run.output


def test_rejects_file_columns(broken_corpus_run: PipelineRun) -> None:
    columns, rows = broken_corpus_run.rejects()
    assert columns[:3] == ["path", "stage", "reason"]
    assert "detail" in columns
    assert all(r["detail"] for r in rows), rows
    # Every refusal, even one at a later stage, names the collected file it came from.
    assert all(r["source"] == "local" and r["source_id"] for r in rows), rows


@pytest.mark.parametrize("rel", sorted(BROKEN))
def test_broken_file_refused_with_specific_reason(broken_corpus_run: PipelineRun, rel: str) -> None:
    _, rows = broken_corpus_run.rejects()
    target = (broken_corpus_run.corpus / rel).resolve()
    hits = [r for r in rows if broken_corpus_run.reject_target(r["path"]) == target]
    stage, reason = BROKEN[rel]
    assert [(r["stage"], r["reason"]) for r in hits] == [(stage, reason)], rows


def test_reject_paths_are_readable(broken_corpus_run: PipelineRun) -> None:
    """A file outside the repo is named by its absolute path, not via ``data/collected/../..``."""
    _, rows = broken_corpus_run.rejects()
    for r in rows:
        assert ".." not in Path(r["path"]).parts, r["path"]
        assert Path(r["path"]).is_absolute(), r["path"]  # the corpus lies outside the repo


def test_only_broken_files_are_refused(broken_corpus_run: PipelineRun) -> None:
    _, rows = broken_corpus_run.rejects()
    refused = {broken_corpus_run.reject_target(r["path"]) for r in rows}
    assert refused == {(broken_corpus_run.corpus / rel).resolve() for rel in BROKEN}
    assert len(rows) == len(BROKEN)


def test_good_files_reach_final_manifest(broken_corpus_run: PipelineRun) -> None:
    rows = broken_corpus_run.manifest("augmented")
    assert set(manifests.MANIFEST_COLUMNS) <= set(rows[0])
    by_source: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_source.setdefault(r["source_id"], []).append(r)
    assert set(by_source) == set(GOOD)
    for source_id, clips in by_source.items():
        assert {c["label"] for c in clips} == {GOOD[source_id]}
        assert {c["source"] for c in clips} == {"local"}
        variants = [c["variant"] for c in clips]
        assert variants.count("original") == 1, variants
        others = [v for v in variants if v != "original"]
        assert len(others) == VARIANTS and len(set(others)) == VARIANTS, variants
        assert all(VARIANT_RE.match(v) for v in others), variants
    assert len(rows) == len(GOOD) * (1 + VARIANTS)


@pytest.mark.parametrize("stage_dir", ["padded", "labeled", "augmented"])
def test_output_files_exact_length_finite_not_silent(
    broken_corpus_run: PipelineRun, stage_dir: str
) -> None:
    folder = broken_corpus_run.workdir / "data" / stage_dir
    rows = broken_corpus_run.manifest(stage_dir)
    assert rows
    for r in rows:
        assert not Path(r["path"]).is_absolute()
        path = folder / r["path"]
        assert path.is_file(), r["path"]
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
        assert sr == SR and int(r["sample_rate"]) == SR
        assert audio.shape == (SR, 1), (r["path"], audio.shape)  # sample_rate * duration, mono
        assert int(r["num_samples"]) == SR
        assert np.isfinite(audio).all(), r["path"]
        peak = float(np.max(np.abs(audio)))
        assert 10 ** (-40 / 20) < peak <= 1.0, (r["path"], peak)


def test_no_temporary_files_left(broken_corpus_run: PipelineRun) -> None:
    data = broken_corpus_run.workdir / "data"
    leftovers = [p for p in data.rglob("*") if p.name.startswith(".") or ".part" in p.name]
    assert leftovers == []


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_real_stages_identical_with_one_worker(
    broken_corpus_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Same files, same bytes, same manifests with one worker as with two."""
    # A sibling of the first repo, so relative paths to the corpus have the same shape.
    workdir = broken_corpus_run.workdir.parent / "repo_one_worker"
    workdir.mkdir()
    shutil.copy(broken_corpus_run.workdir / "params.yaml", workdir / "params.yaml")
    log = workdir.parent / "one_worker.log"
    codes = run_all_stages(workdir, log, ["--no-progress", "--workers", "1"])
    assert codes == dict.fromkeys(STAGE_NAMES, 0), log.read_text()
    for stage_dir in STAGE_DIRS:
        one = _tree_digest(workdir / "data" / stage_dir)
        two = _tree_digest(broken_corpus_run.workdir / "data" / stage_dir)
        assert one == two, stage_dir
    assert (workdir / "data/rejects.csv").read_bytes() == (
        broken_corpus_run.workdir / "data/rejects.csv"
    ).read_bytes()


# ----------------------------------------------------------------------------- runner units


def _tone(seed: str) -> np.ndarray:
    freq = 200 + int(hashlib.sha256(seed.encode()).hexdigest()[:4], 16) % 800
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(4000) / 8000)).astype(np.float32)


def process_failing_on_bad(jobs: list[runner.Job], params: dict) -> list[runner.Result]:
    """A test stage: a tone per job; raises (for the whole chunk) when a job is named 'bad'."""
    if any(job.row["source_id"] == "bad" for job in jobs):
        raise RuntimeError("boom on bad input")
    return [
        [runner.Output(f"{job.row['source_id']}.wav", _tone(job.row["source_id"]), 8000)]
        for job in jobs
    ]


def process_rejecting(jobs: list[runner.Job], params: dict) -> list[runner.Result]:
    """A test stage that refuses odd-numbered jobs and writes two files for the others."""
    results: list[runner.Result] = []
    for job in jobs:
        sid = job.row["source_id"]
        if int(sid[1:]) % 2:
            results.append(Reject("odd", f"{sid} is odd"))
            continue
        outs = [runner.Output(f"{sid}/{k}.wav", _tone(f"{sid}{k}"), 8000) for k in "ab"]
        results.append(outs)
    return results


def _rows(ids: list[str]) -> list[dict[str, str]]:
    return [{"path": "", "source": "test", "source_id": i, "label": "kick"} for i in ids]


def _stage(process: runner.ProcessFn) -> runner.Stage:
    params = core_params.load(REPO / "params.yaml")
    return runner.Stage(name="teststage", process=process, params=params, read="none")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chunk_size", [1, 4])
def test_processing_error_rejects_only_that_job(
    tmp_path: Path, workers: int, chunk_size: int
) -> None:
    ids = ["j0", "j1", "j2", "bad", "j4", "j5", "j6"]
    out, rejects_file = tmp_path / "out", tmp_path / "rejects.csv"
    result = runner.run(
        _stage(process_failing_on_bad),
        _rows(ids),
        tmp_path,
        out,
        workers=workers,
        chunk_size=chunk_size,
        rejects_file=rejects_file,
        progress=False,
    )
    good = [i for i in ids if i != "bad"]
    assert [r["source_id"] for r in result.rows] == good
    assert len(result.rejects) == 1
    rej = result.rejects[0]
    assert (rej["path"], rej["stage"], rej["reason"]) == ("bad", "teststage", "processing_error")
    assert "RuntimeError" in rej["detail"] and "boom" in rej["detail"]
    assert sorted(p.name for p in out.glob("*.wav")) == [f"{i}.wav" for i in good]
    with rejects_file.open(newline="") as fh:
        assert [(r["path"], r["reason"]) for r in csv.DictReader(fh)] == [
            ("bad", "processing_error")
        ]
    with (out / "manifest.csv").open(newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert [r["source_id"] for r in manifest] == good
    assert all(r["num_samples"] == "4000" and r["sample_rate"] == "8000" for r in manifest)


def test_runner_output_identical_with_one_and_two_workers(tmp_path: Path) -> None:
    ids = [f"c{i}" for i in range(11)]
    digests = []
    manifests = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        result = runner.run(
            _stage(process_rejecting),
            _rows(ids),
            tmp_path,
            out,
            workers=workers,
            chunk_size=3,
            rejects_file=tmp_path / f"rejects{workers}.csv",
            progress=False,
        )
        assert len(result.rows) == 2 * 6 and len(result.rejects) == 5
        digests.append(_tree_digest(out))
        manifests.append((out / "manifest.csv").read_text())
    assert digests[0] == digests[1]
    assert manifests[0] == manifests[1]
    assert (tmp_path / "rejects1.csv").read_text() == (tmp_path / "rejects2.csv").read_text()


def test_run_replaces_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "stale").mkdir(parents=True)
    (out / "stale/old.wav").write_bytes(b"old")
    runner.run(
        _stage(process_rejecting),
        _rows(["c0"]),
        tmp_path,
        out,
        workers=1,
        rejects_file=None,
        progress=False,
    )
    assert not (out / "stale").exists()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "c0/a.wav",
        "c0/b.wav",
    ]


@pytest.mark.parametrize(
    ("name", "subtype"),
    [
        ("a.wav", "FLOAT"),
        ("b.wav", "PCM_16"),
        ("c.wav", "PCM_24"),
        ("d.flac", None),
        ("e.ogg", None),
    ],
)
def test_write_atomic_leaves_no_part_files(tmp_path: Path, name: str, subtype: str | None) -> None:
    audio = np.stack([_tone("l"), _tone("r")]) * 0.9
    audio_io.write_atomic(tmp_path / "out" / name, audio, 8000, subtype)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]
    back, sr = sf.read(tmp_path / "out" / name, dtype="float32", always_2d=True)
    assert sr == 8000 and back.shape == (4000, 2)
    if name.endswith((".wav", ".flac")):
        np.testing.assert_allclose(back.T, audio, atol=1e-4)


def test_write_atomic_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        audio_io.write_atomic(tmp_path / "bad.wav", np.zeros((1, 100), np.float32), 8000, "NOPE")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="extension"):
        audio_io.write_atomic(tmp_path / "bad.txt", np.zeros((1, 100), np.float32), 8000)
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_keeps_existing_file_when_write_fails(tmp_path: Path) -> None:
    dest = tmp_path / "clip.wav"
    audio_io.write_atomic(dest, _tone("x")[None, :], 8000, "PCM_16")
    before = dest.read_bytes()
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        audio_io.write_atomic(dest, _tone("y")[None, :], 8000, "NOPE")
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["clip.wav"]


def _peak_timestamp(path: Path) -> int:
    data = path.read_bytes()
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack("<4sI", data[pos : pos + 8])
        if cid == b"PEAK":
            return struct.unpack("<I", data[pos + 12 : pos + 16])[0]
        pos += 8 + size + (size & 1)
    raise AssertionError("no PEAK chunk")


def test_write_atomic_is_byte_reproducible(tmp_path: Path) -> None:
    """Same audio, same bytes: otherwise DVC sees a changed output on every run."""
    audio = np.stack([_tone("l"), _tone("r")])
    for name in ("one", "two"):
        audio_io.write_atomic(tmp_path / f"{name}.ogg", audio, 44100)
        audio_io.write_atomic(tmp_path / f"{name}.wav", audio, 44100, "FLOAT")
    # Ogg streams get a random serial number from libsndfile.
    assert (tmp_path / "one.ogg").read_bytes() == (tmp_path / "two.ogg").read_bytes()
    # A float WAV's PEAK chunk holds the time of writing (whole seconds).
    assert _peak_timestamp(tmp_path / "one.wav") == 0
    assert (tmp_path / "one.wav").read_bytes() == (tmp_path / "two.wav").read_bytes()
    # The Ogg file is still valid (page checksums): it decodes to the full length.
    back, sr = sf.read(tmp_path / "one.ogg", dtype="float32", always_2d=True)
    assert sr == 44100 and back.shape == (4000, 2)
    assert np.corrcoef(back[:, 0], audio[0])[0, 1] > 0.99


def _read_rejects(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _rej(path: str, stage: str, reason: str) -> dict[str, str]:
    return {"path": path, "stage": stage, "reason": reason, "detail": f"{reason} detail"}


def test_update_rejects_replaces_only_that_stage(tmp_path: Path) -> None:
    path = tmp_path / "data" / "rejects.csv"
    manifests.update_rejects("collect", [_rej("a.wav", "collect", "empty_file")], path)
    manifests.update_rejects(
        "normalize",
        [_rej("b.wav", "normalize", "silent"), _rej("c.wav", "normalize", "non_finite")],
        path,
    )
    manifests.update_rejects("trim", [_rej("d.wav", "trim", "silent")], path)

    manifests.update_rejects("normalize", [_rej("e.wav", "normalize", "silent")], path)
    columns, rows = _read_rejects(path)
    assert columns == ["path", "stage", "reason", "detail", "source", "source_id"]
    assert sorted((r["path"], r["stage"], r["reason"]) for r in rows) == [
        ("a.wav", "collect", "empty_file"),
        ("d.wav", "trim", "silent"),
        ("e.wav", "normalize", "silent"),
    ]

    manifests.update_rejects("trim", [], path)
    _, rows = _read_rejects(path)
    assert sorted(r["path"] for r in rows) == ["a.wav", "e.wav"]
    assert [p.name for p in path.parent.iterdir()] == ["rejects.csv"]  # no temporary file left
