"""The Ray backend (``runner.backend: ray``) against a real one-CPU Ray cluster on this machine.

The cluster is started once (``ray start --head --block``) and stopped by its process id. The
stages join it by address, as they would join a cluster of several machines: the outputs must
be byte-identical to the local pool's, a killed worker must cost nothing but a retry, a bad file
must be refused exactly as locally, and a missing ray or a dead address must stop the stage
with one line before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_runner import (
    STAGE_DIRS,
    STAGE_NAMES,
    make_corpus,
    run_all_stages,
    write_params,
)

from bench.pipeline import make_corpus as make_demo_corpus
from core import params as core_params
from pipeline import ray_backend, runner
from pipeline.stages import normalize

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
SLEEP_S = 0.4  # per job of the slow test stage: long enough to kill its worker mid-chunk


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited {proc.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the Ray head did not open port {port}:\n{log.read_text()}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A one-CPU Ray head, started from an unrelated folder with no PYTHONPATH (the workers
    must get the repo from the backend); yields its address, stops it by its process id."""
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # Ray's socket paths must be short
    port = _free_port()
    log = temp / "head.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    # Ray >= 2.5x turns token authentication on when ~/.ray/auth_token exists, and a driver
    # joining by address then needs RAY_AUTH_MODE=token: keep this private test cluster open.
    env["RAY_AUTH_MODE"] = "disabled"
    cmd = [str(RAY), "start", "--head", "--block", "--num-cpus", "1", "--port", str(port)]
    cmd += ["--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(temp)]
    cmd += ["--object-store-memory", str(200 * 2**20)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=temp, env=env)
    try:
        _wait_for_port(port, proc, log)
        # The test stages below are defined here, in a module Ray's workers cannot import.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        proc.send_signal(signal.SIGTERM)  # --block: ray start stops what it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _set_backend(workdir: Path, backend: str, address: str) -> None:
    path = workdir / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["runner"].update(backend=backend, address=address)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) and its sha256."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@dataclass
class Chains:
    local: Path
    ray: Path
    codes: dict[str, dict[str, int]]
    logs: dict[str, str]
    ray_stages: list[str]  # the stages whose chunks went to Ray


@pytest.fixture(scope="module")
def chains(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Chains:
    """Every stage, collect to augment, on the same corpus: once on the local pool (two
    processes), once as Ray tasks on the cluster, in sibling folders (same relative paths)."""
    base = tmp_path_factory.mktemp("raychain")
    corpus = base / "samples"
    make_corpus(corpus)  # 4 good files and 11 broken ones, refused by collect and normalize
    make_demo_corpus(corpus, 5)  # and 5 demo one-shots: mixed rates, formats, channels
    codes, logs, ray_stages = {}, {}, []
    real = ray_backend.run_chunks

    def spy(session: ray_backend.Session, stage: runner.Stage, *args: object) -> None:
        ray_stages.append(stage.name)
        real(session, stage, *args)

    for name, backend, address, workers in [("local", "local", "", 2), ("ray", "ray", cluster, 0)]:
        workdir = base / name
        workdir.mkdir()
        write_params(workdir, corpus, workers=workers, chunk_size=2)
        _set_backend(workdir, backend, address)
        log = base / f"{name}.log"
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ray_backend, "run_chunks", spy)
            codes[name] = run_all_stages(workdir, log, ["--no-progress"])
        logs[name] = log.read_text(encoding="utf-8", errors="replace")
    return Chains(base / "local", base / "ray", codes, logs, ray_stages)


def test_every_stage_succeeds_on_ray(chains: Chains) -> None:
    assert chains.codes["ray"] == dict.fromkeys(STAGE_NAMES, 0), chains.logs["ray"]
    assert chains.codes["local"] == dict.fromkeys(STAGE_NAMES, 0), chains.logs["local"]
    assert "Traceback" not in chains.logs["ray"]
    assert chains.ray_stages == STAGE_NAMES  # the ray chain's stages, and only those, on Ray


@pytest.mark.parametrize("stage_dir", STAGE_DIRS)
def test_outputs_byte_identical_to_local(chains: Chains, stage_dir: str) -> None:
    """Every file (audio and manifest) of every stage, by sha256."""
    local = _tree(chains.local / "data" / stage_dir)
    remote = _tree(chains.ray / "data" / stage_dir)
    assert "manifest.csv" in local
    if stage_dir != "collected":  # collect references the user's files, it copies none
        assert sum(name.endswith(".wav") for name in local) >= 9
    assert remote == local


def test_rejects_identical_to_local(chains: Chains) -> None:
    """A bad file is a reject with its own reason on Ray exactly as locally, not a crash."""
    local = (chains.local / "data/rejects.csv").read_text(encoding="utf-8")
    assert (chains.ray / "data/rejects.csv").read_text(encoding="utf-8") == local
    reasons = {line.split(",")[2] for line in local.splitlines()[1:]}
    assert {"corrupt_header", "not_audio", "non_finite", "silent"} <= reasons


