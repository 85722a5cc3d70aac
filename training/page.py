"""The listening page: ``REPORTS/index.html``, opened from disk with no server and no network.

``evaluate`` judges the model's sounds; this page lets a producer hear and read that judgement:
the figures in words, every generated sound beside the training sound most like it, a map of
real and generated sounds that plays what is clicked, the training curves, and the dataset
itself (originals, variants, rejects, credits). Everything it needs but the dataset's own
files is in ``REPORTS/evaluation/`` (the sounds as 16-bit WAV, their pictures); the dataset's
files are linked by relative path. Same inputs, same bytes: no timestamps, rounded
coordinates, a fixed map seed, so DVC sees no change when nothing changed.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from core.audio_io import write_atomic
from core.files import fresh_dir, read_csv, replace_dir, write_text
from core.spectrograms import log_mel_image, pyplot, save_png
from pipeline.manifests import REJECTS_NAME, read_manifest
from training import page_data as data
from training import page_html as html
from training import page_words as words
from training.evaluation import Reference
from training.figures import layout_2d
from training.judge import features
from training.page_svg import Point, chart_svg, map_legend, map_svg

EVAL = "evaluation"  # REPORTS/evaluation/: the page's own files (a DVC output of the stage)
TITLE = "Listening page"
MAP_SEED = 0
THUMB_W, THUMB_H, DPI = 256, 120, 80
FLAG_TAGS = {
    "click": "click at start",
    "dc": "DC offset",
    "clipped": "clipped",
    "silent": "silent",
    "nan": "broken (NaN)",
    "length": "wrong length",
}
CURVE_TITLES = {
    "train/loss": "Training loss",
    "train/lr": "Learning rate",
    "train/samples_per_s": "Training speed (sounds a second)",
}


def write(
    out: Path,
    dataset: Path,
    ref: Reference,
    generated: dict[str, np.ndarray],
    figures: dict[str, Any],
    used: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """Write ``out/evaluation/`` (built aside, then swapped in: no stale files) and then
    ``out/index.html``."""
    href = _linker(out)

    def link(path: str) -> str:  # a manifest path, as the page links it
        return href(dataset / path)

    rows = read_manifest(dataset / "manifest.csv")
    groups = _groups(rows, ref)
    names = {r["path"]: data.name_of(r) for r in rows}
    work = fresh_dir(out / EVAL)
    cards = _cards(work, ref, generated, figures, names, link)
    replace_dir(work, out / EVAL)
    thresholds = used.get("copy_thresholds") or ref.thresholds
    per_class = {
        cls: words.class_lines(f, cls, _sounds_of(figures, cls), thresholds)
        for cls, f in figures["classes"].items()
    }
    overall = words.overall_lines(figures, per_class, thresholds)
    audio_of = {o.row["path"]: o.audio_id for v in groups.values() for o in v}
    live, attribution = getattr(args, "live", None), getattr(args, "attribution", None)
    parts = [  # (anchor, name in the navigation, html)
        ("figures", "Figures", html.figures_section(overall, per_class)),
        ("", "", html.judge_details(ref.real.classes, ref.confusion, ref.held_accuracy)),
        ("map", "Map", _map(ref, generated, figures, audio_of, names)),
        *_class_parts(per_class, cards),
        ("training", "Training", html.curves_section(_curves(live), str(live)) if live else ""),
        ("dataset", "Dataset", data.dataset_section(groups, link)),
        ("rejects", "Rejects", data.rejects_section(_rejects(dataset.parent / REJECTS_NAME))),
        ("credits", "Credits", _credits(attribution)),
    ]
    verdict, headline = words.headline(overall)
    n = int(figures["overall"].get("n", 0))
    sections = [
        html.header(TITLE, used, n, verdict, headline),
        html.nav([(anchor, name) for anchor, name, body in parts if name and body]),
        *(body for _, _, body in parts),
        "<footer>Made by <code>python -m training.evaluate</code> (the DVC <code>evaluate</code> "
        "stage). Everything here opens from disk: no server, nothing from the network.</footer>",
    ]
    write_text(out / "index.html", html.document(TITLE, sections))


def _class_parts(
    per_class: dict[str, list[words.Line]], cards: dict[str, list[str]]
) -> list[tuple[str, str, str]]:
    """Each class's section (its figures in words, its sound cards) with its anchor."""
    parts = []
    for cls, lines in per_class.items():
        anchor = f"class-{_slug(cls)}"
        body = html.class_section(anchor, cls, lines, cards.get(cls, []))
        parts.append((anchor, cls.capitalize(), body))
    return parts


