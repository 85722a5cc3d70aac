"""training.stream and ``train.data: shards``: training from WebDataset shards in a folder or
over HTTP, exact resume after a kill, two DDP ranks sharing the shards, bounded memory.

The set is drumkit's small kit, cut into shards by the real ``shard`` stage.
"""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import drumkit
import pytest
import torch
import yaml
from drumkit import CLASSES, env, kill_and_resume, run_train, write_kit

import training.train as tt
from pipeline.stages import shard as shard_stage
from training.checkpoints import load_checkpoint
from training.data import DataError
from training.stream import ShardIndex, ShardStream

PER_CLASS = 4  # 16 clips
PER_SHARD = 4  # 4 shards


def _project(root: Path, per_shard: int = PER_SHARD, **train) -> Path:
    """A project with the kit, its shards in data/shards and params for training from them."""
    root.mkdir(parents=True, exist_ok=True)
    write_kit(root, per_class=PER_CLASS)
    params = drumkit.write_params(root, eval_every=0, data="shards", **train)
    params["shard"]["clips_per_shard"] = per_shard
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    data, params_file = root / "data", str(root / "params.yaml")
    argv = [str(data / "augmented"), str(data / "shards"), "--no-progress", "--params", params_file]
    assert shard_stage.main(argv) == 0
    return root


def _set_shards(root: Path, where: str) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["shards"] = where
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield root
    torch.set_num_threads(threads)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served() -> Iterator[callable]:
    """Serve a folder over HTTP on 127.0.0.1 (as a bucket behind https would); the base URL."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()


def _weights(path: Path) -> dict:
    ckpt = load_checkpoint(path)
    return {
        **{f"m.{k}": v for k, v in ckpt["model"].items()},
        **{f"e.{k}": v for k, v in ckpt["ema"].items()},
    }


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_run_from_http_shards_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, project: Path, served
) -> None:
    # batch 3 over shards of 4: batches straddle shards, and 14 steps cross epochs.
    settings = {"steps": 14, "checkpoint_every": 3, "batch_size": 3}
    reference = _project(project, **settings)  # from the folder, in this process
    assert tt.main(["--no-progress"]) == 0

    root = _project(tmp_path / "killed", **settings)
    _set_shards(root, served(root / "data" / "shards"))
    killed_at, out = kill_and_resume(root)
    assert 3 <= killed_at < 14
    assert (
        "16 clips (kick 4, snare 4, hihat 4, clap 4) streamed from http://127.0.0.1" in out.stdout
    )
    # The same stream from the same place after the restart, over HTTP or from the folder.
    assert _same(_weights(reference / "models/model.pt"), _weights(root / "models/model.pt"))


def test_the_stream_differs_from_the_folder_and_the_folder_still_trains(project: Path) -> None:
    """Shards are a real second path, not the in-memory set renamed: other batches, other
    weights; and train.data: folder is untouched by it."""
    _project(project, steps=4, checkpoint_every=4)
    assert tt.main(["--no-progress", "--fresh"]) == 0
    streamed = _weights(project / "models/model.pt")
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    params["train"]["data"] = "folder"
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    assert tt.main(["--no-progress", "--fresh"]) == 0
    assert not _same(streamed, _weights(project / "models/model.pt"))


def _keys_per_rank(shards: Path, world: int, batches: int, batch_size: int) -> list[list[str]]:
    """Each rank's clip keys over ``batches`` micro-batches, read in that many DDP processes
    (gloo) that gather them on rank 0."""
    script = f"""
import json, os, sys
import torch.distributed as dist
from training.stream import ShardIndex, ShardStream
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
stream = ShardStream(ShardIndex.read({str(shards)!r}), {CLASSES!r}, {batch_size}, 0, rank, world)
mine = [k for b in range({batches}) for k in stream.batch_keys(b)]
everyone = [None] * world
dist.all_gather_object(everyone, mine)
if rank == 0:
    print(json.dumps(everyone))
