"""Benchmark: the Freesound crawl's API request rate against its limit, and downloads/s.

    python bench/crawl.py                       # both parts, a markdown table on stdout
    python bench/crawl.py --rates 60 --api-requests 40 --sounds 400 --latency 0.05

Runs the real ``scrapy crawl freesound`` (a subprocess, as a user would) against the fake
Freesound server of the tests (tests/crawlers/fake_freesound.py, 127.0.0.1), which logs when
each request arrives.

1. Rate: with ``freesound.requests_per_minute`` = R, a crawl that needs many search pages
   (page_size 1); reports API requests per minute as the server saw them (over the whole
   run, and the most in any 60 s window when the run lasts that long) and the shortest gap
   between two API requests, against the limit 60/R s.
2. Throughput: N sounds whose previews take ``--latency`` s to serve, no rate limits; the
   spider (parallel downloads, landed in rank order) against the API client
   (``python -m crawlers.freesound_api download``, one download at a time).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "crawlers"))

from fake_freesound import CC0, FakeFreesound, _s  # noqa: E402

BIN = Path(sys.executable).parent


class TimedLog(list):
    """The server's request log, with the arrival time of each request."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, req: Any) -> None:
        self.times.append(time.monotonic())
        super().append(req)


def _params(tmp: Path, **freesound: Any) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["freesound"].update(freesound)
    path = tmp / f"params-{len(list(tmp.glob('params-*')))}.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def _env(server: FakeFreesound) -> dict[str, str]:
    return {**os.environ, **server.env()}


def _watch(server: FakeFreesound) -> TimedLog:
    server.reset()
    server.clear_quirks()
    log = TimedLog()
    server.requests = log
    return log


def _spider(params: Path, raw: Path, n: int) -> list[str]:
    return [
        str(BIN / "scrapy"),
        "crawl",
        "freesound",
        "-a",
        "classes=kick",
        "-a",
        f"max_per_class={n}",
        "-s",
        f"PARAMS_FILE={params}",
        "-s",
        f"RAW_DIR={raw}",
        "-L",
        "WARNING",
    ]


def rate(server: FakeFreesound, tmp: Path, rpm: float, api_requests: int) -> dict[str, Any]:
    params = _params(
        tmp, requests_per_minute=rpm, downloads_per_minute=60000, page_size=1, backoff_s=0.1
    )
    log = _watch(server)
    cmd = _spider(params, tmp / f"rate-{rpm:g}", api_requests)
    subprocess.run(cmd, cwd=ROOT, env=_env(server), check=True, capture_output=True)
    times = [t for t, r in zip(log.times, log, strict=True) if r.path.startswith("/apiv2/")]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    span = times[-1] - times[0]
    window = max(sum(1 for u in times if t <= u < t + 60.0) for t in times)
    return {
        "limit_rpm": rpm,
        "requests": len(times),
        "measured_rpm": (len(times) - 1) / span * 60 if span else float("nan"),
        "max_in_60s": window if span >= 60 else None,
        "min_gap_s": min(gaps) if gaps else float("nan"),
        "limit_gap_s": 60 / rpm,
    }


def throughput(server: FakeFreesound, tmp: Path, n: int, latency: float) -> list[dict]:
    params = _params(
        tmp,
        requests_per_minute=60000,
        downloads_per_minute=60000,
        page_size=150,
        query={"kick": "kick"},
    )
    rows = []
    runs = {
        "scrapy crawl freesound": _spider(params, tmp / "spider", n),
        "python -m crawlers.freesound_api download": [
            sys.executable,
            "-m",
            "crawlers.freesound_api",
            "--params",
            str(params),
            "download",
            "--classes",
            "kick",
            "--max-per-class",
            str(n),
            "--out",
            str(tmp / "client" / "freesound"),
            "--no-progress",
        ],
    }
    for name, cmd in runs.items():
        log = _watch(server)
        server.preview_delay = latency
        t0 = time.monotonic()
        subprocess.run(cmd, cwd=ROOT, env=_env(server), check=True, capture_output=True)
        wall = time.monotonic() - t0
        previews = [
            t for t, r in zip(log.times, log, strict=True) if r.path.startswith("/previews/")
        ]
        # Downloads/s over the download phase: first preview request to the end of the run
        # (the last one still has to be landed), so process start-up is left out.
        phase = t0 + wall - previews[0]
        rows.append(
            {
                "run": name,
                "files": len(previews),
                "wall_s": wall,
                "download_phase_s": phase,
                "downloads_per_s": len(previews) / phase,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rates", default="60,600", help="requests_per_minute values to measure")
    ap.add_argument("--api-requests", type=int, default=30, help="search pages per rate run")
    ap.add_argument("--sounds", type=int, default=300, help="previews in the throughput run")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds to serve a preview")
    ap.add_argument("--skip-rate", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="oneshot-crawl-bench-") as name:
        tmp = Path(name)
        count = max(args.sounds, args.api_requests + 5)
        sounds = [_s(100000 + i, "kick", CC0, 0.3 + (i % 7) * 0.1) for i in range(count)]
        t0 = time.monotonic()
        server = FakeFreesound(tmp / "previews", sounds)
        print(f"fake server: {count} sounds, previews encoded in {time.monotonic() - t0:.1f} s")
        print(
            f"machine: {platform.platform()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}\n"
        )
        try:
            if not args.skip_rate:
                print(
                    "| requests_per_minute | API requests | measured req/min | most in 60 s "
                    "| shortest gap (s) | limit gap (s) |"
                )
                print("|---:|---:|---:|---:|---:|---:|")
                for rpm in (float(r) for r in args.rates.split(",")):
                    r = rate(server, tmp, rpm, args.api_requests)
                    most = "-" if r["max_in_60s"] is None else str(r["max_in_60s"])
                    print(
                        f"| {rpm:g} | {r['requests']} | {r['measured_rpm']:.1f} | {most} | "
                        f"{r['min_gap_s']:.3f} | {r['limit_gap_s']:.3f} |",
                        flush=True,
                    )
                print()
            if not args.skip_throughput:
                print(
                    f"{args.sounds} previews, {args.latency * 1000:g} ms to serve each, "
                    "rate limits lifted:\n"
                )
                print("| run | files | wall (s) | download phase (s) | downloads/s |")
                print("|---|---:|---:|---:|---:|")
                for r in throughput(server, tmp, args.sounds, args.latency):
                    print(
                        f"| `{r['run']}` | {r['files']} | {r['wall_s']:.1f} | "
                        f"{r['download_phase_s']:.1f} | {r['downloads_per_s']:.1f} |",
                        flush=True,
                    )
        finally:
            server.close()


if __name__ == "__main__":
    main()
