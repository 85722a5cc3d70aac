"""crawlers.pipelines: the item pipeline is what stores a spider's files, and it tells the
spider each outcome once it is known (the ``freesound`` spider waits for it)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import numpy as np
import soundfile as sf

from crawlers.items import Download
from crawlers.pipelines import RawStorePipeline
from crawlers.rawstore import RawStore

STORE_MAX = 20 * 2**20  # bytes: a downloaded file as large as freesound.max_file_mb allows


def _wav(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(seed).standard_normal(4410) * 0.1, 44100, format="WAV")
    return buf.getvalue()


class _Spider:
    """What the pipeline needs of a spider: its store, counting, and the outcome hook."""

    name = "test"

    def __init__(self, root: Path) -> None:
        self.store = RawStore(root, STORE_MAX)
        self.crawler = Mock()  # its stats
        self.counted: list[tuple[str, int]] = []
        self.heard: list[tuple[str, str]] = []

    def count(self, status: str, n: int = 1) -> None:
        self.counted.append((status, n))

    def landed(self, item: Download) -> None:
        # The outcome is final by now: the file is stored (or not) and the status says so.
        self.heard.append((item.id, item.status))
        assert self.store.has(item.id) == (item.status == "stored")


def _pipeline(spider: _Spider) -> RawStorePipeline:
    crawler: Any = Mock()
    crawler.spider = spider
    return RawStorePipeline(crawler)


def test_the_pipeline_stores_then_reports_every_outcome(tmp_path: Path) -> None:
    spider = _Spider(tmp_path / "store")
    pipeline = _pipeline(spider)
    record = {"id": 7, "name": "Kick 7.wav"}
    item = Download("7", "http://x/7.wav", record, "wav", body=_wav(1))
    assert pipeline.process_item(item) is item
    assert (item.status, item.files, item.body) == ("stored", ["7.wav"], b"")
    copy = Download("8", "http://x/8.wav", {"id": 8}, "wav", body=_wav(1))
    failed = Download("9", "http://x/9.wav", {"id": 9}, "wav", status="failed:not_found")
    pipeline.process_item(copy)
    pipeline.process_item(failed)
    assert copy.status == "refused:duplicate"
    assert spider.heard == [("7", "stored"), ("8", "refused:duplicate"), ("9", "failed:not_found")]
    assert spider.counted == [("stored", 1), ("refused", 1), ("failed", 1)]
    assert pipeline.process_item({"not": "a download"}) == {"not": "a download"}
    assert len(spider.heard) == 3