# ----------------------------------------------------------------------------- dying workers


def _tone(sid: str) -> np.ndarray:
    freq = 200 + int(hashlib.sha256(sid.encode()).hexdigest()[:4], 16) % 800
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(4000) / 8000)).astype(np.float32)


def slow_process(jobs: list[runner.Job], params: object) -> list[runner.Result]:
    """A test stage: notes its worker's pid under ./pids, sleeps, writes a tone per job.

    It dies (SIGKILL on itself) on a job named ``doomed``, on every try."""
    pids = Path("pids")  # the task runs in the driver's folder
    pids.mkdir(exist_ok=True)
    (pids / str(os.getpid())).touch()
    out: list[runner.Result] = []
    for job in jobs:
        if job.row["source_id"] == "doomed":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(SLEEP_S)
        sid = job.row["source_id"]
        out.append([runner.Output(f"{sid}.wav", _tone(sid), 8000)])
    return out


def _ray_stage(address: str) -> runner.Stage:
    params = core_params.load(REPO / "params.yaml")
    params = replace(params, runner=replace(params.runner, backend="ray", address=address))
    return runner.Stage(name="slowstage", process=slow_process, params=params, read="none")


def _rows(ids: list[str]) -> list[dict[str, str]]:
    return [{"path": "", "source": "test", "source_id": i, "label": "kick"} for i in ids]


def _kill_first_worker(pids: Path, killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        found = sorted(pids.glob("*")) if pids.is_dir() else []
        if found:
            pid = int(found[0].name)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


def test_killed_worker_is_retried_and_every_file_done_once(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ids = [f"s{i}" for i in range(8)]
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_worker, args=(tmp_path / "pids", killed, stop))
    killer.start()
    try:
        result = runner.run(
            _ray_stage(cluster), _rows(ids), tmp_path, tmp_path / "out", chunk_size=1,
            rejects_file=tmp_path / "rejects.csv", progress=False,
        )  # fmt: skip
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1, "no worker was killed: the test proves nothing"
    assert str(killed[0]) in {p.name for p in (tmp_path / "pids").iterdir()}
    assert len(list((tmp_path / "pids").iterdir())) >= 2  # the chunk ran again elsewhere
    assert result.rejects == []
    assert [r["source_id"] for r in result.rows] == ids  # each once, in input order
    files = _tree(tmp_path / "out")
    assert sorted(files) == sorted([f"{i}.wav" for i in ids] + ["manifest.csv", "rejects.csv"])


def test_chunk_whose_worker_always_dies_becomes_rejects(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ray_backend, "MAX_RETRIES", 1)  # two deaths are enough, and quicker
    ids = ["a0", "a1", "doomed", "a3"]
    result = runner.run(
        _ray_stage(cluster), _rows(ids), tmp_path, tmp_path / "out", chunk_size=2,
        rejects_file=tmp_path / "rejects.csv", progress=False,
    )  # fmt: skip
    assert [r["source_id"] for r in result.rows] == ["a0", "a1"]
    # The whole chunk of the doomed job ("doomed", "a3") is refused, with the reason.
    assert [(r["source_id"], r["reason"]) for r in result.rejects] == [
        ("doomed", "worker_lost"),
        ("a3", "worker_lost"),
    ]
    assert all("after 1 retries" in r["detail"] for r in result.rejects), result.rejects
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["a0.wav", "a1.wav"]


# ----------------------------------------------------------------------------- bad settings


def _one_line_exit_2(
    chains: Chains, tmp_path: Path, address: str, capfd: pytest.CaptureFixture[str]
) -> str:
    """Run normalize with the Ray backend on a copy of the local chain's data; the copy must
    be untouched. Its one line of error."""
    workdir = tmp_path / "repo"
    shutil.copytree(chains.local, workdir, symlinks=True)
    _set_backend(workdir, "ray", address)
    before = _tree(workdir / "data")
    capfd.readouterr()
    old = Path.cwd()
    os.chdir(workdir)
    try:
        rc = normalize.main(["data/collected", "data/normalized", "--no-progress"])
    finally:
        os.chdir(old)
    out, err = capfd.readouterr()
    assert rc == 2
    assert out == ""
    assert _tree(workdir / "data") == before
    assert sorted(p.name for p in (workdir / "data").iterdir()) == sorted(
        p.name for p in (chains.local / "data").iterdir()
    )
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_ray_not_installed_exits_2_with_one_line(
    chains: Chains, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    line = _one_line_exit_2(chains, tmp_path, "", capfd)
    assert line == (
        "normalize: error: runner.backend is ray but ray is not installed: pip install -e '.[ray]'"
    )


def test_unreachable_address_exits_2_with_one_line(
    chains: Chains, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    start = time.monotonic()
    line = _one_line_exit_2(chains, tmp_path, address, capfd)
    assert time.monotonic() - start < 30
    assert line.startswith("normalize: error: runner.address ") and address in line
