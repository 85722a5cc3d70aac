"""Scrapy settings of the crawlers project (`scrapy crawl <spider>` from the repo root).

What the spiders read from ``params.yaml`` (rate limit, retries, timeouts, size caps, depth)
is applied by each spider's ``update_settings`` at Scrapy's *spider* priority, so params.yaml
stays the one place for those knobs and ``-s NAME=VALUE`` on the command line still wins.

Options worth knowing:

- ``-s JOBDIR=.cache/scrapy/jobs/freesound``: a resumable crawl; stop it (Ctrl-C once) or
  lose it (kill, power cut) and run the same command again to carry on. The spiders are also
  idempotent (search pages are re-read, stored files are skipped), so even a crawl killed
  with SIGKILL ends, when re-run, exactly as an uninterrupted one.
- ``-s HTTPCACHE_ENABLED=1``: keep every response under ``.cache/scrapy/httpcache`` and
  replay it on the next run (for developing a spider without asking the server again).
- ``-s RAW_DIR=path``: where the spiders store files (default ``data/raw``; each spider
  writes ``<RAW_DIR>/<spider name>/``).
"""

from __future__ import annotations

from pathlib import Path

from scrapy.utils.conf import closest_scrapy_cfg

from crawlers.items import FEED_FIELDS

# The project root: the folder of scrapy.cfg, which Scrapy finds from any subfolder too.
_CFG = closest_scrapy_cfg()
ROOT = Path(_CFG).parent if _CFG else Path(__file__).resolve().parents[1]

BOT_NAME = "oneshot-diffusion"
SPIDER_MODULES = ["crawlers.spiders"]
NEWSPIDER_MODULE = "crawlers.spiders"
# Our `crawl` command: checks the spider's arguments and the API key before starting (one line,
# exit 2, no traceback) and exits non-zero when a crawl stops for any reason but "finished".
COMMANDS_MODULE = "crawlers.commands"
USER_AGENT = "oneshot-diffusion/0.1 (drum one-shot dataset builder; Scrapy)"

# Project knobs (not Scrapy's own).
PARAMS_FILE = str(ROOT / "params.yaml")
RAW_DIR = str(ROOT / "data" / "raw")
RETRY_BACKOFF_BASE = 2.0  # s before the first retry, doubled for each further one
RETRY_BACKOFF_MAX = 120.0  # s, the longest wait between two tries
RETRY_AFTER_MAX = 600.0  # s; a server asking to wait longer (a daily limit) is not retried

# Websites: obey robots.txt. The Freesound API spider marks its API requests (and the preview
# URLs the API hands out) with `dont_obey_robotstxt`: robots.txt governs crawling the website
# (it disallows /apiv2/ to crawlers), while the API is a service used under its own terms and
# rate limit with a key; every other request of every spider is checked against robots.txt.
ROBOTSTXT_OBEY = True

# Politeness towards websites: two requests at a time per site, at least a second apart,
# slower when the site slows down (AutoThrottle). The API has its own download slot with the
# rate from params.yaml (see crawlers.spiders.freesound); AutoThrottle does not touch it.
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 1.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_TIMEOUT = 30

# Retries for server errors and "too many requests", with a growing wait between tries
# (Scrapy's own retry middleware re-sends at once; ours waits, see crawlers.middlewares).
RETRY_ENABLED = True
RETRY_TIMES = 5
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]

DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawlers.middlewares.BackoffRetryMiddleware": 550,
    # After the HTTP cache (900), right before the downloader: the key exists only while a
    # request is on the wire.
    "crawlers.middlewares.FreesoundAuthMiddleware": 950,
}
ITEM_PIPELINES = {"crawlers.pipelines.RawStorePipeline": 300}

# HTTP cache: off unless asked for. Its storage drops credentials before writing, and error
# replies are never cached (a 429 or 500 replayed forever would be worse than useless).
HTTPCACHE_ENABLED = False
HTTPCACHE_DIR = str(ROOT / ".cache" / "scrapy" / "httpcache")
HTTPCACHE_STORAGE = "crawlers.middlewares.KeylessCacheStorage"
HTTPCACHE_IGNORE_HTTP_CODES = [401, 403, 407, 408, 429, 500, 502, 503, 504, 522, 524]

# The item feed: every file a run fetched or tried to, and what became of it (stored, refused,
# failed), as JSON lines next to the store's metadata.jsonl; rewritten by each run that
# fetched anything (files already stored are counted in the summary line, not listed).
# %(raw_dir)s and %(name)s are the spider's attributes.
FEEDS = {
    "%(raw_dir)s/%(name)s/feed.jsonl": {
        "format": "jsonlines",
        "encoding": "utf-8",
        "overwrite": True,
        "store_empty": False,
        "fields": FEED_FIELDS,
    }
}

LOG_LEVEL = "INFO"
LOGSTATS_INTERVAL = 30.0
# No consoles into a running crawl: they would let other local processes run code in the
# process that holds FREESOUND_API_KEY (and the remote control writes job files to $HOME).
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
