"""The one stage runner: manifest in, audio and manifest out, for every pipeline stage.

A stage supplies a function that turns a chunk of jobs into outputs; the runner does the rest:
reading the input manifest, decoding with checks, parallel chunks on all cores, a progress bar,
atomic writes, ``manifest.csv``, the rejects list and the closing summary line. A bad file
becomes a row in the rejects list, never an exception that stops the stage.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm import tqdm

from core import audio_io
from core.audio_io import Limits
from core.errors import Reject
from core.files import Row, fresh_dir, link_or_copy, replace_dir, sha256_file, write_csv
from core.params import Params
from pipeline.manifests import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    display_path,
    reject_row,
    update_rejects,
)

if TYPE_CHECKING:
    from pipeline import ray_backend


@dataclass
class Job:
    """One input of a stage: its manifest row and, when the stage decodes, its audio."""

    row: Row
    src: Path | None
    audio: np.ndarray | None = None  # float32 [channels, samples]
    sr: int = 0
    header: audio_io.Header | None = None


@dataclass
class Output:
    """One file a stage produces from a job.

    ``audio`` set: written to ``name`` under the stage folder. ``audio`` None: the input file is
    hard-linked there (``keep="link"``) or referenced where it lies (``keep="ref"``: large user
    libraries are indexed, never copied).
    """

    name: str
    audio: np.ndarray | None = None
    sr: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    keep: Literal["link", "ref"] = "link"
    subtype: str | None = None  # WAV sample format; default ``audio.subtype``


Result = list[Output] | Reject
ProcessFn = Callable[[list[Job], Params], list[Result]]


@dataclass
class Stage:
    """A stage as the runner sees it: a name, a chunk function, the params, how to read
    inputs (decoded ``audio``, ``header`` only, or ``none``)."""

    name: str
    process: ProcessFn
    params: Params
    read: Literal["audio", "header", "none"] = "audio"
    # Inputs from outside the pipeline (the user's files) must pass the collect.* limits;
    # the files earlier stages wrote are read as they are.
    outside: bool = False

    @property
    def limits(self) -> Limits:
        return Limits.of(self.params.collect) if self.outside else Limits.none()

    @property
    def subtype(self) -> str:
        return self.params.audio.subtype


@dataclass
class StageResult:
    rows: list[Row]
    rejects: list[Row]
    n_in: int
    seconds: float


# ----------------------------------------------------------------------------- workers

_STAGE: Stage | None = None


def _init_worker(stage: Stage, child: bool = False) -> None:
    global _STAGE
    _STAGE = stage
    if child:  # Ctrl-C is the parent's to handle: it stops the pool and cleans up
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _load(stage: Stage, row: Row, in_dir: Path) -> Job:
    src = (in_dir / row["path"]).resolve() if row.get("path") else None
    job = Job(row=row, src=src)
    if stage.read == "none" or src is None:
        return job
    if stage.read == "header":
        job.header = audio_io.probe(src, stage.limits)
        job.sr = job.header.sample_rate
        return job
    job.audio, job.sr = audio_io.read(src, stage.limits)
    return job


def _emit(stage: Stage, job: Job, out: Output, out_dir: Path) -> Row:
    dest = out_dir / out.name
    row = {**job.row, **{k: str(v) for k, v in out.fields.items()}}
    if out.audio is not None:
        audio = np.asarray(out.audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None, :]
        if not np.isfinite(audio).all():
            raise Reject("non_finite", "stage produced NaN or Inf samples")
        audio_io.write_atomic(dest, audio, out.sr, out.subtype or stage.subtype)
        row.update(
            path=out.name,
            sample_rate=str(out.sr),
            num_samples=str(audio.shape[1]),
            sha256=sha256_file(dest),
        )
        return row
    assert job.src is not None
    if out.keep == "ref":
        row["path"] = os.path.relpath(job.src, out_dir)
    else:
        link_or_copy(job.src, dest)
        row["path"] = out.name
    if not row.get("sha256"):  # the same file as the input's row, whose hash it keeps
        row["sha256"] = sha256_file(job.src)
    if job.header is not None:
        row.update(sample_rate=str(job.header.sample_rate), num_samples=str(job.header.frames))
        row.setdefault("channels", str(job.header.channels))
    return row


def _reject_row(stage: Stage, row: Row, in_dir: Path, rej: Reject) -> Row:
    src = display_path(in_dir / row["path"]) if row.get("path") else row.get("source_id", "")
    return reject_row(stage.name, src, row, rej)


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}".replace("\n", " ")


def _process_safely(stage: Stage, jobs: list[Job]) -> list[Result]:
    """Run the stage on a chunk; if the chunk fails as a whole, retry item by item to isolate it."""
    try:
        results = stage.process(jobs, stage.params)
        if len(results) != len(jobs):
            raise RuntimeError(f"stage returned {len(results)} results for {len(jobs)} jobs")
        return results
    except Exception:
        if len(jobs) == 1:
            raise
    out: list[Result] = []
    for job in jobs:
        try:
            out.extend(stage.process([job], stage.params))
        except Reject as rej:
            out.append(rej)
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the stage
            out.append(Reject("processing_error", _describe(exc)))
    return out


def _run_chunk(rows: list[Row], in_dir: Path, out_dir: Path) -> tuple[list[Row], list[Row]]:
    stage = _STAGE
    assert stage is not None, "worker not initialised"
    jobs: list[Job] = []
    rejects: list[Row] = []
    for row in rows:
        try:
            jobs.append(_load(stage, row, in_dir))
        except Reject as rej:
            rejects.append(_reject_row(stage, row, in_dir, rej))
        except Exception as exc:  # noqa: BLE001
            rejects.append(_reject_row(stage, row, in_dir, Reject("unreadable", _describe(exc))))
    if not jobs:
        return [], rejects
    try:
        results = _process_safely(stage, jobs)
    except Reject as rej:
        results = [rej]
    except Exception as exc:  # noqa: BLE001
        results = [Reject("processing_error", _describe(exc))]
    out_rows: list[Row] = []
    for job, result in zip(jobs, results, strict=True):
        if isinstance(result, Reject):
            rejects.append(_reject_row(stage, job.row, in_dir, result))
            continue
        try:
            out_rows.extend(_emit(stage, job, out, out_dir) for out in result)
        except Reject as rej:
            rejects.append(_reject_row(stage, job.row, in_dir, rej))
        except Exception as exc:  # noqa: BLE001
            rejects.append(
                _reject_row(stage, job.row, in_dir, Reject("write_error", _describe(exc)))
            )
    return out_rows, rejects


# ----------------------------------------------------------------------------- driver


def worker_count(requested: int) -> int:
    """``0`` means every core this process may use."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _chunks(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def run(
    stage: Stage,
    rows: list[Row],
    in_dir: Path,
    out_dir: Path,
    *,
    workers: int = 0,
    chunk_size: int = 32,
    rejects_file: Path | None = None,
    progress: bool = True,
    pre_rejects: list[Row] | None = None,
) -> StageResult:
    """Process every row and write ``out_dir/manifest.csv``; refusals go to the rejects lists.

    Everything is written into a fresh folder beside ``out_dir`` that replaces it only once
    complete: a stage that fails or is interrupted (Ctrl-C) leaves the previous output and the
    rejects list as they were. Chunks are fixed by ``chunk_size`` alone, never by the worker
    count, so results do not depend on how many cores ran them. At most two chunks per worker
    are in flight, which keeps memory flat however many files there are. With
    ``runner.backend: ray`` the same chunks run as tasks on a Ray cluster (``ray_backend``).
    """
    start = time.perf_counter()
    session = _connect(stage, workers)  # a missing ray or a dead address: before any write
    work = fresh_dir(out_dir)
    try:
        out_rows, rejects = _process_all(
            stage, rows, in_dir, work, workers, chunk_size, progress, session
        )
        rejects = list(pre_rejects or []) + rejects
        write_csv(work / "manifest.csv", out_rows, MANIFEST_COLUMNS)
        write_csv(work / "rejects.csv", rejects, REJECT_COLUMNS)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if session is not None:
            session.close()
    replace_dir(work, out_dir)
    if rejects_file is not None:
        update_rejects(stage.name, rejects, rejects_file)
    seconds = time.perf_counter() - start
    n_in = len(rows) + len(pre_rejects or [])
    print(
        f"{stage.name}: {n_in} in, {len(out_rows)} out, {len(rejects)} refused, {seconds:.1f} s",
        flush=True,
    )
    return StageResult(out_rows, rejects, n_in, seconds)


