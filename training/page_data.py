"""The listening page's dataset part: the originals and their variants per class (players),
what was rejected on the way in and why, and the credits (data/ATTRIBUTION.md as HTML).

The players point at the dataset's own files (relative paths, no copies); they load nothing
until played (``preload="none"``), so a few thousand of them cost the page nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

Row = dict[str, str]
LICENSES = re.compile(
    r"creativecommons\.org/(?:licenses/([a-z-]+)|publicdomain/(zero|mark))/([\d.]+)"
)


@dataclass
class Original:
    """An original sound of the dataset with its variants (manifest rows), and the id of the
    <audio> element that plays it (the map plays it too)."""

    row: Row
    audio_id: str
    held: bool = False
    variants: list[tuple[Row, str]] = field(default_factory=list)  # (row, audio id)


def group(rows: list[Row]) -> dict[str, list[Original]]:
    """Originals per class, each with its variants (``<stem>__<variant>.wav`` beside
    ``<stem>.wav``), in manifest order; a variant whose original is missing stands alone."""
    out: dict[str, list[Original]] = {}
    by_stem: dict[str, Original] = {}
    for i, row in enumerate(rows):
        if row.get("variant", "original") == "original":
            o = Original(row, f"ds-{i}")
            out.setdefault(row.get("label", ""), []).append(o)
            by_stem[_stem(row["path"])] = o
    variants = sorted(
        (row.get("variant", ""), i, row)
        for i, row in enumerate(rows)
        if row.get("variant", "original") != "original"
    )
    for _, i, row in variants:  # by kind, so every row reads gain, phase, pitch, saturate
        o = by_stem.get(_stem(row["path"]).rsplit("__", 1)[0])
        if o is None:
            out.setdefault(row.get("label", ""), []).append(Original(row, f"ds-{i}"))
        else:
            o.variants.append((row, f"ds-{i}"))
    return out


def _stem(path: str) -> str:
    return path.rsplit(".", 1)[0]


def name_of(row: Row) -> str:
    """How a producer knows a sound: its original file name, else its source id."""
    name = row.get("name") or row.get("source_id") or row["path"].rsplit("/", 1)[-1]
    return (
        name.rsplit(".", 1)[0]
        if name.lower().endswith((".wav", ".flac", ".aif", ".aiff", ".mp3", ".ogg"))
        else name
    )


def license_name(url: str) -> str:
    """'CC0 1.0', 'CC BY 4.0' from a Creative Commons URL; the URL's host otherwise."""
    m = LICENSES.search(url or "")
    if m:
        kind = "0" if m.group(2) == "zero" else " PDM" if m.group(2) else " " + m.group(1).upper()
        return f"CC{kind} {m.group(3)}"
    host = re.sub(r"^[a-z]+://", "", url or "").split("/", 1)[0]
    return host or "no license given"


def variant_name(variant: str) -> str:
    """augment's variant names as words: 'pitch +1.50 st', 'gain -3.00 dB', 'polarity flipped'."""
    kind, _, amount = variant.partition("_")
    if variant == "phase_flip":
        return "polarity flipped"
    unit = {"pitch": " st", "gain": " dB"}.get(kind, "")
    return f"{kind} {amount}{unit}" if amount else variant.replace("_", " ")


def _player(audio_id: str, src: str, name: str) -> str:
    return (
        f'<audio id="{escape(audio_id)}" class="mini" controls preload="none" '
        f'src="{escape(src)}" data-name="{escape(name)}"></audio>'
    )


def _row(o: Original, href: Callable[[str], str]) -> str:
    """One original: its name, credit and player, its variants' players beside it."""
    name = name_of(o.row)
    held = '<span class="tag">judge never heard it</span>' if o.held else ""
    credit = f"{o.row.get('source', '')} \u00b7 {license_name(o.row.get('license', ''))}"
    variants = []
    for r, aid in o.variants:
        what = variant_name(r.get("variant", ""))
        player = _player(aid, href(r["path"]), f"{name}, {what}")
        variants.append(f"<label>{escape(what)}{player}</label>")
    attribution = escape(o.row.get("attribution", ""))
    original = _player(o.audio_id, href(o.row["path"]), f"{name} (training original)")
    return (
        f'<tr><td><b>{escape(name)}</b> {held}<br><span class="small muted" '
        f'title="{attribution}">{escape(credit)}</span></td><td>{original}</td>'
        f'<td class="variants">{"".join(variants)}</td></tr>'
    )


