"""``scrapy crawl samplepack`` against a local sample-pack site served by the test.

The site (built in a temp folder, served by http.server on 127.0.0.1):

    /robots.txt            disallows /private/
    /index.html            kick.wav, packs/drums.zip, /private/secret.wav, logo.png,
                           an off-site file, page2.html; links a CC BY deed (rel=license)
    /page2.html            clap.wav, deep/page3.html           (depth 1)
    /deep/page3.html       hat.wav, deep/deeper/page4.html     (depth 2)
    /deep/deeper/page4.html  far.wav                           (depth 3: beyond max_depth 2)
    /packs/drums.zip       Kicks/kick 02.wav, Snares/snare 02.wav, ../escape.wav,
                           /abs.wav, readme.txt, Kicks/copy.wav (the bytes of kick 02),
                           Kicks/broken.wav (not audio)
"""

from __future__ import annotations

import functools
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from crawl_helpers import crawl, files, records

from crawlers.rawstore import derive_id

CC_BY = "https://creativecommons.org/licenses/by/4.0/"


def _wav(seed: int, seconds: float = 0.2) -> bytes:
    rng = np.random.default_rng(seed)
    n = int(44100 * seconds)
    y = rng.standard_normal(n) * np.exp(-np.arange(n) / 2000.0)
    buf = io.BytesIO()
    sf.write(buf, (0.5 * y).astype(np.float32), 44100, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _page(*links: str, extra: str = "") -> str:
    body = "\n".join(f'<a href="{href}">{href}</a>' for href in links)
    return f"<!DOCTYPE html><html><body>{body}{extra}</body></html>"


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.audio = {name: _wav(i) for i, name in enumerate(["kick", "clap", "hat", "far"])}
        self.audio.update(kick2=_wav(10), snare2=_wav(11), secret=_wav(12))
        files = {
            "robots.txt": b"User-agent: *\nDisallow: /private/\n",
            "index.html": _page(
                "kick.wav",
                "packs/drums.zip",
                "/private/secret.wav",
                "logo.png",
                "http://example.invalid/offsite.wav",
                "page2.html#top",
                extra=f'<a rel="license" href="{CC_BY}">CC BY 4.0</a>',
            ).encode(),
            "page2.html": _page("clap.wav", "deep/page3.html", "index.html").encode(),
            "deep/page3.html": _page("../hat.wav", "deeper/page4.html").encode(),
            "deep/deeper/page4.html": _page("../../far.wav").encode(),
            "kick.wav": self.audio["kick"],
            "clap.wav": self.audio["clap"],
            "hat.wav": self.audio["hat"],
            "far.wav": self.audio["far"],
            "private/secret.wav": self.audio["secret"],
            "logo.png": b"\x89PNG\r\n\x1a\nnot really",
            "packs/drums.zip": self._zip(),
        }
        for rel, data in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                site.requests.append(self.path)

        self.httpd = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _zip(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("Kicks/kick 02.wav", self.audio["kick2"])
            zf.writestr("../escape.wav", self.audio["secret"])
            zf.writestr("/abs.wav", self.audio["secret"])
            zf.writestr("Snares/snare 02.wav", self.audio["snare2"])
            zf.writestr("readme.txt", b"free for any use")
            zf.writestr("Kicks/copy.wav", self.audio["kick2"])
            zf.writestr("Kicks/broken.wav", b"not audio, just text\n" * 10)
        return buf.getvalue()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path / "site")
    try:
        yield s
    finally:
        s.close()


def _expected(site: Site) -> dict[str, tuple[str, str, str, bytes]]:
    """Each file the crawl must store: id -> (name, folder, the word in them that says its
    class, bytes). The label stage reads name and folder from the record."""
    zip_url = f"{site.url}/packs/drums.zip"
    return {
        derive_id(f"{site.url}/kick.wav"): ("kick.wav", "", "kick", site.audio["kick"]),
        derive_id(f"{site.url}/clap.wav"): ("clap.wav", "", "clap", site.audio["clap"]),
        derive_id(f"{site.url}/hat.wav"): ("hat.wav", "", "hat", site.audio["hat"]),
        derive_id(zip_url, "Kicks/kick 02.wav"): (
            "kick 02.wav",
            "Kicks",
            "kick",
            site.audio["kick2"],
        ),
        derive_id(zip_url, "Snares/snare 02.wav"): (
            "snare 02.wav",
            "Snares",
            "snare",
            site.audio["snare2"],
        ),
    }


def test_crawl_a_sample_pack_site(site: Site, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    result = crawl("samplepack", raw, "-a", f"url={site.url}/index.html")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    store = raw / "samplepack"
    zip_url = f"{site.url}/packs/drums.zip"
    ids = _expected(site)
    assert files(store) == {f"{sid}.wav" for sid in ids}
    recs = records(store)
    index = f"{site.url}/index.html"
    for sid, (name, folder, word, data) in ids.items():
        rec = recs[sid]
        assert (store / rec["file"]).read_bytes() == data
        # No guessed label: name and folder, which say the class, are what the label stage reads.
        assert (rec["name"], rec["folder"], rec["label"]) == (name, folder, "")
        assert word in f"{folder} {name}".lower()
        assert rec["source"] == "samplepack"
        assert rec["username"] == "127.0.0.1"
        assert rec["attribution"].startswith(f"{name} by 127.0.0.1 -- ")
    for sid in list(ids)[:1] + list(ids)[3:]:  # kick.wav and the zip: found on the index page
        assert recs[sid]["url"] == index
        assert (recs[sid]["license"], recs[sid]["license_name"]) == (CC_BY, "CC BY 4.0")
        assert recs[sid]["attribution"].endswith(f" -- {index} -- License: CC BY 4.0")
    clap = recs[derive_id(f"{site.url}/clap.wav")]
    assert (clap["license"], clap["url"]) == ("unknown", f"{site.url}/page2.html")
    assert clap["attribution"].endswith("-- License: unknown")
    assert recs[derive_id(zip_url, "Kicks/kick 02.wav")]["archive_member"] == "Kicks/kick 02.wav"

    # Refused: both escaping members, the copy of "kick 02" and the broken file; the
    # robots.txt-disallowed file and the page beyond max_depth were never requested.
    log = result.stderr
    assert "'../escape.wav' refused: parent_path" in log
    assert "'/abs.wav' refused: absolute_path" in log
    refused = {r["id"]: r["reason"] for r in map(json.loads, (store / "refused.jsonl").open())}
    assert refused == {
        derive_id(zip_url, "Kicks/copy.wav"): "duplicate",
        derive_id(zip_url, "Kicks/broken.wav"): "not_audio",
    }
    assert not (raw.parent / "escape.wav").exists() and not Path("/abs.wav").exists()
    paths = set(site.requests)
    assert "/private/secret.wav" not in paths
    assert "/deep/page3.html" in paths  # depth 2 = max_depth: read, its files taken...
    assert "/deep/deeper/page4.html" not in paths  # ...its pages not followed
    assert "/far.wav" not in paths
    assert "/logo.png" not in paths
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("samplepack: 5 stored, 0 already present, 4 refused")
    feed = [json.loads(line) for line in (store / "feed.jsonl").open()]
    secret = [i for i in feed if i["url"].endswith("/private/secret.wav")]
    assert [i["status"] for i in secret] == ["failed:not_allowed"]  # robots.txt

    site.requests.clear()
    again = crawl("samplepack", raw, "-a", f"url={site.url}/index.html")
    assert again.returncode == 0, again.stderr
    assert not [p for p in site.requests if p.endswith((".wav", ".zip"))]  # nothing fetched
    assert records(store) == recs
    assert "0 stored, 4 already present" in again.stdout  # 3 files and the archive


def test_depth_zero_reads_only_the_index(site: Site, tmp_path: Path) -> None:
    result = crawl(
        "samplepack", tmp_path / "raw", "-a", f"url={site.url}/index.html", "-a", "max_depth=0"
    )
    assert result.returncode == 0, result.stderr
    assert "/page2.html" not in site.requests
    assert len(files(tmp_path / "raw" / "samplepack")) == 3  # kick.wav and two zip members


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: no index page: give -a url=URL"),
        (["-a", "url=ftp://example.com/"], "error: url: not an http(s) URL: 'ftp://example.com/'"),
        (["-a", "url=http://x/", "-a", "max_depth=-1"], "error: max_depth must be a whole number"),
    ],
)
def test_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = crawl("samplepack", tmp_path / "raw", *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(message)
