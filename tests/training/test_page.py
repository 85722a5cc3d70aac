"""The listening page (training.page), end to end and in a real browser.

``python -m training.evaluate`` runs in-process on the small drumkit project (8 kHz, 1024
samples, a few-step checkpoint, 3 sounds a class, with variants, a reject, credits and DVCLive
curves); the page it writes is opened from ``file://`` in Debian's chromium driven by
Playwright: no console error, no failed request, every <audio> loads, a click on a map point
plays that very sound. ``make test`` installs chromium; the browser test skips only where it
is missing (a machine that cannot install it).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import yaml
from drumkit import CLASSES, write_kit, write_params

from core.files import read_csv, write_csv
from pipeline.manifests import MANIFEST_COLUMNS
from training import evaluate, page, page_words

pytestmark = pytest.mark.usefixtures("one_thread")
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--headless=new",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
N_PER_CLASS = 3
PER_CLASS = 8  # originals: held_out 0.5 leaves 4 a class for the judge, 4 for the floors

# Every <audio>'s metadata (``preload="none"`` ones are made to load); errors come back as 0.
LOAD_ALL = """async () => {
  const one = (a) => new Promise((resolve) => {
    const done = (ok) => resolve([a.id, ok ? a.duration : 0, a.error ? a.error.code : null]);
    if (a.readyState >= 1) return done(true);
    a.addEventListener("loadedmetadata", () => done(true), {once: true});
    a.addEventListener("error", () => done(false), {once: true});
    setTimeout(() => done(false), 10000);
    a.preload = "metadata";
    a.load();
  });
  return Promise.all(Array.from(document.querySelectorAll("audio")).map(one));
}"""

# Every picture, the lazy ones too; a broken one comes back 0 pixels wide.
LOAD_IMAGES = """async () => Promise.all(Array.from(document.images).map((i) => {
  i.loading = "eager";
  return i.decode().then(() => [i.src, i.naturalWidth], () => [i.src, 0]);
}))"""


def _add_variants(root: Path) -> None:
    """Two gain variants of the first kick, as augment names and lists them."""
    base = root / "data" / "augmented"
    rows = read_csv(base / "manifest.csv")
    first = rows[0]
    y, sr = sf.read(base / first["path"], dtype="float32")
    for db in (-3.0, -6.0):
        name = f"gain_{db:.2f}"
        rel = first["path"].replace(".wav", f"__{name}.wav")
        sf.write(base / rel, y * 10 ** (db / 20), sr, subtype="FLOAT")
        rows.append({**first, "path": rel, "variant": name})
    write_csv(base / "manifest.csv", rows, MANIFEST_COLUMNS)


def _write_extras(root: Path) -> None:
    """A reject, the credits and DVCLive's curves, as the pipeline and the trainer leave them."""
    (root / "data" / "rejects.csv").write_text(
        "path,stage,reason,detail,source,source_id\n"
        "collected/demo/x.wav,trim,silent,no sound above -60 dBFS,demo,x\n",
        encoding="utf-8",
    )
    (root / "data" / "ATTRIBUTION.md").write_text(
        "# Attribution\n\n## CC0 1.0: 32 works\n\n- kick_000 by `test` -- License: "
        "https://creativecommons.org/publicdomain/zero/1.0/\n",
        encoding="utf-8",
    )
    metrics = root / "dvclive" / "plots" / "metrics"
    (metrics / "train").mkdir(parents=True)
    (metrics / "eval").mkdir()
    steps = np.arange(1, 1001)
    loss = "".join(f"{s}\t{0.5 / np.sqrt(s) + 0.01 * np.sin(s)}\n" for s in steps)
    (metrics / "train" / "loss.tsv").write_text("step\tloss\n" + loss, encoding="utf-8")
    (metrics / "train" / "lr.tsv").write_text("step\tlr\n1\t0.0001\n1000\t0.0001\n")
    (metrics / "eval" / "accuracy.tsv").write_text("step\taccuracy\n500\t0.4\n1000\t0.6\n")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, ckpt: Path) -> dict[str, Any]:
    """The evaluate stage run on the kit; returns the folder and what page.write was given."""
    root = tmp_path_factory.mktemp("page")
    write_kit(root, per_class=PER_CLASS)
    _add_variants(root)
    _write_extras(root)
    params = write_params(root)
    params["sample"].update(device="cpu", steps=4)
    params["evaluate"].update(n_per_class=N_PER_CLASS, rounds=5, held_out=0.5)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    (root / "models").mkdir()
    shutil.copy(ckpt, root / "models" / "model.pt")
    calls: list[tuple[Any, ...]] = []
    real_write = page.write

    def recording(*args: Any) -> None:
        calls.append(args)
        real_write(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(page, "write", recording)
        rc = evaluate.main(
            [
                *(str(root / p) for p in ("models/model.pt", "data/augmented", "reports")),
                *("--params", str(root / "params.yaml"), "--no-progress"),
                *("--attribution", str(root / "data" / "ATTRIBUTION.md")),
                *("--live", str(root / "dvclive")),
            ]
        )
    assert rc == 0
    return {"root": root, "args": calls[0]}


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in (".html", ".wav", ".png")
    }