def _groups(rows: list[dict[str, str]], ref: Reference) -> dict[str, list[data.Original]]:
    """The dataset's originals with their variants per class, the model's classes first,
    each marked if the judge never heard it."""
    groups = data.group(rows)
    classes = ref.real.classes
    order = [c for c in classes if c in groups] + sorted(c for c in groups if c not in classes)
    held = {p: bool(h) for p, h in zip(ref.real.paths, ref.real.held, strict=True)}
    out = {c: groups[c] for c in order}
    for originals in out.values():
        for o in originals:
            o.held = held.get(o.row["path"], False)
    return out


def _linker(out: Path) -> Any:
    """``href(path)``: a file's address relative to ``out/index.html``, URL-quoted, so the
    page works wherever the project folder lies and whatever the file names hold."""
    base = os.path.abspath(out)

    def href(path: Path | str) -> str:
        rel = os.path.relpath(os.path.abspath(path), base)
        return quote(Path(rel).as_posix(), safe="/+")

    return href


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _sounds_of(figures: dict[str, Any], cls: str) -> list[dict[str, Any]]:
    return sorted((s for s in figures["sounds"] if s["class"] == cls), key=lambda s: s["index"])


def thumbnail(path: Path, y: np.ndarray, sr: int) -> None:
    """The waveform (min-max per pixel column, full scale ±1) over the log-mel spectrogram,
    drawn as the project's other spectrograms are."""
    plt = pyplot()
    fig = plt.figure(figsize=(THUMB_W / DPI, THUMB_H / DPI))
    wave = fig.add_axes((0, 0.62, 1, 0.38))
    spec = fig.add_axes((0, 0, 1, 0.6))
    y = np.nan_to_num(np.asarray(y, np.float64))
    cols = np.array_split(y, min(THUMB_W, max(len(y), 1)))
    lo = np.array([c.min() if c.size else 0.0 for c in cols])
    hi = np.array([c.max() if c.size else 0.0 for c in cols])
    wave.fill_between(np.arange(len(lo)), lo, hi, color="#1f2328", linewidth=0.5)
    wave.set_xlim(0, max(len(lo) - 1, 1))
    wave.set_ylim(-1.05, 1.05)
    log_mel_image(spec, y.astype(np.float32), sr)
    for ax in (wave, spec):
        ax.set_axis_off()
    save_png(fig, path, dpi=DPI)


def _cards(
    work: Path,
    ref: Reference,
    generated: dict[str, np.ndarray],
    figures: dict[str, Any],
    names: dict[str, str],
    link: Any,
) -> dict[str, list[str]]:
    """Write every generated sound (16-bit WAV) and its picture, and the pictures of the
    training sounds nearest them, into ``work``; return each class's cards."""
    sr = ref.real.sample_rate
    index = {p: k for k, p in enumerate(ref.real.paths)}
    drawn: set[str] = set()
    cards: dict[str, list[str]] = {}
    for cls, clips in generated.items():
        slug = _slug(cls)
        for s in _sounds_of(figures, cls):
            i, number = s["index"], s["index"] + 1
            stem = f"{slug}/{slug}-{number:02d}"
            write_atomic(work / f"{stem}.wav", np.asarray(clips[i], np.float32), sr, "PCM_16")
            thumbnail(work / f"{stem}.png", clips[i].mean(axis=0), sr)
            near = _near_side(s, f"near-{slug}-{number}", link(s["nearest"]), names)
            k = index.get(s["nearest"])
            if k is not None:
                near_png = f"real/{k:04d}-{_slug(Path(s['nearest']).stem)}.png"
                if near_png not in drawn:
                    thumbnail(work / near_png, ref.real.clips[k], sr)
                    drawn.add(near_png)
                near = replace(near, thumb=f"{EVAL}/{near_png}")
            new = _new_side(s, f"gen-{slug}-{number}", f"{EVAL}/{stem}")
            cards.setdefault(cls, []).append(html.card(new, near))
    return cards


