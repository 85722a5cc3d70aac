"""collect: gather one-shots from the sources in ``collect.sources`` into one manifest.

Sources: ``demo`` (the embedded synthesized kit, written to ``OUT/demo/``), ``local``
(``collect.local_dirs``, indexed where they lie, never copied), ``freesound`` (the API client
downloads into ``IN/freesound/``; needs ``FREESOUND_API_KEY``) and ``crawl`` (what the Scrapy
spiders stored under ``IN/<spider>/``); downloaded files are referenced where they lie too,
with their license and attribution line. Every file is checked from its header (length, rate,
channels, size) and hashed; the same content found twice is kept once. The manifest records
each file's size and sha256, so when a user folder changes, the manifest changes and DVC
re-runs what follows; when nothing changed, the manifest is byte-identical and DVC skips every
later stage. Hashes and headers are cached in ``.cache/collect-index.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import Reject
from core.files import Row
from core.params import Params
from pipeline.command import Command, run_command
from pipeline.runner import Job, Output, Result
from pipeline.sources import demo
from pipeline.sources.scan import gather

INDEX_FILE = Path(".cache/collect-index.json")


def rows(params: Params, args: argparse.Namespace) -> tuple[list[Row], Path, list[Row]]:
    found, refused = gather(params, args.input, args.output, INDEX_FILE)
    return found, args.output, refused


def process(jobs: list[Job], params: Params) -> list[Result]:
    results: list[Result] = []
    kit = params.collect.demo
    specs = (
        {s.source_id: s for s in demo.plan(kit.per_class, kit.seed)}
        if any(j.row["source"] == "demo" for j in jobs)
        else {}
    )
    for job in jobs:
        row = job.row
        if row["source"] == "demo":
            spec = specs[row["source_id"]]
            audio = demo.synthesize(spec)
            out = Output(
                f"demo/{spec.cls}/{spec.file_name}",
                audio,
                spec.sample_rate,
                subtype=spec.subtype or None,
            )
            results.append([out])
        elif job.src is not None:
            results.append([Output("", keep="ref")])
        else:
            results.append(Reject("missing", "no file for this row"))
    return results


COMMAND = Command(
    "collect",
    __doc__,
    process,
    read="none",
    rows=rows,
    input_help="the downloads folder (data/raw: freesound/ and one folder per spider)",
)


def main(argv: list[str] | None = None) -> int:
    return run_command(COMMAND, argv)


if __name__ == "__main__":
    raise SystemExit(main())
