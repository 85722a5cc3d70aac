"""Benchmark: how long `dvc repro` takes when nothing changed, at N input files.

    python bench/dvc_noop.py --files 5000 [--target augment]

Copies the repo's tracked files into a temporary git repo, points ``collect`` at N synthesized
one-shots in a local folder, runs ``dvc repro <target>`` once in full, then times a second one
with nothing changed (``collect`` re-scans the folder; every later stage is skipped). The
default target is the data pipeline (``augment``): training 20,000 clips first would take
longer than the whole benchmark, and a no-op skips train like any other stage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import make_corpus  # noqa: E402


def copy_tree(repo: Path) -> None:
    """The working tree as git sees it: tracked and new (not ignored) files, as they are."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, repo / f)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--variants", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="timed no-op runs (the best is kept)")
    ap.add_argument("--keep", type=Path, help="build the repo here and keep it (for profiling)")
    ap.add_argument("--target", default="augment", help="the stage to repro (default augment)")
    args = ap.parse_args()

    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="oneshot-noop-"))
    try:
        repo = tmp / "repo"
        copy_tree(repo)
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        make_corpus(tmp / "corpus", args.files)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["collect"].update(sources=["local"], local_dirs=[str(tmp / "corpus")])
        params["augment"]["variants"] = args.variants
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        t0 = time.perf_counter()
        subprocess.run([bindir / "dvc", "repro", "-q", args.target], cwd=repo, env=env, check=True)
        full = time.perf_counter() - t0
        noop = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = subprocess.run(
                [bindir / "dvc", "repro", args.target],
                cwd=repo,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            noop.append(time.perf_counter() - t0)
            ran = [line for line in out.splitlines() if line.startswith("Running stage")]
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "files": args.files,
        "target": args.target,
        "variants": args.variants,
        "full_repro_s": round(full, 1),
        "noop_repro_s": round(min(noop), 2),
        "stages_run_in_noop": ran,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
