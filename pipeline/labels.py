"""Which class a file's names say: words from folders, file names and tags against
``label.keywords``, never a guess.

The class comes from the first of these that names exactly one class: the folder the file sat
in (nearest folder first), the file name, then the source's metadata (search query, tags). A
row no rule names is refused as ``unlabeled``; one that two classes name equally as
``ambiguous``. Pure text in, a class out: the ``label`` stage (pipeline.stages.label) applies
it to every row.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import Reject
from core.params import Label

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_ALPHA_DIGIT = re.compile(r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")


def tokenize(text: str) -> list[str]:
    """Lower-case words of a name: split at punctuation, camelCase and letter/digit boundaries.

    ``"BD_808Kick-01.wav"`` gives ``["bd", "808", "kick", "01", "wav"]``.
    """
    text = _ALPHA_DIGIT.sub(" ", _CAMEL.sub(" ", text))
    return [t for t in re.split(r"[^0-9A-Za-z]+", text.lower()) if t]


def _matches(tokens: list[str], keyword: str) -> set[tuple[int, int]]:
    """The token spans where a keyword (one or more words) occurs; plurals count."""
    words = tokenize(keyword)
    if not words:
        return set()
    joined = "".join(words)

    def same(token: str, word: str) -> bool:
        return token in (word, word + "s", word + "es")

    spans = {(i, i + 1) for i, t in enumerate(tokens) if len(words) > 1 and same(t, joined)}
    for i in range(len(tokens) - len(words) + 1):
        if all(same(tokens[i + j], w) for j, w in enumerate(words)):
            spans.add((i, i + len(words)))
    return spans


def _mentions(spans: set[tuple[int, int]]) -> int:
    """Separate mentions among matched spans: overlapping matches count once.

    "closed hat" also matches "hat", "hihat" matches both "hihat" and "hi hat", and a class name
    may also sit in its own keyword list; each is still one word naming the class.
    """
    n, end = 0, 0
    for start, stop in sorted(spans):
        if start >= end:
            n += 1
            end = stop
        else:
            end = max(end, stop)
    return n


def score(text: str, keywords: dict[str, list[str]]) -> dict[str, int]:
    """Mentions of each class in one piece of text."""
    tokens = tokenize(text)
    hits = {
        cls: _mentions(set().union(*(_matches(tokens, kw) for kw in [cls, *words])))
        for cls, words in keywords.items()
    }
    return {cls: n for cls, n in hits.items() if n}


def decide(hits: dict[str, int], where: str) -> str | None:
    """The class with the most hits; a tie at the top is ambiguous, no hits is undecided."""
    if not hits:
        return None
    best = max(hits.values())
    top = sorted(cls for cls, n in hits.items() if n == best)
    if len(top) > 1:
        raise Reject("ambiguous", f"{where} names {' and '.join(top)} equally")
    return top[0]


def classify(row: dict[str, str], keywords: dict[str, list[str]]) -> str:
    """Folder (nearest first), then file name, then query and tags."""
    folders = [f for f in row.get("folder", "").replace("\\", "/").split("/") if f]
    for folder in reversed(folders):
        label = decide(score(folder, keywords), f"folder {folder!r}")
        if label:
            return label
    name = row.get("name", "")
    label = decide(score(Path(name).stem if "." in name else name, keywords), f"name {name!r}")
    if label:
        return label
    meta = " ".join(row.get(k, "") for k in ("query", "tags"))
    label = decide(score(meta, keywords), "query and tags")
    if label:
        return label
    raise Reject("unlabeled", f"no class word in folder, name {name!r} or tags")


def class_keywords(label: Label) -> dict[str, list[str]]:
    """Keywords for each configured class (a class with no list matches its own name)."""
    return {c: list(label.keywords.get(c, [])) for c in label.classes}
