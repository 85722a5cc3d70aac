"""collect with the ``freesound`` and ``crawl`` sources, and provenance end to end: every row
carries license and attribution, variants inherit them, ``data/ATTRIBUTION.md`` credits every
work, and the API key's value is in no file the pipeline writes (fake Freesound server)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "crawlers"))
sys.path.insert(0, str(REPO / "tests"))

from chain import run  # noqa: E402
from fake_freesound import FakeFreesound, start  # noqa: E402
from test_dvc_pipeline import BIN, _copy_repo, _repro  # noqa: E402

from crawlers.rawstore import RawStore  # noqa: E402
from pipeline.stages import augment, collect, label, normalize, pad, trim  # noqa: E402

STORE_MAX = 20 * 2**20  # bytes: a downloaded file as large as freesound.max_file_mb allows

FAST = {
    "max_per_class": 2,
    "page_size": 4,
    "requests_per_minute": 600_000,
    "downloads_per_minute": 600_000,
    "backoff_s": 0.001,
}
# With 2 per class: the first two allowed sounds of each class in the fake catalogue.
EXPECTED = {1001: "kick", 1002: "kick", 2001: "snare", 2003: "snare"}
EXPECTED |= {3001: "hihat", 3002: "hihat", 4001: "clap", 4002: "clap"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeFreesound]:
    srv = start(tmp_path_factory)
    yield srv
    srv.close()


@pytest.fixture
def workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeFreesound
) -> Iterator[Path]:
    server.reset()
    server.clear_quirks()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work


def _params(work: Path, sources: list[str], **sections: dict[str, Any]) -> dict[str, Any]:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["collect"]["sources"] = sources
    params["runner"]["workers"] = 1
    params["freesound"].update(FAST)
    params["augment"].update(variants=2, kinds=["phase_flip", "gain", "saturate"])
    for name, values in sections.items():
        params[name].update(values)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return params


def _manifest(stage_dir: str) -> list[dict[str, str]]:
    with (Path("data") / stage_dir / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _credit(server: FakeFreesound, sid: int) -> str:
    s = server.by_id[sid]
    name = " ".join(s.name.split())
    lic = {
        "Creative Commons 0": "CC0 1.0",
        "Attribution": "CC BY " + s.license.rstrip("/").rsplit("/", 1)[-1],
    }[s.license_name]
    return f"{name} by {s.username} -- {server.sound_url(sid)} -- License: {lic}"


def _scan_for(secret: str, root: Path) -> list[Path]:
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_freesound_source_rows_carry_provenance(workdir: Path, server: FakeFreesound) -> None:
    _params(workdir, ["freesound"])
    assert run(collect, "--no-progress") == 0
    rows = _manifest("collected")
    assert {int(r["source_id"]): r["label"] for r in rows} == EXPECTED
    for r in rows:
        sid = int(r["source_id"])
        sound = server.by_id[sid]
        path = Path("data/collected") / r["path"]
        assert path.resolve() == (workdir / "data/raw/freesound" / f"{sid}.mp3").resolve()
        assert r["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert r["source"] == "freesound"
        assert r["license"] == sound.license
        assert r["attribution"] == _credit(server, sid)
        assert (
            r["query"]
            == yaml.safe_load(Path("params.yaml").read_text())["freesound"]["query"][sound.cls]
        )
        assert r["tags"] == " ".join(sound.tags)
        assert r["url"] == server.sound_url(sid)
    # A second collect asks Freesound nothing and writes the same manifest.
    before = Path("data/collected/manifest.csv").read_bytes()
    server.reset()
    assert run(collect, "--no-progress") == 0
    assert server.requests == []
    assert Path("data/collected/manifest.csv").read_bytes() == before


def test_narrowed_licenses_leave_stored_sounds_out(workdir: Path, server: FakeFreesound) -> None:
    _params(workdir, ["freesound"])
    assert run(collect, "--no-progress") == 0
    _params(workdir, ["freesound"], freesound={"licenses": ["cc0"]})
    assert run(collect, "--no-progress") == 0
    rows = _manifest("collected")
    assert {r["license"] for r in rows} <= {server.by_id[1001].license, server.by_id[1012].license}
    assert sorted(int(r["source_id"]) for r in rows if r["label"] == "kick") == [1001, 1011]


def test_freesound_source_with_refused_key_is_one_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FREESOUND_API_KEY", "not-the-key")
    _params(workdir, ["freesound"])
    assert run(collect, "--no-progress") == 2
    err = capfd.readouterr().err
    assert (
        err.count("\n") == 1 and "collect: error: freesound: Freesound refused the API key" in err
    )
    assert "not-the-key" not in err and "Traceback" not in err


def _mp3(seed: int) -> bytes:
    y = np.random.default_rng(seed).standard_normal(8000).astype(np.float32) * 0.2
    buf = io.BytesIO()
    sf.write(buf, y, 44100, format="MP3")
    return buf.getvalue()


def _crawled(root: Path) -> None:
    pages = RawStore(root / "freesound_pages", STORE_MAX)
    common = {"username": "someone", "tags": ["snare"], "label": ""}
    for sid, lic, extra in [
        (
            11,
            "https://creativecommons.org/licenses/by/4.0/",
            {"gen_ai_preference": "open-source-models"},
        ),
        (12, "http://creativecommons.org/licenses/by-nc/3.0/", {}),  # not allowed by default
        (
            13,
            "http://creativecommons.org/publicdomain/zero/1.0/",
            {"gen_ai_preference": "no-gen-ai"},
        ),
        (  # non-commercial models only: not allowed unless cc-by-nc is
            14,
            "http://creativecommons.org/publicdomain/zero/1.0/",
            {"gen_ai_preference": "noncommercial-open-source-models"},
        ),
    ]:
        rec = {"id": sid, "name": f"Snare {sid}.wav", "license": lic, **common, **extra}
        rec["url"] = f"https://freesound.org/people/someone/sounds/{sid}/"
        rec["attribution"] = f"Snare {sid}.wav by someone -- {rec['url']} -- License: x"
        assert pages.land(sid, _mp3(sid), "mp3", rec) is None
    pack = RawStore(root / "samplepack", STORE_MAX)
    rec = {"id": "a1b2c3d4e5f60718", "name": "Clap 1.wav", "license": "unknown"}
    rec["page_url"] = "https://packs.example/free/"
    assert pack.land("a1b2c3d4e5f60718", _mp3(99), "mp3", rec) is None
    # An unknown license is kept only when the uploader did not opt out of AI training.
    rec = {**rec, "id": "b1b2c3d4e5f60718", "gen_ai_preference": "no-gen-ai"}
    assert pack.land("b1b2c3d4e5f60718", _mp3(98), "mp3", rec) is None


def test_crawl_source_reads_every_spider_folder(workdir: Path) -> None:
    _crawled(workdir / "data/raw")
    _params(workdir, ["crawl"])
    assert run(collect, "--no-progress") == 0
    rows = {(r["source"], r["source_id"]): r for r in _manifest("collected")}
    assert sorted(rows) == [("freesound_pages", "11"), ("samplepack", "a1b2c3d4e5f60718")]
    assert rows["freesound_pages", "11"]["license"].endswith("/by/4.0/")
    assert rows["freesound_pages", "11"]["attribution"].startswith("Snare 11.wav by someone -- ")
    assert rows["freesound_pages", "11"]["gen_ai_preference"] == "open-source-models"
    pack = rows["samplepack", "a1b2c3d4e5f60718"]
    assert pack["gen_ai_preference"] == ""
    assert pack["license"] == "unknown"
    assert pack["attribution"] == (
        "Clap 1.wav by unknown -- https://packs.example/free/ -- License: unknown"
    )
    _params(workdir, ["crawl"], crawl={"allow_unknown_license": False})
    assert run(collect, "--no-progress") == 0
    assert [r["source"] for r in _manifest("collected")] == ["freesound_pages"]
    # Non-commercial use allowed: the sound whose uploader allows only non-commercial models too.
    nc = {"licenses": ["cc0", "cc-by", "cc-by-nc"]}
    _params(workdir, ["crawl"], freesound=nc, crawl={"allow_unknown_license": False})
    assert run(collect, "--no-progress") == 0
    assert sorted(r["source_id"] for r in _manifest("collected")) == ["11", "12", "14"]


def test_crawl_source_without_spider_output_is_one_line(
    workdir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _params(workdir, ["crawl"])
    assert run(collect, "--no-progress") == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "holds no spider output" in err


def test_provenance_reaches_augmented_manifest_and_attribution(
    workdir: Path, server: FakeFreesound
) -> None:
    server.reset()  # with its quirks: a 429 and a 500 on the way
    _params(workdir, ["freesound"], freesound={"max_per_class": 3})
    for stage in (collect, normalize, trim, pad, label, augment):
        assert run(stage, "--no-progress") == 0, stage.__name__
    rows = _manifest("augmented")
    originals = {r["source_id"]: r for r in rows if r["variant"] == "original"}
    # 3 per class; the catalogue has only 2 allowed hihats. 2004's uploader allows only
    # non-commercial models, and non-commercial use is not allowed by default.
    expected = [1001, 1002, 1010, 2001, 2003, 2006, 3001, 3002, 4001, 4002, 4004]
    assert sorted(map(int, originals)) == expected
    for r in rows:
        sid = int(r["source_id"])
        assert r["license"] == server.by_id[sid].license, r
        assert r["attribution"] == _credit(server, sid), r  # variants inherit both
        assert r["gen_ai_preference"] == server.by_id[sid].gen_ai_preference, r  # for the card
    assert len(rows) == 3 * len(originals)
    text = Path("data/ATTRIBUTION.md").read_text(encoding="utf-8")
    for sid in originals:
        assert text.count(f"- {_credit(server, int(sid))}\n") == 1, sid
    assert "## CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/): 5 works" in text
    assert "## CC0 1.0 (https://creativecommons.org/publicdomain/zero/1.0/): 5 works" in text
    assert not _scan_for(server.key, workdir)


def test_dvc_repro_with_freesound(tmp_path: Path, server: FakeFreesound) -> None:
    """`dvc repro` collects through the API client; nothing DVC stores holds the key."""
    server.reset()
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["collect"]["sources"] = ["freesound"]
    params["label"]["classes"] = ["kick", "clap"]
    # Every class has its words and query, and no words or query name a class not listed.
    for key in (params["label"]["keywords"], params["freesound"]["query"]):
        for cls in ("snare", "hihat"):
            del key[cls]
    params["freesound"].update(FAST)
    params["augment"].update(variants=1, kinds=["gain"])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    copied = {p: p.stat().st_mtime_ns for p in repo.rglob("*") if p.is_file()}
    env = {
        **os.environ,
        **server.env(),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
    }
    out = _repro(repo, env)
    assert "freesound: kick 2/2, clap 2/2" in out
    with (repo / "data/augmented/manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted({int(r["source_id"]) for r in rows}) == [1001, 1002, 4001, 4002]
    assert all(r["license"] and r["attribution"] for r in rows)
    assert (repo / "data/ATTRIBUTION.md").is_file()
    assert "data/ATTRIBUTION.md" in (repo / "dvc.lock").read_text()
    assert server.key not in out
    # Every file the run wrote or changed (outputs, dvc.lock, DVC's cache, .cache/, data/raw/);
    # the copied sources are left out (the fake server's own file holds the fake key).
    written = [p for p in _scan_for(server.key, repo) if copied.get(p) != p.stat().st_mtime_ns]
    assert not written
    assert len([p for p in repo.rglob("*") if p.is_file() and p not in copied]) > 20
