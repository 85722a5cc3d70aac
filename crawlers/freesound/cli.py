"""Freesound API client: search, and download the allowed HQ previews per class.

    python -m crawlers.freesound_api search --class kick
    python -m crawlers.freesound_api download --classes kick,snare --max-per-class 200

For each class it searches with that class's query (``freesound.query``) and the filter built
from ``freesound`` in params.yaml (short single hits, allowed licenses), follows ``next``
(which carries no token: the ``Authorization: Token`` header goes with every API request, and
only to the API's own host), and takes the first ``max_per_class`` results that pass the
license / generative-AI / length rules and land safely, in result order. Downloads go to
``data/raw/freesound/`` (one ``<id>.mp3`` per sound and ``metadata.jsonl``) through
:class:`crawlers.rawstore.RawStore`; a class that already has its sounds is not searched
again, so a second run makes no request and downloads nothing.

API requests are spaced to ``freesound.requests_per_minute`` (Freesound allows 60/min and
2000/day by default), preview downloads to ``freesound.downloads_per_minute``. 429, 5xx,
dropped connections and cut-off downloads are retried with exponential backoff (honouring
``Retry-After`` or the "available in N seconds" of a 429's detail); a 404 preview is logged and
skipped; 401 stops the run with one line (exit 2). The key is read from ``FREESOUND_API_KEY``
only and never printed, logged or written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from core import params as core_params
from core.cli import show_progress
from core.errors import ConfigError
from core.params import Freesound
from crawlers.freesound import rules
from crawlers.freesound.client import Client, Unauthorized
from crawlers.freesound.download import download
from crawlers.rawstore import RawStore

RAW_DIR = Path("data/raw") / rules.SOURCE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crawlers.freesound_api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Needs {rules.KEY_ENV} (create a key at {rules.APPLY_URL}); "
        f"{rules.URL_ENV} overrides the API base.",
    )
    parser.add_argument("--params", default="params.yaml", help="parameters file (params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every retry and skip")
    sub = parser.add_subparsers(dest="command", required=True)
    search = sub.add_parser(
        "search",
        help="print matching sounds as JSON lines",
        description="Search one class (or any text) and print one JSON object per result: "
        "the metadata record it would get and `skip`, the reason it would not be taken.",
    )
    search.add_argument("--class", dest="cls", required=True, help="class name, e.g. kick")
    search.add_argument("--query", help="search text (default: freesound.query.<class>)")
    search.add_argument("--limit", type=int, default=15, help="results to print (default 15)")
    search.add_argument("--all", action="store_true", help="also print results that are skipped")
    dl = sub.add_parser(
        "download",
        help="download the allowed HQ previews per class",
        description="Download the first --max-per-class allowed previews of each class into "
        "--out, with metadata.jsonl. Already stored sounds are not fetched again.",
    )
    dl.add_argument("--classes", help="comma-separated classes (default: label.classes)")
    dl.add_argument("--max-per-class", type=int, help="default: freesound.max_per_class")
    dl.add_argument("--out", type=Path, default=RAW_DIR, help=f"folder (default {RAW_DIR})")
    dl.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _search(args: argparse.Namespace, cfg: Freesound, known: list[str]) -> int:
    """Print the results of one search as JSON lines (the record, and why it is skipped)."""
    cls = rules.parse_classes([args.cls], known)[0]
    query = args.query or cfg.query_for(cls)
    client = Client(cfg, rules.api_key())
    shown = 0
    for page in client.search_pages(query):
        for result in page:
            reason = rules.skip_reason(result, cfg)
            if reason and not args.all:
                continue
            record = rules.sound_record(result, cls, query) if rules.sound_id(result) else result
            print(json.dumps({**record, "skip": reason}, ensure_ascii=False), flush=True)
            shown += 1
            if shown >= args.limit:
                return 0
    return 0


def _download(args: argparse.Namespace, params: core_params.Params) -> int:
    """Download the missing sounds of the classes asked for, then print the summary line."""
    cfg = params.freesound
    classes = rules.parse_classes(args.classes, params.label.classes)
    n = args.max_per_class if args.max_per_class is not None else cfg.max_per_class
    if n < 1:
        raise ConfigError("--max-per-class must be at least 1")
    store = RawStore(args.out, cfg.max_file_bytes)
    progress = show_progress(not args.no_progress)
    summary = download(classes, n, cfg, store, key=rules.api_key(), progress=progress)
    print(summary.line(), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="freesound: %(message)s",
        stream=sys.stderr,
    )
    try:
        params = core_params.load(args.params)
        if args.command == "search":
            return _search(args, params.freesound, params.label.classes)
        return _download(args, params)
    except (rules.MissingKey, Unauthorized, ConfigError) as exc:
        print(f"error: {rules.redact(str(exc))}", file=sys.stderr)
        return 2
    except rules.FreesoundError as exc:
        print(f"error: Freesound API: {rules.redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted (stored files are kept; run again to resume)", file=sys.stderr)
        return 130
