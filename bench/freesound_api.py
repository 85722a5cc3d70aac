"""Benchmark the Freesound API client against the local fake server (no network, no key).

    python bench/freesound_api.py                      # both measurements, defaults below
    python bench/freesound_api.py --limit 60 --seconds 130 --sounds 400

1. Requests per minute against the limit: the fake server enforces ``--limit`` requests per
   rolling minute (answering 429 beyond it, as Freesound does) and the client is configured
   with ``requests_per_minute = --limit``; the client pages through a search for ``--seconds``.
   Reported: the achieved rate, and how many requests the server throttled (the goal: 0).
2. Downloads per second: ``download()`` of ``--sounds`` previews (~0.4 s MP3s, page size 150,
   no download pacing) into a fresh store: each file is streamed to a temporary name, hashed,
   decode-checked, renamed and recorded (fsync). For scale, the same URLs fetched with bare
   ``requests`` GETs (no store) are timed too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "crawlers"))

from fake_freesound import CC0, FakeFreesound, FakeSound  # noqa: E402

from core import params as core_params  # noqa: E402
from core.params import Freesound  # noqa: E402
from crawlers.freesound.client import Client  # noqa: E402
from crawlers.freesound.download import download  # noqa: E402
from crawlers.rawstore import RawStore  # noqa: E402


def _cfg(**overrides: float) -> Freesound:
    """params.yaml's ``freesound`` with the benchmark's rates."""
    return replace(core_params.load(ROOT / "params.yaml").freesound, **overrides)


def _catalogue(n: int) -> list[FakeSound]:
    return [
        FakeSound(
            id=10_000 + i,
            cls="kick",
            name=f"Kick {i}.wav",
            username="bench",
            license=CC0,
            duration=0.3 + 0.2 * (i % 5) / 4,
            tags=["kick", "drum"],
            description="A kick drum one shot.",
        )
        for i in range(n)
    ]


def request_rate(server: FakeFreesound, limit: int, seconds: float) -> dict[str, float]:
    server.reset()
    server.clear_quirks()
    server.rate_limit = limit
    cfg = _cfg(requests_per_minute=limit, page_size=1)
    client = Client(cfg, server.key, base=server.url)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for _ in client.search_pages("kick"):
            if time.monotonic() - start >= seconds:
                break
    elapsed = time.monotonic() - start
    statuses = [r.status for r in server.api_requests()]
    return {
        "requests": len(statuses),
        "seconds": elapsed,
        "per_minute": len(statuses) / elapsed * 60,
        "throttled": statuses.count(429),
        "retries": client.retries,
    }


def download_rate(server: FakeFreesound, n: int, workdir: Path) -> dict[str, float]:
    server.reset()
    server.clear_quirks()
    cfg = _cfg(downloads_per_minute=10**9, requests_per_minute=10**6)
    store = RawStore(workdir / "store", cfg.max_file_bytes)
    t0 = time.perf_counter()
    summary = download(["kick"], n, cfg, store, key=server.key, base=server.url)
    elapsed = time.perf_counter() - t0
    urls = [server.preview_url(s.id) for s in server.sounds[:n]]
    session = requests.Session()
    t0 = time.perf_counter()
    total = sum(len(session.get(u, timeout=10).content) for u in urls)
    bare = time.perf_counter() - t0
    return {
        "downloads": summary.downloaded,
        "api_requests": summary.api_requests,
        "seconds": elapsed,
        "per_second": summary.downloaded / elapsed,
        "mib_per_second": summary.bytes / elapsed / 2**20,
        "mean_kib": total / len(urls) / 1024,
        "bare_get_per_second": len(urls) / bare,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--limit", type=int, default=60, help="server limit, requests/minute")
    ap.add_argument("--seconds", type=float, default=130.0, help="length of the rate run")
    ap.add_argument("--sounds", type=int, default=400, help="previews to download")
    ap.add_argument("--skip-rate", action="store_true", help="only measure downloads")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        server = FakeFreesound(Path(tmp) / "previews", _catalogue(args.sounds))
        print(
            f"fake server with {args.sounds} MP3 previews ready in {time.perf_counter() - t0:.1f} s"
        )
        try:
            if not args.skip_rate:
                r = request_rate(server, args.limit, args.seconds)
                print(
                    f"requests: {r['requests']} in {r['seconds']:.1f} s = "
                    f"{r['per_minute']:.1f}/min against a limit of {args.limit}/min; "
                    f"{r['throttled']} throttled (429), {r['retries']} retries"
                )
            d = download_rate(server, args.sounds, Path(tmp))
            print(
                f"downloads: {d['downloads']} previews ({d['mean_kib']:.1f} KiB mean) in "
                f"{d['seconds']:.2f} s = {d['per_second']:.1f}/s, "
                f"{d['mib_per_second']:.2f} MiB/s ({d['api_requests']} API requests); "
                f"bare GETs without the store: {d['bare_get_per_second']:.1f}/s"
            )
        finally:
            server.close()


if __name__ == "__main__":
    main()