def _new_side(s: dict[str, Any], audio_id: str, stem: str) -> html.Side:
    """A generated sound: what the judge hears in it, its flaws, its shape."""
    cls, number, right = s["class"], s["index"] + 1, s["predicted"] == s["class"]
    heard = f"heard as {s['predicted']} \u00b7 {words.pct(s['confidence'])}"
    tags = [(heard, "ok" if right else "bad")]
    if s.get("near_copy"):
        tags.append(("near-copy of a training sound", "bad"))
    tags += [(FLAG_TAGS.get(flag, flag), "bad") for flag in s.get("invalid", [])]
    env, note = s.get("envelope") or {}, ""
    if env:
        level = env["decay_db"]
        tail = "silent by 0.5 s" if level <= words.SILENT_DB else words.signed_db(level)
        note = (
            f"full level after {env['attack_ms']:.0f} ms \u00b7 tail {tail} at 0.5\u20131 s "
            f"\u00b7 centre {words.hz(env['centroid_hz'])}"
        )
    title = f"{cls.capitalize()} {number}"
    name = f"{cls} {number} (new)"
    return html.Side(title, "", audio_id, f"{stem}.wav", f"{stem}.png", name, tags, note)


def _near_side(s: dict[str, Any], audio_id: str, src: str, names: dict[str, str]) -> html.Side:
    """The training original most like it (waveform and spectrum together)."""
    name = names.get(s["nearest"], Path(s["nearest"]).stem)
    note = f"how alike: waveform {s['copy_ncc']:.2f}, spectrum {s['copy_mel']:.2f} (1 = the same)"
    full = f"{name} (training original)"
    return html.Side("Nearest training sound", name, audio_id, src, "", full, [], note)


def _map(
    ref: Reference,
    generated: dict[str, np.ndarray],
    figures: dict[str, Any],
    audio_of: dict[str, str],
    names: dict[str, str],
) -> str:
    """The 2-D map: t-SNE of the judge's embeddings of the originals and the new sounds
    (one thread: a multi-threaded t-SNE may sum in another order and move the points)."""
    from threadpoolctl import threadpool_limits

    sr = ref.real.sample_rate
    points: list[Point] = []
    real = [k for k, p in enumerate(ref.real.paths) if p in audio_of]
    emb = [ref.emb[real]]
    for k in real:
        path, cls = ref.real.paths[k], ref.real.labels[k]
        label = f"{names.get(path, path)} (real {cls})"
        points.append(Point(0, 0, cls, False, audio_of[path], label))
    for cls, clips in generated.items():
        feats = np.stack([features(x.mean(axis=0), sr) for x in clips])
        emb.append(ref.judge.embed(feats))
        for s in _sounds_of(figures, cls):
            heard = f"heard as {s['predicted']} {words.pct(s['confidence'])}"
            label = f"{cls} {s['index'] + 1} (new): {heard}"
            points.append(Point(0, 0, cls, True, f"gen-{_slug(cls)}-{s['index'] + 1}", label))
    with threadpool_limits(limits=1):
        xy = layout_2d(np.concatenate(emb), MAP_SEED)
    points = [replace(p, x=float(x), y=float(y)) for p, (x, y) in zip(points, xy, strict=True)]
    return html.map_section(map_svg(points, ref.real.classes), map_legend(ref.real.classes))


def _curves(live: Path) -> list[str]:
    """Every DVCLive curve: the loss first, the evaluation metrics next, the rest after."""
    metrics = Path(live) / "plots" / "metrics"
    files = sorted(metrics.rglob("*.tsv")) if metrics.is_dir() else []
    keys = {f: f.relative_to(metrics).with_suffix("").as_posix() for f in files}

    def rank(f: Path) -> tuple[int, str]:
        key = keys[f]
        return (0 if key == "train/loss" else 1 if key.startswith("eval/") else 2, key)

    charts = []
    for f in sorted(files, key=rank):
        steps, values = _read_tsv(f)
        key = keys[f]
        title = CURVE_TITLES.get(key) or key.split("/", 1)[-1].replace("_", " ").capitalize()
        if key.startswith("eval/"):
            title = f"Evaluation: {title.lower()}"
        if len(steps):
            charts.append(chart_svg(title, steps, values))
    return charts


def _read_tsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(step, value) of a DVCLive metric file; unreadable rows are skipped."""
    steps, values = [], []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, [])
        col = 1 if len(header) > 1 and header[0] == "step" else len(header) - 1
        for row in reader:
            try:
                steps.append(float(row[0]))
                values.append(float(row[col]))
            except (IndexError, ValueError):
                continue
    return np.array(steps), np.array(values)


def _rejects(path: Path) -> list[dict[str, str]]:
    return read_csv(path) if path.is_file() else []


def _credits(path: Path | None) -> str:
    if path is None or not Path(path).is_file():
        return ""
    return data.credits_section(Path(path).read_text(encoding="utf-8"), str(path))
