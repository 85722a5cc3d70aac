"""Benchmark: files/s and peak memory of the whole chain against a naive one-process baseline.

    python bench/pipeline.py --files 400          # chain + naive baseline, prints the ratio
    python bench/pipeline.py --files 20000 --no-baseline   # memory at scale

The input is N synthesized one-shots (the demo kit's generator: mixed rates, formats,
channels, lengths) written as a local sample folder. The chain runs every stage, collect to
augment, through the real stage runner on all cores. The baseline is what one would write by
hand: one process, per file ``librosa.load`` -> ``librosa.util.normalize`` ->
``librosa.effects.trim`` -> ``librosa.util.fix_length`` -> ``pyrubberband`` per variant ->
``soundfile.write``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.command import dvc_argv  # noqa: E402
from pipeline.sources import demo  # noqa: E402
from pipeline.stages import augment, collect, label, normalize, pad, trim  # noqa: E402

STAGES = [collect, normalize, trim, pad, label, augment]


def make_corpus(folder: Path, n: int, seed: int = 7) -> None:
    """N demo one-shots as a user folder ``<class>/<name>.<ext>``."""
    per_class = -(-n // len(demo.CLASSES))
    specs = sorted(demo.plan(per_class, seed), key=lambda s: (s.index, s.cls))[:n]
    for spec in specs:
        path = folder / spec.cls / spec.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = demo.synthesize(spec)
        kw = {"subtype": spec.subtype} if spec.subtype else {}
        sf.write(path, audio.T, spec.sample_rate, **kw)


def peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest child, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def run_chain(work: Path, corpus: Path, variants: int, workers: int) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["collect"].update(sources=["local"], local_dirs=[str(corpus)])
    params["augment"]["variants"] = variants
    params["runner"]["workers"] = workers
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    cwd = Path.cwd()
    os.chdir(work)
    times = {}
    try:
        start = time.perf_counter()
        for module in STAGES:
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):
                name = module.__name__.rsplit(".", 1)[1]
                rc = module.main([*dvc_argv(name, ROOT / "dvc.yaml"), "--no-progress"])
            if rc != 0:
                raise SystemExit(f"{module.__name__} exited {rc}")
            times[module.__name__.split(".")[-1]] = round(time.perf_counter() - t0, 2)
        total = time.perf_counter() - start
        n_out = len(Path("data/augmented/manifest.csv").read_text().splitlines()) - 1
    finally:
        os.chdir(cwd)
    return {"seconds": total, "stage_seconds": times, "outputs": n_out}


def run_naive(corpus: Path, out: Path, variants: int, limit: int) -> dict:
    import librosa
    import pyrubberband

    files = sorted(p for p in corpus.rglob("*") if p.is_file())[:limit]
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, path in enumerate(files):
        y, sr = librosa.load(path, sr=44100, mono=True)
        y = librosa.util.normalize(y) * 10 ** (-1 / 20)
        y, _ = librosa.effects.trim(y, top_db=40)
        y = librosa.util.fix_length(y, size=44100)
        sf.write(out / f"{i}.wav", y, sr, subtype="FLOAT")
        for v in range(variants):
            z = pyrubberband.pitch_shift(y, sr, float(rng.uniform(-1.5, 1.5)))
            sf.write(out / f"{i}_{v}.wav", z, sr, subtype="FLOAT")
    return {"seconds": time.perf_counter() - start, "files": len(files)}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=400, help="input files for the chain")
    ap.add_argument("--variants", type=int, default=3, help="augment.variants")
    ap.add_argument("--workers", type=int, default=0, help="runner.workers (0 = all cores)")
    ap.add_argument("--baseline-files", type=int, default=100, help="files for the naive baseline")
    ap.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="oneshot-bench-"))
    try:
        corpus = tmp / "corpus"
        t0 = time.perf_counter()
        make_corpus(corpus, args.files)
        print(f"made {args.files} input files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        (tmp / "project").mkdir()
        chain = run_chain(tmp / "project", corpus, args.variants, args.workers)
        own, kids = peak_rss_mib()
        result = {
            "files": args.files,
            "variants": args.variants,
            "cores": os.cpu_count(),
            "chain_seconds": round(chain["seconds"], 2),
            "chain_files_per_s": round(args.files / chain["seconds"], 2),
            "chain_outputs": chain["outputs"],
            "stage_seconds": chain["stage_seconds"],
            "peak_rss_main_mib": round(own, 1),
            "peak_rss_worker_mib": round(kids, 1),
        }
        if not args.no_baseline:
            naive = run_naive(corpus, tmp / "naive", args.variants, args.baseline_files)
            result["naive_files"] = naive["files"]
            result["naive_seconds"] = round(naive["seconds"], 2)
            result["naive_files_per_s"] = round(naive["files"] / naive["seconds"], 2)
            result["speedup"] = round(result["chain_files_per_s"] / result["naive_files_per_s"], 2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    line = f"chain {result['chain_files_per_s']} files/s"
    if "speedup" in result:
        line += f", naive {result['naive_files_per_s']} files/s, ratio {result['speedup']}x"
    print(line)


if __name__ == "__main__":
    main()
