"""Which search results a class takes: the one admission both Freesound clients use.

The API client (crawlers.freesound.download) and the Scrapy spider (crawlers.spiders.freesound)
walk a class's search results in order and must end up with the very same sounds and records.
:class:`ClassSearch` holds what that takes: it numbers the results (``rank``, nulls dropped),
applies the rules (crawlers.freesound.rules), drops a sound met twice in one search (paging
shifted while it was read), and asks the store what it already holds or refused. Each result
ends as one :data:`Decision`: :class:`Skip` (with the reason counted in the summary),
:class:`Present` (stored by an earlier run: counted, its query and rank brought up to date) or
:class:`Fetch` (the record to store with the downloaded preview).

Two steps, because the spider screens a whole page when it arrives but asks the store only
when it is about to download (the store may have changed meanwhile): :meth:`ClassSearch.screen`
then :meth:`ClassSearch.admit`; the API client does both at once with :meth:`ClassSearch.decide`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.params import Freesound
from crawlers.freesound import rules
from crawlers.rawstore import RawStore


@dataclass(frozen=True)
class Skip:
    """Not taken; ``reason`` is counted (``license_not_allowed``, ``ai_opt_out``,
    ``ai_noncommercial``, ``repeated``, ``other_class``, ``duplicate``, ...)."""

    reason: str


@dataclass(frozen=True)
class Present:
    """Stored by an earlier run for this class: it fills a slot without a download."""

    sid: str


@dataclass(frozen=True)
class Fetch:
    """To download: the preview ``url`` (``ext`` mp3 or ogg) and the ``record`` to store."""

    sid: str
    url: str
    ext: str
    record: dict[str, Any]


Decision = Skip | Present | Fetch


@dataclass(frozen=True)
class Candidate:
    """A result that passed the rules: its rank in the search and its id."""

    rank: int
    sid: str
    result: dict[str, Any]


@dataclass
class ClassSearch:
    """One class's walk through its search results (``cfg.max_per_class`` is the target)."""

    label: str
    cfg: Freesound
    store: RawStore
    rank: int = 0  # results met so far, nulls dropped
    seen: set[str] = field(default_factory=set)  # ids met in this search

    @property
    def query(self) -> str:
        return self.cfg.query_for(self.label)

    def complete(self) -> bool:
        """Whether the store already holds the class's sounds (then it is not searched)."""
        return len(rules.selected(self.store.records(), self.label, self.cfg)) >= (
            self.cfg.max_per_class
        )

    def screen(self, result: dict[str, Any]) -> Candidate | Skip:
        """Number the next result and check it against the rules and this search."""
        self.rank += 1
        reason = rules.skip_reason(result, self.cfg)
        sid = rules.sound_id(result)
        if reason is None and sid in self.seen:
            reason = "repeated"  # the same sound twice in one search (paging shifted)
        if reason is not None or sid is None:
            return Skip(reason or "no_id")
        self.seen.add(sid)
        return Candidate(self.rank, sid, result)

    def admit(self, candidate: Candidate) -> Decision:
        """What to do with a screened result, given what the store holds now."""
        sid, rank = candidate.sid, candidate.rank
        stored = self.store.record(sid)
        if stored is not None:
            if stored.get("label") != self.label:
                return Skip("other_class")  # one file, one class: the first class that found it
            self.store.update(sid, {"query": self.query, "rank": rank})
            return Present(sid)
        refusal = self.store.refusal(sid)
        if refusal:
            return Skip(refusal)
        record = {**rules.sound_record(candidate.result, self.label, self.query), "rank": rank}
        url = str(record["preview_url"])
        return Fetch(sid, url, rules.preview_extension(url), record)

    def decide(self, result: dict[str, Any]) -> Decision:
        """:meth:`screen` and :meth:`admit` in one step."""
        screened = self.screen(result)
        return screened if isinstance(screened, Skip) else self.admit(screened)
