"""The listening page's HTML: the document with its inline style and script, the header, the
figures and the per-class sound cards. Strings in, strings out, every value escaped; nothing
here reads or writes a file (training.page does), so the bytes depend only on the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from training.page_words import COLUMNS, NONE, Line, pct, stretch_words

CSS = """
:root{--good:#1a7f37;--good-bg:#dafbe1;--fair:#9a6700;--fair-bg:#fff8c5;--poor:#cf222e;
--poor-bg:#ffebe9;--ink:#1f2328;--muted:#59636e;--line:#d0d7de;--accent:#0969da}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0}
main{max-width:1180px;margin:0 auto;padding:0 20px 60px}
h1{font-size:1.7em;margin:24px 0 4px}h2{margin:36px 0 8px;padding-top:8px}
section{scroll-margin-top:40px}
a{color:var(--accent)}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);
padding:8px 0;margin-bottom:12px}
nav a{margin-right:16px;text-decoration:none;white-space:nowrap}
.lede{color:var(--muted);max-width:60em}
.headline{font-size:1.12em;padding:10px 14px;border-left:5px solid;border-radius:4px}
.headline.good{background:var(--good-bg);border-color:var(--good)}
.headline.fair{background:var(--fair-bg);border-color:var(--fair)}
.headline.poor{background:var(--poor-bg);border-color:var(--poor)}
ul.lines{list-style:none;padding:0;margin:8px 0}
ul.lines li{margin:6px 0;position:relative;padding-left:4.4em}
.badge{position:absolute;left:0;top:.3em;width:3.6em;text-align:center;font-size:.72em;font-weight:700;
border-radius:10px;margin-right:8px;text-transform:uppercase;letter-spacing:.04em}
.badge.good{background:var(--good-bg);color:var(--good)}
.badge.fair{background:var(--fair-bg);color:var(--fair)}
.badge.poor{background:var(--poor-bg);color:var(--poor)}
.badge.none{background:#eee;color:var(--muted)}
.detail{display:block;color:var(--muted);font-size:.82em}
.muted{color:var(--muted)}.small{font-size:.85em}
table{border-collapse:collapse;margin:8px 0}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:.85em;color:var(--muted);font-weight:600}
td.good{background:var(--good-bg)}td.fair{background:var(--fair-bg)}td.poor{background:var(--poor-bg)}
.scroll{overflow-x:auto}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(560px,100%),1fr));gap:14px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px;display:grid;
grid-template-columns:1fr 1fr;gap:14px}
.card h3{margin:0 0 6px;font-size:1em}.card p{margin:4px 0}
.card>div+div{background:#f6f8fa;border-radius:6px;padding:0 8px}
.card img{display:block;width:256px;height:120px;border-radius:4px;background:#000}
audio{display:block;width:256px;height:36px;margin:6px 0}
audio.mini{display:inline-block;width:200px;height:32px;margin:2px 0}
.playing{outline:3px solid var(--accent);outline-offset:2px}
.tag{display:inline-block;font-size:.75em;border:1px solid var(--line);border-radius:9px;
padding:0 7px;color:var(--muted);margin:1px 2px;white-space:nowrap;font-weight:400}
.tag.ok{color:var(--good);border-color:var(--good)}.tag.bad{color:var(--poor);border-color:var(--poor)}
.map{display:block;border:1px solid var(--line);border-radius:8px;max-width:100%;height:auto}
.map .bg{fill:#fbfcfd}.pt{cursor:pointer}.pt.real{opacity:.55}
.pt.gen{stroke:#1f2328;stroke-width:1.3}
.pt:hover,.pt:focus{opacity:1;stroke:#000;stroke-width:2.5;outline:none}
.pt.playing{opacity:1;stroke:#000;stroke-width:2.5;outline:none}
#ring{fill:none;stroke:var(--accent);stroke-width:2.5;pointer-events:none}
.legend{margin:6px 0}.legend span{margin-right:16px;white-space:nowrap}
.legend svg{vertical-align:middle;margin-right:5px}
#now-playing{min-height:1.5em;margin:4px 0;font-weight:600;color:var(--accent)}
.charts{display:flex;flex-wrap:wrap;gap:10px}
.chart{border:1px solid var(--line);border-radius:8px;max-width:100%;height:auto}
.chart .title{font-weight:600;font-size:13px}.chart .grid{stroke:#eaeef2}
.chart .yt{text-anchor:end;dominant-baseline:middle;font-size:11px;fill:var(--muted)}
.chart .xt{text-anchor:middle;font-size:11px;fill:var(--muted)}
.chart .line{fill:none;stroke:var(--accent);stroke-width:1.6}
.chart .raw{fill:none;stroke:var(--accent);stroke-width:1;opacity:.3}
.chart .band{fill:var(--accent);opacity:.15}.chart .dot{fill:var(--accent)}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
.variants label{display:inline-block;margin-right:10px;font-size:.8em;color:var(--muted)}
.variants label audio{display:block}
.credits li{font-size:.9em}
footer{margin-top:40px;color:var(--muted);font-size:.85em}
"""

# One sound at a time; what plays is outlined, ringed on the map and named under it. A click
# (or Enter) on a map point plays that sound's own <audio> element from the start.
JS = """
(() => {
  const audios = Array.from(document.querySelectorAll("audio"));
  const now = document.getElementById("now-playing");
  const ring = document.getElementById("ring");
  const points = new Map();
  document.querySelectorAll(".pt").forEach((p) => points.set(p.dataset.audio, p));
  const clear = () => {
    document.querySelectorAll(".playing").forEach((e) => e.classList.remove("playing"));
    if (ring) ring.setAttribute("visibility", "hidden");
  };
  const mark = (a) => {
    clear();
    const box = a.closest(".card, tr");
    if (box) box.classList.add("playing");
    const p = points.get(a.id);
    if (p) {
      p.classList.add("playing");
      if (ring) {
        ring.setAttribute("cx", p.dataset.x);
        ring.setAttribute("cy", p.dataset.y);
        ring.setAttribute("visibility", "visible");
      }
    }
    if (now) now.textContent = "Playing: " + (a.dataset.name || a.id);
  };
  document.addEventListener("play", (e) => {
    const a = e.target;
    if (!(a instanceof HTMLMediaElement)) return;
    audios.forEach((o) => { if (o !== a && !o.paused) o.pause(); });
    mark(a);
  }, true);
  document.addEventListener("ended", (e) => {
    if (e.target instanceof HTMLMediaElement) clear();
  }, true);
  const play = (p) => {
    const a = document.getElementById(p.dataset.audio);
    if (!a) return;
    a.currentTime = 0;
    a.play().catch((err) => {
      // Another sound started before this one did (it pauses this one): nothing went wrong.
      if (err.name === "AbortError") return;
      if (now) now.textContent = "Cannot play " + (a.dataset.name || a.id) + ": " + err.message;
    });
  };
  points.forEach((p) => {
    p.addEventListener("click", () => play(p));
    p.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); play(p); }
    });
  });
})();
"""


@dataclass(frozen=True)
class Side:
    """One half of a sound card: a picture, a player and what to say about it."""

    title: str
    subtitle: str
    audio_id: str
    src: str
    thumb: str
    name: str  # what the page calls it when it plays
    tags: list[tuple[str, str]]  # (text, "ok" | "bad" | "")
    note: str


def document(title: str, sections: list[str]) -> str:
    """The whole page: inline style and script, nothing fetched from anywhere."""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
        + "\n".join(s for s in sections if s)
        + f"\n</main><script>{JS}</script></body></html>\n"
    )


def badge(verdict: str) -> str:
    return f'<span class="badge {verdict}">{"n/a" if verdict == NONE else verdict}</span>'


def lines_list(lines: list[Line]) -> str:
    """The measures as sentences, each with its verdict and its raw figures in small print."""
    items = []
    for line in lines:
        detail = f'<span class="detail">{escape(line.detail)}</span>' if line.detail else ""
        items.append(f"<li>{badge(line.verdict)}{escape(line.text)}{detail}</li>")
    return f'<ul class="lines">{"".join(items)}</ul>'


def header(title: str, used: dict[str, Any], n: int, verdict: str, headline: str) -> str:
    """The title, what was judged against what, and the one-sentence verdict."""
    sha = str(used.get("checkpoint_sha256", ""))[:12]
    lede = (
        f"{n} new sounds from {used.get('checkpoint', '?')}"
        + (f" ({sha})" if sha else "")
        + f", {used.get('n_per_class', '?')} per class, made the way training.sample makes them "
        f"(sampler {used.get('sampler', '?')}, {used.get('steps', '?')} steps, rho "
        f"{used.get('rho', 1)}, guidance {used.get('guidance', '?')}, "
        f"{used.get('grid_shifts', 1)} grid shifts at noise levels up to "
        f"{used.get('grid_below', 0)}{stretch_words(used)}), judged against the "
        f"{used.get('originals', '?')} original training sounds "
        f"({used.get('held_out', '?')} of them kept from the judge to check it)."
    )
    return (
        f'<header><h1>{escape(title)}</h1><p class="lede">{escape(lede)}</p>'
        f'<p class="headline {verdict}">{escape(headline)}</p></header>'
    )


def nav(links: list[tuple[str, str]]) -> str:
    return "<nav>" + "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in links) + "</nav>"


def figures_section(overall: list[Line], per_class: dict[str, list[Line]]) -> str:
    """The table (overall and per class, coloured by verdict) and the overall sentences."""
    head = "".join(f"<th>{escape(label)}</th>" for _, label in COLUMNS)
    rows = [("All sounds", overall)] + [(c, ls) for c, ls in per_class.items()]
    body = []
    for name, lines in rows:
        cells = "".join(
            f'<td class="{ln.verdict}" title="{escape(ln.text)}">{escape(ln.cell)}</td>'
            for ln in lines
        )
        body.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
    return (
        '<section id="figures"><h2>How close to real drums</h2>'
        f"{lines_list(overall)}"
        '<div class="scroll"><table class="figures">'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        '<p class="small muted">Every figure is read against real drums: the judge is a small '
        "classifier trained on the training set's originals and checked on originals it never "
        "heard; distances and variety are measured in its ears and compared with two halves of "
        "the real sounds. Hover a cell for its sentence.</p></section>"
    )


def judge_details(classes: list[str], confusion: list[list[int]], acc: dict[str, float]) -> str:
    """How the judge itself does on real sounds it never heard (rows: what they are)."""
    if not confusion:
        return ""
    head = "".join(f"<th>heard as {escape(c)}</th>" for c in classes)
    rows = "".join(
        f"<tr><th>{escape(c)}</th>"
        + "".join(f"<td>{v}</td>" for v in row)
        + f"<td>{pct(acc[c]) if c in acc and acc[c] == acc[c] else '–'}</td></tr>"
        for c, row in zip(classes, confusion, strict=False)
    )
    return (
        "<details><summary>How the judge does on real sounds it never heard</summary>"
        f"<table><thead><tr><th></th>{head}<th>right</th></tr></thead><tbody>{rows}</tbody>"
        "</table></details>"
    )


def _side(s: Side) -> str:
    tags = "".join(f'<span class="tag {k}">{escape(t)}</span>' for t, k in s.tags)
    picture = (
        f'<img src="{escape(s.thumb)}" width="256" height="120" loading="lazy" '
        f'alt="waveform and spectrogram of {escape(s.name)}">'
        if s.thumb
        else ""
    )
    return (
        f'<div><h3>{escape(s.title)}</h3><p class="small">{escape(s.subtitle)} {tags}</p>'
        f'{picture}<audio id="{escape(s.audio_id)}" controls preload="metadata" '
        f'src="{escape(s.src)}" data-name="{escape(s.name)}"></audio>'
        f'<p class="small muted">{escape(s.note)}</p></div>'
    )


def card(new: Side, nearest: Side) -> str:
    """A generated sound beside the training sound most like it, to A/B them."""
    return f'<article class="card">{_side(new)}{_side(nearest)}</article>'


def class_section(anchor: str, cls: str, lines: list[Line], cards: list[str]) -> str:
    return (
        f'<section id="{escape(anchor)}"><h2>{escape(cls.capitalize())}: the new sounds</h2>'
        f'{lines_list(lines)}<div class="cards">{"".join(cards)}</div></section>'
    )


def map_section(svg: str, legend: str) -> str:
    if not svg:
        return ""
    return (
        '<section id="map"><h2>Map of real and generated sounds</h2>'
        '<p class="small muted">Each point is a sound placed by how the judge hears it: close '
        "points sound alike (t-SNE of its embeddings). New sounds should sit among the real "
        "sounds of their class, spread as widely. Click a point to hear it.</p>"
        f'{legend}<p id="now-playing" aria-live="polite"></p>{svg}</section>'
    )


def curves_section(charts: list[str], source: str) -> str:
    if not charts:
        return ""
    return (
        '<section id="training"><h2>Training curves</h2>'
        f'<p class="small muted">From {escape(source)} (DVCLive), drawn here so they show '
        "offline.</p>"
        f'<div class="charts">{"".join(charts)}</div></section>'
    )
