"""Benchmark: the stages on the local pool against the Ray backend, on the same input.

    python bench/ray_backend.py --files 20000
    python bench/ray_backend.py --files 2000 --address 127.0.0.1:6379   # a running cluster

The input is bench/pipeline.py's corpus (N synthesized one-shots in a local sample folder).
Every stage, collect to augment, runs in process as `dvc repro` runs them, once with
``runner.backend: local`` and once with ``runner.backend: ray`` and ``runner.address: ""``:
a Ray instance on this machine with as many CPUs as the local pool has workers, started and
stopped by every stage, as each `dvc repro` stage process does. Ray's overhead is the extra
time against the local pool, in percent; the two runs' final manifests (which hold every
output file's sha256) must be identical. With ``--address`` the Ray run joins that cluster
instead, once for all stages, so the difference is the per-chunk cost alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import STAGES, make_corpus  # noqa: E402
from pipeline.command import dvc_argv  # noqa: E402
from pipeline.runner import worker_count  # noqa: E402


def run_chain(
    work: Path, corpus: Path, variants: int, workers: int, backend: str, address: str = ""
) -> dict:
    """Every stage in ``work`` with the given backend; seconds in all and per stage."""
    work.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["collect"].update(sources=["local"], local_dirs=[str(corpus)])
    params["augment"]["variants"] = variants
    params["runner"].update(workers=workers, backend=backend, address=address)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    cwd = Path.cwd()
    os.chdir(work)
    times = {}
    try:
        start = time.perf_counter()
        for module in STAGES:
            name = module.__name__.rsplit(".", 1)[1]
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):
                rc = module.main([*dvc_argv(name, ROOT / "dvc.yaml"), "--no-progress"])
            if rc != 0:
                raise SystemExit(f"{name} ({backend}) exited {rc}")
            times[name] = round(time.perf_counter() - t0, 2)
        total = time.perf_counter() - start
        manifest = Path("data/augmented/manifest.csv").read_text()
    finally:
        os.chdir(cwd)
    return {"seconds": total, "stage_seconds": times, "manifest": manifest}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=20000, help="input files")
    ap.add_argument("--variants", type=int, default=3, help="augment.variants")
    ap.add_argument("--workers", type=int, default=0, help="runner.workers (0 = all cores)")
    ap.add_argument(
        "--address",
        default="",
        help="runner.address of the Ray run (default: a Ray instance started by each stage; "
        "host:port = join a running cluster once, so no stage pays Ray's start-up)",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="oneshot-raybench-"))
    try:
        corpus = tmp / "corpus"
        t0 = time.perf_counter()
        make_corpus(corpus, args.files)
        print(f"made {args.files} input files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        runs = {
            backend: run_chain(tmp / backend, corpus, args.variants, args.workers, backend, address)
            for backend, address in (("local", ""), ("ray", args.address))
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    local, ray = runs["local"], runs["ray"]
    result = {
        "files": args.files,
        "variants": args.variants,
        "workers": worker_count(args.workers),
        "ray_address": args.address or "(a local instance per stage)",
        "outputs": len(local["manifest"].splitlines()) - 1,
        "local_seconds": round(local["seconds"], 2),
        "ray_seconds": round(ray["seconds"], 2),
        "local_files_per_s": round(args.files / local["seconds"], 2),
        "ray_files_per_s": round(args.files / ray["seconds"], 2),
        "ray_overhead_pct": round(100 * (ray["seconds"] / local["seconds"] - 1), 1),
        "local_stage_seconds": local["stage_seconds"],
        "ray_stage_seconds": ray["stage_seconds"],
        "identical_manifests": local["manifest"] == ray["manifest"],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"local {result['local_files_per_s']} files/s, ray {result['ray_files_per_s']} files/s, "
        f"Ray overhead {result['ray_overhead_pct']} %"
    )


if __name__ == "__main__":
    main()
