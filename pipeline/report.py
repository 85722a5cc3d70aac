"""Dataset report: what the final set holds and what the pipeline refused, plus spectrograms.

Written at the end of ``augment`` to ``reports/dataset.md`` and ``reports/spectrograms.png``
(log-mel spectrograms of a few originals per class), and ``data/ATTRIBUTION.md``: the credit
line of every original work in the final dataset, grouped by license.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.atomic import replacing, write_text
from pipeline.runner import REJECTS_FILE, StageResult

REPORT_DIR = Path("reports")
DATASET_DIR = Path("data/augmented")
ATTRIBUTION_FILE = Path("data/ATTRIBUTION.md")
UNKNOWN = "Unknown license"
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]<>|"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _table(counts: pd.Series, name: str) -> str:
    lines = [f"| {name} | files |", "| --- | ---: |"]
    lines += [f"| {k if k != '' else '(none)'} | {v} |" for k, v in counts.items()]
    return "\n".join(lines)


def markdown(manifest: pd.DataFrame, rejects: pd.DataFrame) -> str:
    """The report text: counts per class, variant, source and license; refusals per reason."""
    originals = manifest[manifest["variant"] == "original"]
    parts = [
        "# Dataset report",
        "",
        f"{len(manifest)} files in `data/augmented/` ({len(originals)} originals, "
        f"{len(manifest) - len(originals)} variants); {len(rejects)} inputs refused.",
        "",
        "## Per class (all files / originals)",
        "",
        "| class | files | originals |",
        "| --- | ---: | ---: |",
    ]
    per_class = manifest.groupby("label").size()
    per_class_orig = originals.groupby("label").size()
    parts += [f"| {c} | {n} | {per_class_orig.get(c, 0)} |" for c, n in per_class.items()]
    kinds = manifest["variant"].str.replace(r"_[-+0-9.]+$", "", regex=True)
    parts += [
        "",
        "## Per variant kind",
        "",
        _table(kinds.value_counts().sort_index(), "variant"),
        "",
        "## Per source (originals)",
        "",
        _table(originals.groupby("source").size(), "source"),
        "",
        "## Per license (originals)",
        "",
        _table(originals.groupby("license").size(), "license"),
        "",
        "## Refused inputs per stage and reason",
        "",
    ]
    if len(rejects):
        counts = rejects.groupby(["stage", "reason"]).size()
        parts += ["| stage | reason | files |", "| --- | --- | ---: |"]
        parts += [f"| {s} | {r} | {n} |" for (s, r), n in counts.items()]
        parts += ["", "Every refused file, with its reason, is listed in `data/rejects.csv`."]
    else:
        parts.append("None.")
    parts += ["", "![log-mel spectrograms](spectrograms.png)", ""]
    return "\n".join(parts)


def log_mel(y: np.ndarray, sr: int) -> np.ndarray:
    """Mel power spectrogram of one mono clip with the project's settings (64 mels, FFT of
    2048 or less for short clips, hop a quarter of it): every spectrogram drawn or compared
    (report, training demos, sample grid, bench/sample.py) uses it."""
    import librosa

    n_fft = min(2048, 2 ** int(np.log2(max(len(y), 2))))
    return librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64, fmax=sr / 2
    )


def log_mel_image(ax: Any, y: np.ndarray, sr: int) -> None:
    """Draw one mono clip's log-mel spectrogram on a matplotlib axis (80 dB range, magma).

    The one look of every spectrogram the project draws (dataset report, training demos,
    samples), so they compare at a glance.
    """
    import librosa

    ax.imshow(
        librosa.power_to_db(log_mel(y, sr), ref=np.max),
        origin="lower",
        aspect="auto",
        vmin=-80,
        vmax=0,
        cmap="magma",
    )


def spectrogram_grid(rows: Mapping[str, Sequence[Path]], out: Path, title: str) -> None:
    """A grid of log-mel spectrograms of audio files: one row per key (a class), its files
    left to right. The dataset report and the ``sample`` stage both draw theirs with it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    rows = {name: list(paths) for name, paths in rows.items() if paths}
    if not rows:
        return
    cols = max(len(paths) for paths in rows.values())
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.4 * cols, 2.0 * len(rows)), squeeze=False)
    for r, (name, paths) in enumerate(rows.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(paths):
                ax.axis("off")
                continue
            y, sr = sf.read(paths[c], dtype="float32", always_2d=True)
            log_mel_image(ax, y.mean(axis=1), sr)
            ax.set_title(f"{name} {c + 1}", fontsize=8)
            if c == 0:
                ax.set_ylabel(name)
    fig.suptitle(title)
    fig.tight_layout()
    with replacing(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def original_rows(manifest: pd.DataFrame, base: Path, per_class: int) -> dict[str, list[Path]]:
    """The first ``per_class`` originals of each class (sorted by class), as grid rows."""
    originals = manifest[manifest["variant"] == "original"]
    return {
        str(cls): [base / p for p in originals[originals["label"] == cls]["path"].head(per_class)]
        for cls in sorted(originals["label"].unique())
    }


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def attribution_markdown(rows: list[dict[str, str]]) -> str:
    """``data/ATTRIBUTION.md``: one line per original work (variants are adaptations of it
    and share its credit), grouped by license, in a stable order."""
    from crawlers.freesound import license_info

    works: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        works.setdefault((row.get("source", ""), row.get("source_id", "")), row)
    groups: dict[str, list[str]] = {}
    deeds: dict[str, str] = {}
    for row in works.values():
        code, name = license_info(row.get("license"))
        if code == "unknown":
            name = UNKNOWN
        else:  # one heading for http/https and with/without the trailing slash
            url = row["license"].strip().replace("http://", "https://", 1)
            deeds.setdefault(name, url if url.endswith("/") else url + "/")
        # Names come from the web: escape what Markdown would turn into links or HTML.
        # A file name may hold a newline: one credit stays one bullet.
        line = _CONTROL.sub(" ", row.get("attribution", ""))
        groups.setdefault(name, []).append(line.translate(_MD_SPECIAL))
    n_variants = len(rows) - len(works)
    parts = [
        "# Attribution",
        "",
        f"`data/augmented/` holds {_n(len(works), 'original work')} and "
        f"{_n(n_variants, 'variant')} of them "
        "(polarity-flipped, pitch-shifted, saturated or gain-changed copies: adaptations that "
        "keep the original's license and credit). Credit for every work, by license:",
    ]
    for name, lines in sorted(groups.items(), key=lambda g: (g[0] == UNKNOWN, g[0])):
        url = deeds.get(name)
        parts += ["", f"## {name}" + (f" ({url})" if url else "") + f": {_n(len(lines), 'work')}"]
        parts.append("")
        if not url:
            parts += ["No license is known for these files: check each before you share them.", ""]
        parts += [f"- {line}" for line in sorted(lines)]
    return "\n".join(parts) + "\n"


def write_report(result: StageResult, params: dict[str, Any]) -> None:
    cols = ["path", "label", "variant", "source", "license"]
    manifest = pd.DataFrame(result.rows) if result.rows else pd.DataFrame(columns=cols)
    rejects = pd.DataFrame(columns=["stage", "reason"])
    if REJECTS_FILE.is_file():
        rejects = pd.read_csv(REJECTS_FILE, dtype=str, keep_default_na=False)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    write_text(REPORT_DIR / "dataset.md", markdown(manifest, rejects))
    per_class = int(params["report"]["per_class"])
    spectrogram_grid(
        original_rows(manifest, DATASET_DIR, per_class),
        REPORT_DIR / "spectrograms.png",
        "log-mel spectrograms (originals, 1 s each)",
    )
    ATTRIBUTION_FILE.parent.mkdir(parents=True, exist_ok=True)
    write_text(ATTRIBUTION_FILE, attribution_markdown(result.rows))
    print(
        f"report: {REPORT_DIR / 'dataset.md'}, {REPORT_DIR / 'spectrograms.png'}, "
        f"{ATTRIBUTION_FILE}"
    )