def test_page_is_offline_and_deterministic(project: dict[str, Any]) -> None:
    """Nothing from the network, no audio inlined, and the same inputs give the same bytes
    (DVC must see no change when nothing changed)."""
    reports = project["root"] / "reports"
    text = (reports / "index.html").read_text(encoding="utf-8")
    assert not re.search(
        r"<(script|img|audio|link|source|iframe)[^>]+(src|href)=\"(https?:)?//", text
    )
    assert "data:audio" not in text and "<link" not in text and "@import" not in text
    wavs = sorted((reports / "evaluation").rglob("*.wav"))
    assert len(wavs) == N_PER_CLASS * len(CLASSES)
    assert all(sf.info(w).subtype == "PCM_16" for w in wavs)
    before = _hashes(reports)
    page.write(*project["args"])
    assert _hashes(reports) == before


def test_page_words_are_honest() -> None:
    """A bad set reads as bad, in a producer's words, with the real figure beside it."""
    f = {
        "n": 8, "accuracy": 0.78, "ceiling": 1.0, "frechet": 49.3, "frechet_floor": 12.6,
        "frechet_ratio": 3.9, "diversity_ratio": 0.66, "decay_db": -0.4, "decay_db_real": -24.0,
        "attack_ms": 200.0, "attack_ms_real": 25.0, "centroid_hz": 2400.0,
        "centroid_hz_real": 260.0, "near_copies": 0,
    }  # fmt: skip
    sounds = [{"invalid": ["click"] if i < 7 else []} for i in range(8)]
    lines = {ln.key: ln for ln in page_words.class_lines(f, "kick", sounds, {})}
    assert lines["heard"].text.startswith("78\u00a0% of the new kicks are heard as kicks")
    assert "3.9\u00d7 as far from real kicks" in lines["distance"].text
    assert lines["distance"].verdict == page_words.POOR
    tail = "Their tails fall by 0.4\u00a0dB in the first second; real kicks fall by 24\u00a0dB"
    assert lines["tail"].text == tail
    assert lines["copies"].verdict == page_words.GOOD
    assert "7 start with a click" in lines["flaws"].text
    verdict, headline = page_words.headline(list(lines.values()))
    assert verdict == page_words.POOR and headline.startswith("Not there yet")


def test_hits_that_end_too_soon_read_as_poor_though_their_tails_are_silent() -> None:
    f = {"decay_db": -80.0, "decay_db_real": -80.0, "ring_ms": 90.0, "ring_ms_real": 220.0}
    line = page_words.tail(f, "hihat")
    assert line.verdict == page_words.POOR and line.problem == "hihats end too soon"
    assert line.text.endswith("they ring for 90 ms, real hihats for 220 ms")
    assert line.cell == "\u221280\u00a0dB vs \u221280\u00a0dB, 90 vs 220\u00a0ms"
    assert page_words.tail({**f, "ring_ms": 170.0}, "hihat").verdict == page_words.GOOD
    assert page_words.tail({**f, "ring_ms": 400.0}, "hihat").verdict == page_words.FAIR
    loud = page_words.tail({**f, "decay_db": -60.0, "ring_ms": 200.0}, "hihat")
    assert loud.verdict == page_words.POOR and loud.problem == "hihats' tails ring on"


def test_a_stray_tone_reads_as_poor_and_none_as_good() -> None:
    rung = {"tone_db": 21.9, "tone_floor_db": 6.3, "tone_hz": 2756.25}
    line = page_words.tone(rung, "hihat")
    assert line.verdict == page_words.POOR and line.cell == "22\u00a0dB at 2.8\u00a0kHz"
    assert line.text.startswith("A tone at 2.8\u00a0kHz rings through them")
    assert line.problem == "hihats carry a tone at 2.8\u00a0kHz" and "6.3 dB" in line.detail
    clean = page_words.tone({**rung, "tone_db": 7.0}, "hihat")
    assert clean.verdict == page_words.GOOD and clean.text.startswith("No pitch rings")
    assert clean.cell == "none" and "7.0 dB at 2756 Hz" in clean.detail
    assert page_words.tone({"tone_db": 7.0}, "kick").verdict == page_words.NONE
    worst = page_words.overall_lines(
        {"overall": {"n": 2, "accuracy": 1.0, "ceiling": 1.0}, "sounds": []},
        {"hihat": page_words.class_lines(rung, "hihat", [], {}),
         "kick": page_words.class_lines({**rung, "tone_db": 6.0}, "kick", [], {})},
        {},
    )  # fmt: skip
    tone = {ln.key: ln for ln in worst}["tone"]
    assert tone.verdict == page_words.POOR
    assert "1 of 2 classes are off; furthest, hihats" in tone.text