dist.destroy_process_group()
"""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(world):
        e = {**env(), "RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
             "MASTER_PORT": str(port)}  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script], env=e, stdout=subprocess.PIPE, text=True
            )
        )
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return json.loads(outs[0])


def test_two_ddp_ranks_see_each_clip_once_per_epoch(project: Path) -> None:
    _project(project)
    all_keys = sorted(f"{c}/{c}_{i:03d}" for c in CLASSES for i in range(PER_CLASS))
    # 16 clips, 2 ranks, batch 2: an epoch is 4 micro-batches per rank; read two epochs.
    ranks = _keys_per_rank(project / "data" / "shards", world=2, batches=8, batch_size=2)
    epoch0 = ranks[0][:8] + ranks[1][:8]
    epoch1 = ranks[0][8:] + ranks[1][8:]
    assert sorted(epoch0) == all_keys and sorted(epoch1) == all_keys
    assert not set(ranks[0][:8]) & set(ranks[1][:8]), "a clip read by both ranks in one epoch"
    assert ranks[0][:8] + ranks[1][:8] != ranks[0][8:] + ranks[1][8:], "epochs not reshuffled"


def test_two_process_ddp_training_from_shards(tmp_path: Path) -> None:
    root = _project(tmp_path / "ddp", steps=3, checkpoint_every=3, devices=2, batch_size=2)
    out = run_train(root)
    assert out.returncode == 0, out.stdout
    assert "2 process(es) on cpu" in out.stdout and "streamed from data/shards" in out.stdout
    assert load_checkpoint(root / "models/model.pt")["identity"]["world_size"] == 2


def test_memory_holds_at_most_a_few_shards(project: Path) -> None:
    _project(project, per_shard=2)  # 8 shards
    stream = ShardStream(ShardIndex.read("data/shards"), CLASSES, batch_size=3, seed=0)
    for k in range(20):  # almost four epochs
        stream.batch(k)
        assert len(stream._cache) <= 3
    stream.close()


def test_bad_shards_stop_with_one_line(project: Path, served, capsys) -> None:
    _project(project)
    tar = sorted(Path("data/shards").glob("*.tar"))[1]
    data = bytearray(tar.read_bytes())
    data[600] ^= 0xFF
    tar.write_bytes(bytes(data))
    assert tt.main(["--no-progress", "--fresh"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"train: error: {tar.name}: its content is not") and "\n" not in err

    _set_shards(project, served(project / "nowhere"))
    assert tt.main(["--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: cannot read http://127.0.0.1:") and "index.json" in err

    with pytest.raises(DataError, match="4 shard\\(s\\) cannot be shared among 5 processes"):
        ShardStream(ShardIndex.read("data/shards"), CLASSES, 2, 0, rank=0, world_size=5)


def test_two_machines_through_torchrun_from_shards(tmp_path: Path) -> None:
    """train.num_nodes 2 as README launches it: torchrun on each machine (here two on this
    one, sharing the folder), one process each, every rank reading its own shards."""
    root = _project(tmp_path / "nodes", steps=3, checkpoint_every=3, num_nodes=2, batch_size=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = Path(sys.executable).with_name("torchrun")
    procs = [
        subprocess.Popen(
            [
                str(torchrun),
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(node),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                "-m",
                "training.train",
                "--no-progress",
            ],
            cwd=root,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for node in (0, 1)
    ]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "2 process(es) on cpu" in outs[0] and "streamed from data/shards" in outs[0]
    ckpt = load_checkpoint(root / "models/checkpoints/last.pt")
    assert ckpt["step"] == 3 and ckpt["identity"]["world_size"] == 2
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0], ckpt["rng"][1])


def test_several_machines_without_a_launcher_stop_with_one_line(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _project(project, num_nodes=2)
    for name in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "MASTER_ADDR", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert tt.main(["--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: train.num_nodes is 2 but no launcher") and "\n" not in err
    assert not Path("models").exists()
