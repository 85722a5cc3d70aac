"""label: give every clip its class, or refuse it; never guess.

The class comes from the first of these that names exactly one class: the folder the file sat
in (nearest folder first), the file name, then the source's metadata (search query, tags).
Words are matched against ``label.keywords`` (pipeline.labels). A clip no rule names is
refused as ``unlabeled``; one that two classes name equally is refused as ``ambiguous``. The
class balance is written to ``--balance`` (a DVC metric).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from core.errors import Reject
from core.files import write_text
from core.params import Params
from pipeline.command import Command, run_command
from pipeline.labels import class_keywords, classify
from pipeline.runner import Job, Output, Result, StageResult


def process(jobs: list[Job], params: Params) -> list[Result]:
    keywords = class_keywords(params.label)
    results: list[Result] = []
    for job in jobs:
        try:
            label = classify(job.row, keywords)
        except Reject as rej:
            results.append(rej)
            continue
        results.append([Output(f"{label}/{job.row['uid']}.wav", fields={"label": label})])
    return results


def write_balance(result: StageResult, params: Params, args: argparse.Namespace) -> None:
    counts = Counter(r["label"] for r in result.rows)
    total = sum(counts.values())
    classes = params.label.classes
    balance = {
        "total": total,
        "classes": {c: counts.get(c, 0) for c in classes},
        "share": {c: round(counts.get(c, 0) / total, 4) if total else 0.0 for c in classes},
    }
    write_text(args.balance, json.dumps(balance, indent=2) + "\n")
    print("label: class balance " + ", ".join(f"{c} {n}" for c, n in balance["classes"].items()))


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--balance", type=Path, required=True, help="where the class balance goes (JSON)"
    )


COMMAND = Command("label", __doc__, process, read="header", after=write_balance, options=_options)


def main(argv: list[str] | None = None) -> int:
    return run_command(COMMAND, argv)


if __name__ == "__main__":
    raise SystemExit(main())
