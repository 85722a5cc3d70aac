"""Dataset report: what the final set holds and what the pipeline refused, plus spectrograms.

Written at the end of ``augment`` to ``<reports>/dataset.md`` and ``<reports>/spectrograms.png``
(log-mel spectrograms of a few originals per class), and the attribution file
(``data/ATTRIBUTION.md``): the credit line of every original work in the final dataset, grouped
by license.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from core.cli import plural
from core.files import write_text
from core.params import Params
from core.provenance import license_info
from core.spectrograms import spectrogram_grid
from pipeline.manifests import REJECTS_NAME
from pipeline.runner import StageResult

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


def original_rows(manifest: pd.DataFrame, base: Path, per_class: int) -> dict[str, list[Path]]:
    """The first ``per_class`` originals of each class (sorted by class), as grid rows."""
    originals = manifest[manifest["variant"] == "original"]
    return {
        str(cls): [base / p for p in originals[originals["label"] == cls]["path"].head(per_class)]
        for cls in sorted(originals["label"].unique())
    }


def attribution_markdown(rows: list[dict[str, str]]) -> str:
    """``data/ATTRIBUTION.md``: one line per original work (variants are adaptations of it
    and share its credit), grouped by license, in a stable order."""
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
        f"`data/augmented/` holds {plural(len(works), 'original work')} and "
        f"{plural(n_variants, 'variant')} of them "
        "(polarity-flipped, pitch-shifted, saturated or gain-changed copies: adaptations that "
        "keep the original's license and credit). Credit for every work, by license:",
    ]
    for name, lines in sorted(groups.items(), key=lambda g: (g[0] == UNKNOWN, g[0])):
        url = deeds.get(name)
        parts += [
            "",
            f"## {name}" + (f" ({url})" if url else "") + f": {plural(len(lines), 'work')}",
        ]
        parts.append("")
        if not url:
            parts += ["No license is known for these files: check each before you share them.", ""]
        parts += [f"- {line}" for line in sorted(lines)]
    return "\n".join(parts) + "\n"


def write_report(result: StageResult, params: Params, args: argparse.Namespace) -> None:
    """The report beside the finished dataset folder ``args.output``."""
    cols = ["path", "label", "variant", "source", "license"]
    manifest = pd.DataFrame(result.rows) if result.rows else pd.DataFrame(columns=cols)
    rejects = pd.DataFrame(columns=["stage", "reason"])
    rejects_file = args.output.parent / REJECTS_NAME
    if rejects_file.is_file():
        rejects = pd.read_csv(rejects_file, dtype=str, keep_default_na=False)
    reports: Path = args.reports
    write_text(reports / "dataset.md", markdown(manifest, rejects))
    spectrogram_grid(
        original_rows(manifest, args.output, params.report.per_class),
        reports / "spectrograms.png",
        "log-mel spectrograms (originals, 1 s each)",
    )
    write_text(args.attribution, attribution_markdown(result.rows))
    print(f"report: {reports / 'dataset.md'}, {reports / 'spectrograms.png'}, {args.attribution}")
