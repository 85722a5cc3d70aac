"""``scrapy crawl freesound_pages``: sounds from Freesound pack and sound pages, no key needed.

    scrapy crawl freesound_pages -a urls=https://freesound.org/people/NAME/packs/123/
    scrapy crawl freesound_pages -a urls_file=my_packs.txt      # one URL a line, # comments

A pack page's sound links and its ``?page=N`` pagination are followed; each sound page gives
the title, author, license link, tags and preview URL (``og:audio``; the HQ preview when the
page names it), read with BeautifulSoup. The same license / length rules as the API apply
(``freesound.licenses`` ...), robots.txt is obeyed, and files go to
``data/raw/freesound_pages/<id>.mp3`` with the same metadata record as the API's, without a
label: the label stage reads name and tags.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import scrapy
from bs4 import BeautifulSoup

from core.errors import ConfigError
from core.params import Params
from core.provenance import license_info, one_line
from crawlers.freesound import rules
from crawlers.spiders.base import StoreSpider, http_urls

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

SOUND_PATH = re.compile(r"^/people/(?P<user>[^/]+)/sounds/(?P<id>\d+)/?$")
PACK_PATH = re.compile(r"^/people/(?P<user>[^/]+)/packs/(?P<id>\d+)/?$")
TAG_PATH = re.compile(r"^/browse/tags/(?P<tag>[^/]+)/?$")
DURATION = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


def _meta(soup: BeautifulSoup, prop: str) -> str:
    tag = soup.find("meta", attrs={"property": prop})
    return one_line(tag.get("content", "")) if tag else ""


def _duration(soup: BeautifulSoup) -> float | None:
    """Seconds from the page's "Duration" field (``m:ss.mmm``), if it has one."""
    label = soup.find(string=re.compile(r"^\s*Duration\s*$"))
    value = label.find_next(string=DURATION) if label else None
    m = DURATION.match(value.strip()) if value else None
    if not m:
        return None
    hours, minutes, seconds = m.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def parse_sound_page(html: str, page_url: str) -> dict[str, Any] | None:
    """A sound page as an API-shaped result (``id, name, username, license, url, tags,
    duration, previews``), or None when the page is not a sound page.

    ``og:*`` meta tags give id (from ``og:url``), title, author and preview; the license is
    the page's first Creative Commons deed link; tags are the ``/browse/tags/<tag>/`` links.
    On freesound.org ``og:audio`` is the LQ preview; an element's ``data-static-file-url``
    names the HQ one, which is preferred.
    """
    soup = BeautifulSoup(html, "lxml")
    canonical = _meta(soup, "og:url") or page_url
    m = SOUND_PATH.match(urlsplit(canonical).path) or SOUND_PATH.match(urlsplit(page_url).path)
    if not m:
        return None
    username = _meta(soup, "og:audio:artist") or unquote(m.group("user"))
    name = _meta(soup, "og:audio:title")
    if not name:
        title = _meta(soup, "og:title")
        name = title.removesuffix(f" by {username}") if title else ""
    preview = ""
    hq = soup.find(attrs={"data-static-file-url": True})
    if hq and str(hq["data-static-file-url"]).lower().endswith((".mp3", ".ogg")):
        preview = str(hq["data-static-file-url"])
    preview = preview or _meta(soup, "og:audio")
    preview = urljoin(page_url, preview) if preview else ""
    deed = ""
    tags: list[str] = []
    for a in soup.find_all("a", href=True):
        href = str(a["href"]).strip()
        if not deed and license_info(href)[0] != "unknown":
            deed = href
        t = TAG_PATH.match(urlsplit(urljoin(page_url, href)).path)
        if t:
            tag = one_line(unquote(t.group("tag")))
            if tag and tag not in tags:
                tags.append(tag)
    key = "preview-hq-ogg" if preview.lower().endswith(".ogg") else "preview-hq-mp3"
    return {
        "id": int(m.group("id")),
        "name": name,
        "username": username,
        "license": deed,
        "url": canonical,
        "tags": tags,
        "duration": _duration(soup),
        "previews": {key: preview} if preview else {},
    }


