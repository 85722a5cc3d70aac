"""The stage runner's Ray backend (``runner.backend: ray``): the local pool's chunks as Ray tasks.

The contract is the local pool's: the same fixed chunks (``chunk_size`` alone), each run by the
runner's own ``_run_chunk``, results kept by chunk index so the output is in input order and
byte-identical to the local backend's. Only the place the chunks run changes.

The workers must see the same code and the same files as this process: a shared filesystem
mounted at the same path on every node, and this repo at the same path (it is put on the
workers' ``PYTHONPATH``, so a cluster started with plain ``ray start`` imports ``pipeline``).
Each task runs in this process's working folder, so relative paths mean the same there.

Ray is an optional extra (``pip install -e '.[ray]'``) and is imported only here, only when the
backend is chosen. A worker process that dies is retried by Ray; a chunk whose worker dies on
every try becomes rejects (``worker_lost``), never a failed stage.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from core.errors import ConfigError, Reject
from core.files import Row
from core.params import Runner
from pipeline import runner

REPO = Path(__file__).resolve().parents[1]
MAX_RETRIES = 3  # tries after the first when a worker process dies (not when a file is bad)
TASKS_PER_CPU = 2  # chunks in flight per CPU: every core busy, memory flat
CONNECT_TIMEOUT_S = 5.0

Results = dict[int, tuple[list[Row], list[Row]]]


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "runner.backend is ray but ray is not installed: pip install -e '.[ray]'"
        ) from exc
    return ray


def _first_line(exc: BaseException) -> str:
    """An exception as one line: the stage's error and its rejects are one line each."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _host_port(address: str) -> tuple[str, int] | None:
    """Where a cluster address points (``None`` for ``auto`` with no cluster to find)."""
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die
        except ImportError:  # a Ray without this helper: let ray.init find it
            return None
        try:
            address = canonicalize_bootstrap_address_or_die("auto")
        except ConnectionError as exc:
            msg = f"runner.address is auto but no Ray cluster was found: {_first_line(exc)}"
            raise ConfigError(msg) from exc
    default_port = 10001 if address.startswith("ray://") else 6379
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host:
        return address.removeprefix("ray://"), default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError as exc:
        raise ConfigError(f"runner.address {address!r} is not host:port") from exc


def _check_reachable(address: str) -> None:
    """Refuse an address nobody answers at within seconds: ``ray.init`` would wait minutes."""
    where = _host_port(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(
            f"runner.address {address!r}: no Ray cluster answers at {where[0]}:{where[1]} ({exc})"
        ) from exc


@dataclass
class Session:
    """This process's link to Ray for one stage; ``close`` stops Ray only if it started it."""

    ray: ModuleType
    slots: int  # chunks running at once (tasks in flight: TASKS_PER_CPU times as many)
    started: bool

    def process(self, *args: Any) -> None:
        """:func:`run_chunks` in this session (the runner's call for the local pool's)."""
        run_chunks(self, *args)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def preflight(settings: Runner) -> None:
    """Ray installed and the address answering: checked before a stage lists its inputs
    (collect's may download from Freesound), so a bad setting costs nothing."""
    _import_ray()
    if settings.address.strip():
        _check_reachable(settings.address.strip())


def connect(settings: Runner, workers: int) -> Session:
    """Join the cluster at ``runner.address`` ("" = start Ray in this process), or stop the
    stage with one line (``ConfigError``) before any file is touched."""
    ray = _import_ray()
    address = settings.address.strip()
    if address:
        _check_reachable(address)
    if ray.is_initialized():  # an earlier stage in this process joined it already
        return Session(ray, _slots(ray, workers), started=False)
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    try:
        ray.init(
            address=address or None,
            num_cpus=(workers or None) if not address else None,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
            ignore_reinit_error=True,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
        )
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        msg = f"runner.address {address!r}: cannot join Ray: {_first_line(exc)}"
        if address:  # Ray joins an explicit address with token authentication only if asked
            msg += " (if the cluster uses token authentication, set RAY_AUTH_MODE=token here)"
        raise ConfigError(msg) from exc
    return Session(ray, _slots(ray, workers), started=not address)


def _slots(ray: ModuleType, workers: int) -> int:
    return workers if workers > 0 else max(1, int(ray.cluster_resources().get("CPU", 1)))


def _chunk_task(
    stage: runner.Stage, rows: list[Row], in_dir: Path, out_dir: Path, cwd: str
) -> tuple[list[Row], list[Row]]:
    """One chunk on a Ray worker, in the driver's folder so relative paths resolve the same."""
    runner._init_worker(stage)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        return runner._run_chunk(rows, in_dir, out_dir)
    finally:
        os.chdir(here)


def _lost(stage: runner.Stage, chunk: list[Row], in_dir: Path, exc: Exception) -> list[Row]:
    """Every row of a chunk whose task failed for good, as rejects with the reason."""
    ray = _import_ray()
    if isinstance(exc, ray.exceptions.RayTaskError):
        rej = Reject("processing_error", _first_line(exc.cause or exc))
    else:
        rej = Reject("worker_lost", f"after {MAX_RETRIES} retries: {_first_line(exc)}")
    return [runner._reject_row(stage, row, in_dir, rej) for row in chunk]


def run_chunks(
    session: Session,
    stage: runner.Stage,
    chunks: list[list[Row]],
    in_dir: Path,
    out_dir: Path,
    results: Results,
    bar: Any,
) -> None:
    """Run every chunk as a Ray task into ``results[chunk index]``, ``bar`` counting files.

    At most ``TASKS_PER_CPU * slots`` tasks are in flight. Ctrl-C cancels them all (their
    partial files go with the stage's fresh folder) and is raised again.
    """
    ray = session.ray
    task = ray.remote(_chunk_task).options(
        num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False
    )
    stage_ref = ray.put(stage)  # pickled once, not once per chunk
    cwd = os.getcwd()
    pending: dict[Any, int] = {}
    todo = iter(range(len(chunks)))

    def submit() -> None:
        i = next(todo, None)
        if i is not None:
            pending[task.remote(stage_ref, chunks[i], in_dir, out_dir, cwd)] = i

    try:
        for _ in range(TASKS_PER_CPU * session.slots):
            submit()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    results[i] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    results[i] = [], _lost(stage, chunks[i], in_dir, exc)
                bar.update(len(chunks[i]))
                submit()
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    _sweep_partials(out_dir)


def _sweep_partials(out_dir: Path) -> None:
    """Remove the temporary files (``.<name>.*.part``) of workers killed mid-write: their
    chunk was run again, so the finished file is there."""
    for tmp in out_dir.rglob(".*.part"):
        if tmp.is_file():
            tmp.unlink()
