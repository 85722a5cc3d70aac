"""The ``freesound`` spider's bookkeeping without a crawl: previews go to the pipeline in the
order they were requested, and the next search result is tried only once the pipeline has
reported an outcome (so a class takes the same sounds whatever order downloads finish in)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest
from crawl_helpers import REPO
from scrapy.utils.test import get_crawler

from crawlers.freesound.admission import ClassSearch
from crawlers.items import Download
from crawlers.spiders.freesound import ClassRun, FreesoundSpider

CC0 = "http://creativecommons.org/publicdomain/zero/1.0/"


def _result(sid: int) -> dict[str, Any]:
    return {
        "id": sid,
        "name": f"Kick {sid}.wav",
        "license": CC0,
        "duration": 0.4,
        "previews": {"preview-hq-mp3": f"https://cdn.example/{sid}-hq.mp3"},
    }


@pytest.fixture
def spider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FreesoundSpider:
    monkeypatch.setenv("FREESOUND_API_KEY", "k")
    settings = {"PARAMS_FILE": str(REPO / "params.yaml"), "RAW_DIR": str(tmp_path)}
    crawler = get_crawler(FreesoundSpider, settings)
    spider = FreesoundSpider.from_crawler(crawler, classes="kick", max_per_class="2")
    crawler.engine = Mock()  # what landed() launches goes to engine.crawl
    return spider


def _item(request: Any, status: str) -> Download:
    return Download(**request.meta["download"], status=status)


def test_previews_are_released_in_order_and_launched_on_outcomes(spider: FreesoundSpider) -> None:
    run = ClassRun(ClassSearch("kick", spider.cfg, spider.store), 2)
    spider.runs["kick"] = run
    for sid in (11, 12, 13):
        run.candidates.append(run.search.screen(_result(sid)))
    run.page_pending = False  # the last page: no `next`
    first, second = spider.pump(run)  # two slots, two previews in flight
    assert [r.meta["seq"] for r in (first, second)] == [0, 1]
    assert [r.meta["download"]["record"]["rank"] for r in (first, second)] == [1, 2]

    early = _item(second, "failed:not_found")
    assert list(spider.release(run, 1, early)) == []  # waits for the one ranked above it
    late = _item(first, "")
    assert list(spider.release(run, 0, late)) == [late, early]
    assert not spider.crawler.engine.crawl.called  # no outcome yet: nothing more to try

    late.status = "stored"
    spider.landed(late)
    assert not spider.crawler.engine.crawl.called  # one stored, one still in flight
    spider.landed(early)  # failed: its slot goes to the next result
    (third,) = [c.args[0] for c in spider.crawler.engine.crawl.call_args_list]
    assert third.meta["download"]["id"] == "13" and third.meta["seq"] == 2
    assert (run.ok, run.in_flight, run.done) == (1, 1, False)

    (ready,) = spider.release(run, 2, _item(third, "stored"))
    spider.landed(ready)
    assert (run.ok, run.in_flight, run.done) == (2, 0, True)
    assert spider.errors == []
