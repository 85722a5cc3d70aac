"""Benchmark: files/s and peak memory of the whole chain against a naive one-process baseline.

    python bench/pipeline.py --files 400          # chain + naive baseline, prints the ratio
    python bench/pipeline.py --files 20000 --no-baseline   # memory at scale
    python bench/pipeline.py --real DIR --files 790 --dvc --engines resample pedalboard rubberband \
        --baseline-files 790    # issue 14: `dvc repro augment` on real-length drums, both engines

``--real DIR`` replaces the synthesized input by copies of the one-shots in DIR
(``<class>/<name>.<ext>``, e.g. a folder of CC0 drums), each copy with its own small gain,
speed (pitch and length) and length change, so no two inputs are the same file. ``--dvc`` runs
the chain as a user does, ``dvc repro augment`` in a copy of this working tree, and reports
its wall time next to the stages' own times (their summary lines), so DVC's and the stage
processes' start-up is the difference.

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
import re
import resource
import shutil
import subprocess
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
from pipeline.variants import PITCH_ENGINES  # noqa: E402

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


def make_real_corpus(folder: Path, source: Path, n: int, seed: int = 7) -> None:
    """``n`` inputs from the one-shots of ``source``'s class folders (label.classes only):
    copy ``i`` of a sound is played 0.94-1.06x as fast, gained by -3..+1 dB and cut to
    70-100 % of its length (a 5 ms fade at the cut), written as the original's format."""
    classes = set(yaml.safe_load((ROOT / "params.yaml").read_text())["label"]["classes"])
    files = sorted(p for p in source.glob("*/*") if p.parent.name in classes and p.is_file())
    rng = np.random.default_rng(seed)
    for i in range(n):
        src = files[i % len(files)]
        x, sr = sf.read(src, dtype="float32", always_2d=True)
        info = sf.info(src)
        speed = rng.uniform(0.94, 1.06)
        pos = np.arange(0, len(x) - 1, speed)
        y = np.stack([np.interp(pos, np.arange(len(x)), c) for c in x.T], axis=1)
        y = y[: max(64, round(len(y) * rng.uniform(0.7, 1.0)))]
        fade = min(len(y), round(0.005 * sr))
        y[-fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
        y *= 10 ** (rng.uniform(-3.0, 1.0) / 20)
        out = folder / src.parent.name / f"{src.stem}_{i:04d}{src.suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, np.clip(y, -1, 1), sr, subtype=info.subtype)


SUMMARY = re.compile(r"^(\w+): (\d+) in, (\d+) out, (\d+) refused, ([\d.]+) s$", re.M)


def run_dvc(work: Path, corpus: Path, variants: int, workers: int, engine: str) -> dict:
    """``dvc repro augment`` (collect..augment) in a fresh copy of this working tree."""
    from bench.dvc_noop import copy_tree  # here: dvc_noop imports this module

    repo = work / f"repo-{engine}"
    copy_tree(repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["collect"].update(sources=["local"], local_dirs=[str(corpus)])
    params["augment"].update(variants=variants, pitch_engine=engine)
    params["runner"]["workers"] = workers
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    out = subprocess.run(
        [bindir / "dvc", "repro", "augment"], cwd=repo, env=env, capture_output=True, text=True
    )
    total = time.perf_counter() - start
    if out.returncode:
        raise SystemExit(f"dvc repro failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    stages = {m[1]: float(m[5]) for m in SUMMARY.finditer(out.stdout + out.stderr)}
    n_out = len((repo / "data/augmented/manifest.csv").read_text().splitlines()) - 1
    return {"seconds": total, "stage_seconds": stages, "outputs": n_out}


def load() -> str:
    """The load averages, as `uptime` gives them: others may share the cores."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest child, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def run_chain(work: Path, corpus: Path, variants: int, workers: int, engine: str) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["collect"].update(sources=["local"], local_dirs=[str(corpus)])
    params["augment"].update(variants=variants, pitch_engine=engine)
    params["runner"]["workers"] = workers
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    cwd = Path.cwd()
    os.chdir(work)
    times: dict[str, float] = {}
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
    ap.add_argument("--real", type=Path, help="copy the one-shots of this folder as the input")
    ap.add_argument("--dvc", action="store_true", help="time `dvc repro augment` in a copy")
    ap.add_argument("--engines", nargs="+", default=["resample"], choices=list(PITCH_ENGINES))
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="oneshot-bench-"))
    result: dict = {"files": args.files, "variants": args.variants, "cores": os.cpu_count()}
    try:
        corpus = tmp / "corpus"
        t0 = time.perf_counter()
        if args.real:
            make_real_corpus(corpus, args.real, args.files)
        else:
            make_corpus(corpus, args.files)
        print(f"made {args.files} input files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for engine in args.engines:
            result[engine] = run_one(tmp, corpus, args, engine)
        if not args.no_baseline:
            result["naive_load"] = load()
            naive = run_naive(corpus, tmp / "naive", args.variants, args.baseline_files)
            result["naive_files"] = naive["files"]
            result["naive_seconds"] = round(naive["seconds"], 2)
            result["naive_files_per_s"] = round(naive["files"] / naive["seconds"], 2)
            for engine in args.engines:
                add_ratios(result[engine], result["naive_files_per_s"], args.files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def run_one(tmp: Path, corpus: Path, args: argparse.Namespace, engine: str) -> dict:
    """The chain once with one pitch engine: in process (the stages' ``main``) or DVC."""
    before = load()
    work = tmp / f"project-{engine}"
    work.mkdir()
    if args.dvc:
        chain = run_dvc(work, corpus, args.variants, args.workers, engine)
    else:
        chain = run_chain(work, corpus, args.variants, args.workers, engine)
    own, kids = peak_rss_mib()
    return {
        "load_before": before,
        "chain_seconds": round(chain["seconds"], 2),
        "stages_seconds": round(sum(chain["stage_seconds"].values()), 2),
        "chain_outputs": chain["outputs"],
        "stage_seconds": chain["stage_seconds"],
        "peak_rss_main_mib": round(own, 1),
        "peak_rss_worker_mib": round(kids, 1),
    }


def add_ratios(res: dict, naive_files_per_s: float, files: int) -> None:
    """Speed-ups over the naive loop, per file (the loop may have run on fewer files)."""
    naive_s = files / naive_files_per_s
    res["speedup_chain"] = round(naive_s / res["chain_seconds"], 2)
    res["speedup_stages"] = round(naive_s / res["stages_seconds"], 2)
    print(
        f"chain {res['chain_seconds']} s ({res['speedup_chain']}x naive), stages "
        f"{res['stages_seconds']} s ({res['speedup_stages']}x), naive {naive_s:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
