"""End to end: `dvc repro augment` on a copy of the repo with a small demo kit.

Checks the final manifest against CONTRACT, then that changing an augment setting re-runs
only `augment` (and `collect`, which is `always_changed` by design: it rescans the sources,
and DVC skips everything after it because its output is byte-identical).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PER_CLASS = 4
VARIANTS = 3
CLASSES = ["kick", "snare", "hihat", "clap"]
CONTRACT_COLUMNS = [
    "path",
    "label",
    "source",
    "source_id",
    "license",
    "attribution",
    "variant",
    "sample_rate",
    "num_samples",
]


def _copy_repo(dest: Path) -> None:
    """The repo's tracked (and not ignored, not yet committed) files, as a fresh git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)


def _set_params(repo: Path, **changes: object) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        node = params
        *parents, leaf = key.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def _repro(repo: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [str(BIN / "dvc"), "repro", "augment"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc.stdout


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _manifest(repo: Path) -> tuple[list[str], list[dict[str, str]]]:
    with (repo / "data/augmented/manifest.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def test_dvc_repro_demo_end_to_end(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    assert not (repo / ".venv").exists()  # so dvc.yaml falls back to `python` on PATH
    _set_params(repo, collect__demo__per_class=PER_CLASS, augment__variants=VARIANTS)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
    }

    out = _repro(repo, env)
    assert _ran(out) == {"collect", "normalize", "trim", "pad", "label", "augment"}, out

    columns, rows = _manifest(repo)
    assert set(CONTRACT_COLUMNS) <= set(columns), columns
    originals = [r for r in rows if r["variant"] == "original"]
    variants = [r for r in rows if r["variant"] != "original"]
    assert len(originals) == len(CLASSES) * PER_CLASS
    assert len(variants) == len(originals) * VARIANTS
    assert {r["source"] for r in rows} == {"demo"}
    for cls in CLASSES:
        assert sum(r["label"] == cls for r in originals) == PER_CLASS, cls
    for r in rows:
        # Demo ids are "<class>_<index>": the label must be the class the clip was made as.
        assert r["source_id"].startswith(r["label"] + "_"), r
        assert r["license"] and r["attribution"], r
    for o in originals:
        mine = [v["variant"] for v in variants if v["source_id"] == o["source_id"]]
        assert len(mine) == VARIANTS and len(set(mine)) == VARIANTS, (o["source_id"], mine)

    base = repo / "data/augmented"
    for r in rows:
        assert not Path(r["path"]).is_absolute()
        info = sf.info(str(base / r["path"]))
        assert (info.samplerate, info.frames, info.channels) == (44100, 44100, 1), r["path"]
        assert (r["sample_rate"], r["num_samples"]) == ("44100", "44100"), r

    assert (repo / "reports/dataset.md").read_text(encoding="utf-8").startswith("#")
    assert (repo / "reports/spectrograms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # An augment setting changed: only augment re-runs after the (always run) collect scan.
    _set_params(repo, augment__seed=12345)
    out = _repro(repo, env)
    assert _ran(out) == {"collect", "augment"}, out
    for stage in ("normalize", "trim", "pad", "label"):
        assert f"Running stage '{stage}'" not in out
    _, new_rows = _manifest(repo)
    assert len(new_rows) == len(rows)
    assert sorted(r["variant"] for r in new_rows) != sorted(r["variant"] for r in rows)


DATA_STAGES = ("collect", "normalize", "trim", "pad", "label", "augment")


def _outs(lock: Path) -> dict[str, list[dict]]:
    stages = yaml.safe_load(lock.read_text(encoding="utf-8"))["stages"]
    return {name: stages[name]["outs"] for name in DATA_STAGES}


def test_a_fresh_clone_reproduces_the_committed_data(tmp_path: Path) -> None:
    """The committed dvc.lock describes what a fresh clone makes (issue 10): with the pinned
    versions of requirements.lock, `dvc repro` of the data stages writes exactly the outputs
    (md5, size, file count) dvc.lock lists, so git sees no change to them. A change to a data
    stage's code or settings must come with the dvc.lock it makes."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
    }
    _repro(repo, env)
    assert _outs(repo / "dvc.lock") == _outs(REPO / "dvc.lock")
