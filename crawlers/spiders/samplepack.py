"""``scrapy crawl samplepack``: audio files and zip archives of one-shots linked from a web page.

    scrapy crawl samplepack -a url=https://example.com/free-drum-kits/

From the index page it follows links within the same site up to ``crawl.max_depth`` pages
deep (robots.txt obeyed), downloads every linked audio file and zip archive, and stores the
audio (zips are opened with crawlers.archive: members with absolute or ``..`` paths, links,
oversized and bomb-like members are refused, the rest stored one by one). Files are named by
ids derived from their URL (and member name), never by names from the site, under
``data/raw/samplepack/``. A site seldom states a license per file: the record says
``unknown`` unless the page links a Creative Commons deed, and always names the page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import scrapy
from bs4 import BeautifulSoup
from scrapy.http import TextResponse

from core.errors import ConfigError
from core.params import AUDIO_EXTENSIONS, Params
from core.provenance import attribution, license_info, one_line
from crawlers.archive import Limits
from crawlers.rawstore import derive_id
from crawlers.spiders.base import StoreSpider, http_urls

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

    from crawlers.archive import Member
    from crawlers.items import Download

ARCHIVE_EXTENSIONS = ("zip",)
# Links worth following as pages: no extension, or one of these (not images, scripts, ...).
PAGE_EXTENSIONS = ("", "html", "htm", "php", "asp", "aspx", "jsp", "shtml")
UNKNOWN = "unknown"


def _ext(url: str) -> str:
    return PurePosixPath(unquote(urlsplit(url).path)).suffix.lower().lstrip(".")


def _name(url: str) -> str:
    """The file name a URL ends in, as text for the record (never as a path)."""
    return one_line(PurePosixPath(unquote(urlsplit(url).path)).name) or "untitled"


def page_license(soup: BeautifulSoup) -> str:
    """The Creative Commons deed a page links (``rel=license`` first), or ""."""
    links = soup.find_all("a", href=True)
    ranked = sorted(links, key=lambda a: "license" not in (a.get("rel") or []))
    for a in ranked:
        href = str(a["href"]).strip()
        if license_info(href)[0] != UNKNOWN:
            return href
    return ""


class SamplepackSpider(StoreSpider):
    """An index page of one-shots (files or zip archives) and the pages it links to."""

    name = "samplepack"

    @classmethod
    def options(cls, spargs: dict[str, str], params: Params) -> dict[str, Any]:
        crawl = params.crawl
        given = spargs["url"].split(",") if spargs.get("url") else crawl.index_urls
        urls = http_urls([str(u) for u in given], "url")
        if not urls:
            raise ConfigError(
                "no index page: give -a url=URL (a page linking audio files or zip "
                "archives), or set crawl.index_urls in params.yaml"
            )
        depth = spargs.get("max_depth", crawl.max_depth)
        try:
            max_depth = int(str(depth))
        except ValueError:
            max_depth = -1
        if max_depth < 0:
            raise ConfigError(f"max_depth must be a whole number of at least 0, not {depth!r}")
        return {"urls": urls, "max_depth": max_depth}

    @classmethod
    def params_settings(cls, params: Params, settings: BaseSettings) -> dict[str, Any]:
        crawl = params.crawl
        return {"DOWNLOAD_MAXSIZE": max(crawl.max_file_bytes, crawl.max_archive_bytes)}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> SamplepackSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        assert isinstance(spider, SamplepackSpider)
        spider.hosts = {urlsplit(u).netloc.lower() for u in spider.opts["urls"]}
        spider.allowed_domains = sorted({urlsplit(u).hostname or "" for u in spider.opts["urls"]})
        spider.seen = set()
        # Archives whose members are stored already: not downloaded again.
        spider.archives_done = {
            r.get("download_url") for r in spider.store.records() if r.get("archive_member")
        }
        return spider

    def archive_limits(self) -> Limits:
        crawl = self.params.crawl
        return Limits(
            max_archive_bytes=crawl.max_archive_bytes,
            max_files=crawl.max_archive_files,
            max_member_bytes=self.max_bytes(),
        )

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.opts["urls"]:
            self.seen.add(url)
            yield scrapy.Request(url, callback=self.parse, dont_filter=True)

    def parse(self, response: Response) -> Iterator[scrapy.Request]:
        if not isinstance(response, TextResponse):
            self.logger.warning("not an HTML page: %s", response.url)
            return
        soup = BeautifulSoup(response.text, "lxml")
        deed = page_license(soup)
        depth = int(response.meta.get("depth", 0))
        for a in soup.find_all("a", href=True):
            parts = urlsplit(response.urljoin(str(a["href"])))
            url = urlunsplit(parts._replace(fragment=""))
            if parts.scheme not in ("http", "https") or parts.netloc.lower() not in self.hosts:
                continue  # the start site only
            if url in self.seen:
                continue
            ext = _ext(url)
            if ext in AUDIO_EXTENSIONS or ext in ARCHIVE_EXTENSIONS:
                self.seen.add(url)
                request = self.file(url, ext, response.url, deed)
            elif ext in PAGE_EXTENSIONS and depth < self.opts["max_depth"]:
                self.seen.add(url)
                request = scrapy.Request(url, callback=self.parse, dont_filter=True)
            else:
                continue
            if request is not None:
                yield request

    def file(self, url: str, ext: str, page: str, deed: str) -> scrapy.Request | None:
        """The request for a linked file, or None when the store has it already."""
        sid = derive_id(url)
        if ext in ARCHIVE_EXTENSIONS:
            if url in self.archives_done:
                self.count("present")
                return None
        elif self.store.has(sid):
            self.count("present")
            return None
        elif self.store.refusal(sid):
            self.crawler.stats.inc_value(f"skipped/{self.store.refusal(sid)}")
            return None
        record = self.record(sid, _name(url), "", page, deed, url)
        return self.file_request(url, sid, record, ext, archive=ext in ARCHIVE_EXTENSIONS)

    def record(
        self, sid: str, name: str, folder: str, page: str, deed: str, url: str
    ) -> dict[str, Any]:
        """The metadata record of one file: the page it was found on stands for the author
        (the site), the license is the page's deed or ``unknown``."""
        _, license_name = license_info(deed) if deed else (UNKNOWN, UNKNOWN)
        site = urlsplit(page).hostname or UNKNOWN
        return {
            "id": sid,
            "name": name,
            "username": site,
            "license": deed or UNKNOWN,
            "license_name": license_name,
            "attribution": attribution(name, site, page, license_name),
            "url": page,
            "download_url": url,
            "tags": [],
            "duration": None,
            "query": "",
            "label": "",  # the label stage reads name and folder
            "folder": folder,
            "source": self.name,
        }

    def member_record(self, item: Download, member: Member, sid: str) -> dict[str, Any]:
        page, deed = item.record["url"], item.record["license"]
        deed = "" if deed == UNKNOWN else deed
        record = self.record(sid, member.basename, member.folder, page, deed, item.url)
        return {**record, "archive_member": one_line(member.name)}