def _strip_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


class FreesoundPagesSpider(StoreSpider):
    """Freesound pack and sound pages (the website, robots.txt obeyed, no API key)."""

    name = "freesound_pages"

    @classmethod
    def options(cls, spargs: dict[str, str], params: Params) -> dict[str, Any]:
        if spargs.get("urls"):
            given = spargs["urls"].split(",")
        elif spargs.get("urls_file"):
            path = Path(spargs["urls_file"])
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"urls_file {path}: {exc.strerror or exc}") from None
            given = [ln.split("#", 1)[0] for ln in lines]
        else:
            given = list(params.crawl.urls)
        urls = http_urls(given, "urls")
        if not urls:
            raise ConfigError(
                "no pages to crawl: give -a urls=URL,URL or -a urls_file=PATH "
                "(Freesound pack or sound page URLs), or set crawl.urls in params.yaml"
            )
        for url in urls:
            path = urlsplit(url).path
            if not (SOUND_PATH.match(path) or PACK_PATH.match(path)):
                raise ConfigError(
                    f"not a Freesound sound or pack page: {url} "
                    "(expected .../people/<user>/sounds/<id>/ or .../people/<user>/packs/<id>/)"
                )
        return {"urls": urls}

    @classmethod
    def params_settings(cls, params: Params, settings: BaseSettings) -> dict[str, Any]:
        return {"DOWNLOAD_MAXSIZE": params.crawl.max_file_bytes}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> FreesoundPagesSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        assert isinstance(spider, FreesoundPagesSpider)
        spider.allowed_domains = sorted({urlsplit(u).hostname or "" for u in spider.opts["urls"]})
        spider.seen = set()
        return spider

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.opts["urls"]:
            yield self.page_request(url)

    def page_request(self, url: str) -> scrapy.Request | None:
        """A request for a page not yet requested in this run (JOBDIR's seen-list is not used,
        see StoreSpider.file_request)."""
        url = _strip_fragment(url)
        if url in self.seen:
            return None
        self.seen.add(url)
        path = urlsplit(url).path
        callback = self.parse_sound if SOUND_PATH.match(path) else self.parse_pack
        return scrapy.Request(url, callback=callback, dont_filter=True)

    def parse_pack(self, response: Response) -> Iterator[scrapy.Request]:
        here = urlsplit(response.url)
        soup = BeautifulSoup(response.text, "lxml")
        for a in soup.find_all("a", href=True):
            url = response.urljoin(str(a["href"]))
            parts = urlsplit(url)
            if parts.netloc != here.netloc:
                continue
            if parts.path == here.path and "page=" in parts.query:
                request = self.page_request(url)  # the pack's next (or any) page
            elif SOUND_PATH.match(parts.path):
                request = self.page_request(urlunsplit(parts._replace(query="")))
            else:
                continue
            if request is not None:
                yield request

    def parse_sound(self, response: Response) -> Iterator[scrapy.Request]:
        result = parse_sound_page(response.text, response.url)
        if result is None:
            self.logger.warning("not a sound page: %s", response.url)
            return
        reason = rules.skip_reason(result, self.params.freesound)
        if reason:
            self.crawler.stats.inc_value(f"skipped/{reason}")
            self.logger.info("sound %s skipped: %s", result["id"], reason)
            return
        sid = str(result["id"])
        if self.store.has(sid):
            self.count("present")
            return
        refusal = self.store.refusal(sid)
        if refusal:
            self.crawler.stats.inc_value(f"skipped/{refusal}")
            return
        # No label: the label stage reads the record's name and tags.
        record = {**rules.sound_record(result, "", ""), "source": self.name}
        url = str(record["preview_url"])
        yield self.file_request(url, sid, record, rules.preview_extension(url))