def dataset_section(groups: dict[str, list[Original]], href: Callable[[str], str]) -> str:
    """Per class, a collapsed table: each original with its credit and player, its variants
    beside it. ``href`` turns a manifest path into the page's relative link."""
    parts = []
    for cls, originals in groups.items():
        n_var = sum(len(o.variants) for o in originals)
        rows = "".join(_row(o, href) for o in originals)
        parts.append(
            f"<details><summary>{escape(cls)}: {len(originals)} originals, {n_var} variants"
            "</summary><table><thead><tr><th>Sound</th><th>Original</th><th>Variants</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></details>"
        )
    total = sum(len(v) for v in groups.values())
    return (
        '<section id="dataset"><h2>The training set</h2>'
        f"<p>{total} original sounds and their variants (pitch-shifted, saturated, "
        "polarity-flipped or gain-changed copies), the set the model learned from. Open a "
        "class to listen.</p>" + "".join(parts) + "</section>"
    )


def rejects_section(rows: list[Row]) -> str:
    """What the pipeline refused and why: counts by stage and reason, then every file."""
    if not rows:
        return (
            '<section id="rejects"><h2>Rejected files</h2>'
            "<p>No file was rejected on the way in.</p></section>"
        )
    counts = Counter((r.get("stage", ""), r.get("reason", "")) for r in rows)
    summary = "".join(
        f"<tr><td>{escape(stage)}</td><td>{escape(reason)}</td><td>{n}</td></tr>"
        for (stage, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    full = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(r.get(k, ''))}</td>"
            for k in ("path", "stage", "reason", "detail", "source")
        )
        + "</tr>"
        for r in rows
    )
    return (
        f'<section id="rejects"><h2>Rejected files</h2><p>{len(rows)} files were kept out of '
        "the training set:</p><table><thead><tr><th>Stage</th><th>Reason</th><th>Files</th>"
        f"</tr></thead><tbody>{summary}</tbody></table><details><summary>Every rejected file"
        '</summary><div class="scroll"><table><thead><tr><th>File</th><th>Stage</th><th>Reason'
        "</th><th>Detail</th><th>Source</th></tr></thead>"
        f"<tbody>{full}</tbody></table></div></details></section>"
    )


def _inline(text: str) -> str:
    """Markdown's inline marks on escaped text: `code`, **bold**, [text](url), bare URLs."""
    s = escape(text, quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r'<a href="\2" rel="noreferrer">\1</a>', s)
    return re.sub(
        r'(?<!href=")(?<!">)(https?://[^\s<)]+[^\s<).,;])',
        r'<a href="\1" rel="noreferrer">\1</a>',
        s,
    )


def markdown(text: str) -> str:
    """The few Markdown forms ATTRIBUTION.md uses: headings, lists, paragraphs."""
    out: list[str] = []
    in_list = False
    for raw in text.splitlines():
        line = raw.strip()
        item = re.match(r"^[-*] (.*)", line)
        if in_list and not item:
            out.append("</ul>")
            in_list = False
        if item:
            if not in_list:
                out.append('<ul class="credits">')
                in_list = True
            out.append(f"<li>{_inline(item.group(1))}</li>")
        elif m := re.match(r"^(#{1,6}) (.*)", line):
            level = min(len(m.group(1)) + 2, 6)  # under the page's own h2
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif line:
            out.append(f"<p>{_inline(line)}</p>")
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def credits_section(text: str | None, source: str) -> str:
    if text is None:
        return ""
    return (
        f'<section id="credits"><h2>Credits</h2><p class="small muted">From {escape(source)}.'
        f"</p><details open><summary>Every work in the training set</summary>{markdown(text)}"
        "</details></section>"
    )
