"""Running the real ``scrapy crawl`` from the repo root in the spider tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRAPY = Path(sys.executable).parent / "scrapy"
# Test speed: no politeness delays against the local servers (the API rate limit itself is
# lifted with FREESOUND_*_PER_MINUTE), and short retry backoff.
FAST = {
    "DOWNLOAD_DELAY": "0",
    "AUTOTHROTTLE_ENABLED": "0",
    "RETRY_BACKOFF_BASE": "0.05",
    "FREESOUND_REQUESTS_PER_MINUTE": "60000",
    "FREESOUND_DOWNLOADS_PER_MINUTE": "60000",
}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("error:")]


def crawl_cmd(spider: str, raw_dir: Path, *args: str, **settings: str) -> list[str]:
    cmd = [str(SCRAPY), "crawl", spider, "-s", f"RAW_DIR={raw_dir}"]
    for name, value in {**FAST, **settings}.items():
        cmd += ["-s", f"{name}={value}"]
    return cmd + list(args)


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("FREESOUND_API_KEY", "FREESOUND_API_URL")
    }
    return {**env, **extra}


def crawl(
    spider: str,
    raw_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    **settings: str,
) -> Result:
    """``scrapy crawl <spider> ARGS -s RAW_DIR=raw_dir ...`` from the repo root."""
    proc = subprocess.run(
        crawl_cmd(spider, raw_dir, *args, **settings),
        cwd=REPO,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def records(folder: Path) -> dict[str, dict[str, Any]]:
    """metadata.jsonl of a store folder, by id."""
    out = {}
    for line in (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        out[str(rec["id"])] = rec
    return out


def files(folder: Path) -> set[str]:
    """The audio files in a store folder."""
    return {p.name for p in folder.iterdir() if p.suffix in (".mp3", ".ogg", ".wav", ".flac")}