def test_page_in_browser(project: dict[str, Any], tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (`make test` installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    root = project["root"]
    errors: list[str] = []
    failed: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.on("requestfailed", lambda r: _failed(r, failed))
            tab.goto((root / "reports" / "index.html").as_uri())
            tab.wait_for_load_state("load")
            _check_loaded(tab, root)
            _check_map_plays(tab, root)
            tab.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert not failed, failed


def _failed(request: Any, failed: list[str]) -> None:
    """Record a failed request. Chromium aborts a media fetch once it has what it needs (the
    metadata, or a reload restarting it): ERR_ABORTED on audio is not a broken link (a missing
    file is ERR_FILE_NOT_FOUND, and every player's duration is checked anyway)."""
    if request.failure == "net::ERR_ABORTED" and request.resource_type == "media":
        return
    failed.append(f"{request.url}: {request.failure}")


def _check_loaded(tab: Any, root: Path) -> None:
    """Every player and every picture loads (the dataset's preload="none" ones too)."""
    audios = tab.evaluate(LOAD_ALL)
    rows = read_csv(root / "data" / "augmented" / "manifest.csv")
    generated = N_PER_CLASS * len(CLASSES)
    assert len(audios) == 2 * generated + len(rows)  # new, nearest, every dataset file
    broken = [a for a in audios if not a[1] > 0]
    assert not broken, broken
    images = tab.evaluate(LOAD_IMAGES)
    assert len(images) >= 2 * generated
    assert all(w > 0 for _, w in images), images


def _click_point(tab: Any, selector: str) -> tuple[str, str]:
    """Click (a real mouse click) the first point of ``selector`` nothing covers; return the
    id of the <audio> it names and its label (what the user is told it is)."""
    for handle in tab.query_selector_all(selector):
        handle.scroll_into_view_if_needed()
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        if tab.evaluate("([x, y, e]) => document.elementFromPoint(x, y) === e", [x, y, handle]):
            tab.mouse.click(x, y)
            return handle.get_attribute("data-audio"), handle.get_attribute("aria-label")
    raise AssertionError(f"no uncovered {selector} on the map")


# What the page shows as each sound starts, taken in a "play" listener that runs after the
# page's own (registered later on the same target and phase). The test clips last 128 ms: a
# poll for "not paused" can miss one that starts and ends between two polls.
RECORD_PLAYS = """() => {
  window.plays = {};
  document.addEventListener("play", (e) => {
    const a = e.target;
    window.plays[a.id] = {src: decodeURI(a.currentSrc),
      others: Array.from(document.querySelectorAll("audio")).filter(
        (o) => o !== a && !o.paused).length,
      now: document.getElementById("now-playing").textContent,
      ring: document.getElementById("ring").getAttribute("visibility")};
  }, true);
}"""


def _playing(tab: Any, audio_id: str) -> dict[str, Any]:
    tab.wait_for_function("id => id in window.plays", arg=audio_id, timeout=5000)
    return tab.evaluate("id => window.plays[id]", audio_id)


def _check_map_plays(tab: Any, root: Path) -> None:
    """A click on a generated point plays the sound its label names; a click on a real one
    plays that training file and stops the first (one sound at a time); the map shows which."""
    tab.evaluate(RECORD_PLAYS)
    gen, label = _click_point(tab, ".pt.gen")
    cls, number = re.match(r"(\S+) (\d+) \(new\)", label).groups()
    state = _playing(tab, gen)
    assert state["src"].endswith(f"/reports/evaluation/{cls}/{cls}-{int(number):02d}.wav")
    assert state["ring"] == "visible" and f"{cls} {number} (new)" in state["now"]
    real, label = _click_point(tab, ".pt.real")
    name = label.split(" ", 1)[0]  # "kick_003 (real kick)"
    rows = read_csv(root / "data" / "augmented" / "manifest.csv")
    (path,) = [r["path"] for r in rows if r["source_id"] == name and r["variant"] == "original"]
    state = _playing(tab, real)
    assert state["src"].endswith(f"/data/augmented/{path}"), state
    assert state["others"] == 0 and name in state["now"]


def test_the_settings_line_says_a_length_stretch_only_when_one_is_on() -> None:
    assert page_words.stretch_words({"length_stretch": 1.0, "length_below": 0.02}) == ""
    assert page_words.stretch_words({"length_stretch": 1.5, "length_below": 0.0}) == ""
    said = page_words.stretch_words({"length_stretch": 1.5, "length_below": 0.02})
    assert "1.5x" in said and "0.02" in said
