"""``scrapy crawl <spider>``, with a check before the crawl and an exit code after it.

Scrapy's own command starts the crawl whatever the arguments, so a missing key or an unknown
class ends in a traceback from deep inside the engine, and it exits 0 even when the spider
was closed by an error. This one:

- runs the spider's ``preflight`` (its argument and params.yaml checks, and for
  ``freesound`` the API key) before Scrapy starts logging, and on a problem prints
  ``error: <one line>`` and exits 2;
- prints the crawl's summary line at the end;
- exits 1, with the reason on one line, when the spider closed for any reason other than
  ``finished`` (for example a 401 from the API) or reported errors that left it incomplete.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.spiderloader import get_spider_loader

from core.errors import ConfigError
from crawlers.pipelines import summary

if TYPE_CHECKING:
    import argparse


def error(message: str) -> None:
    """Print ``error: <message>`` as one line."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


class Command(ScrapyCrawlCommand):
    def short_desc(self) -> str:
        return "Run a spider of the project (checks its arguments first)"

    def long_desc(self) -> str:
        return (
            "Run a spider of the project: freesound (the Freesound API; needs "
            "FREESOUND_API_KEY), freesound_pages (Freesound pack and sound pages) or "
            "samplepack (an index page of audio files and zip archives). Arguments: "
            "-a classes=kick,snare -a max_per_class=N (freesound), -a urls=URL,URL or "
            "-a urls_file=PATH (freesound_pages), -a url=INDEX (samplepack). "
            "Exits 2 on bad arguments, 1 when the crawl stopped early or is incomplete."
        )

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        """Scrapy's option handling, then the spider's preflight: this runs before Scrapy
        sets up logging and the crawler, so a refusal is the only line printed."""
        super().process_options(args, opts)
        if len(args) != 1:
            return  # run() reports Scrapy's usage error
        assert self.settings is not None
        loader = get_spider_loader(self.settings)
        try:
            spidercls = loader.load(args[0])
        except KeyError:
            error(f"unknown spider {args[0]!r}; spiders: {', '.join(sorted(loader.list()))}")
            raise SystemExit(2) from None
        preflight = getattr(spidercls, "preflight", None)
        if preflight is not None:
            try:
                preflight(opts.spargs, self.settings)
            except ConfigError as exc:
                error(str(exc))
                raise SystemExit(2) from None

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            super().run(args, opts)  # Scrapy's usage errors
            return
        assert self.crawler_process is not None
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            self.exitcode = 1
            return
        spider = crawler.spider
        print(summary(args[0], crawler.stats), flush=True)
        reason = crawler.stats.get_value("finish_reason")
        errors = list(getattr(spider, "errors", None) or [])
        if reason != "finished":
            error(getattr(spider, "close_message", "") or f"the crawl stopped: {reason}")
            self.exitcode = 1
        elif errors:
            more = f" (and {len(errors) - 1} more, see the log)" if len(errors) > 1 else ""
            error(f"{errors[0]}{more}")
            self.exitcode = 1