def _connect(stage: Stage, workers: int) -> ray_backend.Session | None:
    """The Ray session of a ``runner.backend: ray`` stage (None: the local pool)."""
    if stage.params.runner.backend != "ray":
        return None
    from pipeline import ray_backend  # ray is optional: imported only when chosen

    return ray_backend.connect(stage.params.runner, workers)


def _process_all(
    stage: Stage,
    rows: list[Row],
    in_dir: Path,
    out_dir: Path,
    workers: int,
    chunk_size: int,
    progress: bool,
    session: ray_backend.Session | None = None,
) -> tuple[list[Row], list[Row]]:
    """Rows out and rejects, in input order, from every chunk (in processes when there are
    several workers, in Ray tasks with a Ray ``session``)."""
    chunks = list(_chunks(rows, max(1, chunk_size)))
    n_workers = min(worker_count(workers), max(1, len(chunks)))
    results: dict[int, tuple[list[Row], list[Row]]] = {}
    bar = tqdm(
        total=len(rows),
        desc=stage.name,
        unit="file",
        disable=not progress or None,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        if session is not None:
            session.process(stage, chunks, in_dir, out_dir, results, bar)
        elif n_workers == 1:
            _init_worker(stage)
            for i, chunk in enumerate(chunks):
                results[i] = _run_chunk(chunk, in_dir, out_dir)
                bar.update(len(chunk))
        else:
            _run_pool(stage, chunks, in_dir, out_dir, n_workers, results, bar)
    finally:
        bar.close()
    out_rows = [r for i in range(len(chunks)) for r in results[i][0]]
    rejects = [r for i in range(len(chunks)) for r in results[i][1]]
    return out_rows, rejects


def _run_pool(
    stage: Stage,
    chunks: list[list[Row]],
    in_dir: Path,
    out_dir: Path,
    n_workers: int,
    results: dict[int, tuple[list[Row], list[Row]]],
    bar: Any,
) -> None:
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(
        n_workers,
        mp_context=mp.get_context(method),
        initializer=_init_worker,
        initargs=(stage, True),
    )
    try:
        pending: dict[Future, tuple[int, int]] = {}
        todo = iter(enumerate(chunks))
        for i, chunk in todo:
            pending[pool.submit(_run_chunk, chunk, in_dir, out_dir)] = (i, len(chunk))
            if len(pending) >= 2 * n_workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i, n = pending.pop(fut)
                results[i] = fut.result()
                bar.update(n)
                nxt = next(todo, None)
                if nxt is not None:
                    j, chunk = nxt
                    pending[pool.submit(_run_chunk, chunk, in_dir, out_dir)] = (j, len(chunk))
    except BaseException:
        # Interrupted (or a worker died): stop now rather than finish the chunks in flight.
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
