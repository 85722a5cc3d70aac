"""The listening page's figures in a producer's words.

Every measure becomes a sentence ("78 % of the new sounds are heard as their class"), a short
table cell, the raw figures beside their real-data floor (small print, for whoever tunes the
model) and a verdict, good, fair or poor, so that a bad result reads as bad and the page's
headline can say what is wrong without anyone reading the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from training.quality import RING_DB

GOOD, FAIR, POOR, NONE = "good", "fair", "poor", "none"
RANK = {NONE: 0, GOOD: 1, FAIR: 2, POOR: 3}
SILENT_DB = -79.5  # quality.DECAY_FLOOR_DB: a tail this low is silence
COLUMNS = [
    ("heard", "Heard as its class"),
    ("distance", "Distance from real"),
    ("variety", "Variety"),
    ("tail", "Tail"),
    ("attack", "Attack"),
    ("brightness", "Brightness"),
    ("tone", "Stray tone"),
    ("copies", "Near-copies"),
    ("flaws", "Flaws"),
]
LABELS = dict(COLUMNS)
FLAWS = {  # quality.validity's flags, most common first
    "click": "start with a click",
    "dc": "sit off centre (DC offset)",
    "clipped": "clip",
    "silent": "are silent",
    "length": "have the wrong length",
    "nan": "hold broken samples (NaN)",
}


@dataclass(frozen=True)
class Line:
    """One measure: ``text`` for the page, ``cell`` for the table, ``detail`` the raw figures,
    ``problem`` the headline's phrase when the verdict is poor."""

    key: str
    verdict: str
    text: str
    cell: str
    detail: str = ""
    problem: str = ""
    score: float = 0.0  # how far off (larger: worse), to pick the worst class


def plural(cls: str | None) -> str:
    """'kicks', 'hihats'; 'drums' for the whole set."""
    if cls is None:
        return "drums"
    return cls + ("es" if cls.endswith(("s", "sh", "ch", "x")) else "s")


def pct(x: float) -> str:
    return f"{round(100 * x)}\u00a0%"


def stretch_words(used: dict[str, Any]) -> str:
    """The sampling settings' length stretch, as a clause ("" when off)."""
    k, below = used.get("length_stretch", 1), used.get("length_below", 0)
    return f", lengths told {k}x at noise levels up to {below}" if k != 1 and below else ""


def times(x: float) -> str:
    return f"{x:.2g}\u00d7"


def hz(x: float) -> str:
    return f"{x / 1000:.1f}\u00a0kHz" if x >= 1000 else f"{x:.0f}\u00a0Hz"


def db(x: float) -> str:
    return f"{abs(x):.0f}\u00a0dB" if abs(x) >= 10 else f"{abs(x):.1f}\u00a0dB"


def _ok(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _grade(value: float, good: float, fair: float) -> str:
    """GOOD up to ``good``, FAIR up to ``fair``, POOR beyond (a distance from the ideal)."""
    return GOOD if value <= good else FAIR if value <= fair else POOR


def heard(f: dict[str, Any], cls: str | None) -> Line:
    acc, ceil = f.get("accuracy"), f.get("ceiling")
    if not _ok(acc):
        return Line("heard", NONE, "No sounds to judge", "\u2013")
    who = "the new sounds" if cls is None else f"the new {plural(cls)}"
    what = "their class" if cls is None else plural(cls)
    real = "real sounds" if cls is None else f"real {plural(cls)}"
    problem = f"only {pct(acc)} of {who} heard as {what}"
    if not _ok(ceil) or ceil <= 0:
        text = f"{pct(acc)} of {who} are heard as {what} (no unseen {real} to check the judge)"
        return Line("heard", _grade(1 - acc, 0.1, 0.3), text, pct(acc), "", problem, 1 - acc)
    text = (
        f"{pct(acc)} of {who} are heard as {what}; the judge gets {pct(ceil)} of {real} "
        "it never saw right"
    )
    if ceil < 0.6:
        text += f" (it is unsure of {real} itself: read this loosely)"
    cell = f"{pct(acc)} (real {pct(ceil)})"
    return Line("heard", _grade(1 - acc / ceil, 0.1, 0.3), text, cell, "", problem, 1 - acc / ceil)


def distance(f: dict[str, Any], cls: str | None) -> Line:
    r = f.get("frechet_ratio")
    if not _ok(r):
        return Line("distance", NONE, "Too few sounds to tell how far from real they are", "\u2013")
    who, drums = ("The new sounds" if cls is None else f"The new {plural(cls)}"), plural(cls)
    text = (
        f"{who} are {times(r)} as far from real {drums} as two halves of the real set are from "
        f"each other (1\u00d7 = as close as real {drums})"
    )
    verdict = _grade(r, 1.5, 3.0)
    if verdict == POOR:
        text += ": clearly apart from real ones"
    fi, ff = f.get("frechet_interval") or [r, r], f.get("frechet_floor_interval") or [0, 0]
    detail = (
        f"Fr\u00e9chet distance {f['frechet']:.3g} (5\u201395 %: {fi[0]:.3g}\u2013{fi[1]:.3g}), "
        f"two real halves {f['frechet_floor']:.3g} ({ff[0]:.3g}\u2013{ff[1]:.3g}); kernel "
        f"distance {f.get('kernel', float('nan')):.3g}, real halves "
        f"{f.get('kernel_floor', float('nan')):.3g}; {f.get('half_size', '?')} sounds a side"
    )
    problem = f"{'far' if cls is None else plural(cls) + ' far'} from real {drums} ({times(r)})"
    return Line("distance", verdict, text, times(r), detail, problem, r)


def variety(f: dict[str, Any], cls: str | None) -> Line:
    r = f.get("diversity_ratio")
    if not _ok(r):
        return Line("variety", NONE, "Too few sounds to measure their variety", "\u2013")
    drums = plural(cls)
    text = f"They vary {times(r)} as much as real {drums} (1\u00d7 = as varied as real ones)"
    if r < 0.8:
        text += ": more alike than real ones"
    elif r > 1.25:
        text += ": more scattered than real ones, which can mean noise rather than variety"
    verdict = GOOD if 0.8 <= r <= 1.25 else FAIR if 0.5 <= r <= 1.6 else POOR
    detail = ""
    if _ok(f.get("diversity")) and _ok(f.get("diversity_real")):
        detail = (
            f"mean distance between two new sounds {f['diversity']:.3g}, "
            f"between two real ones {f['diversity_real']:.3g}"
        )
    if _ok(f.get("diversity_seen")):
        detail += (
            f"{'; ' if detail else ''}the originals the judge was fitted on read "
            f"{times(f['diversity_seen'])} (what a model that gave them back exactly would read)"
        )
    word = "alike" if r < 1 else "scattered"
    problem = f"{drums} too {word} ({times(r)} the variety of real ones)"
    return Line("variety", verdict, text, times(r), detail, problem, abs(math.log(max(r, 1e-9))))


def fall(x: float) -> str:
    """How a tail's level moves by the 0.5-1 s mark: 'fall by 24 dB', 'fade to silence'."""
    if x <= SILENT_DB:
        return "fade to silence"
    return f"{'fall' if x <= 0 else 'grow'} by {db(x)}"


def tail(f: dict[str, Any], cls: str) -> Line:
    """The level left at 0.5-1 s and how long they ring, each against the real medians: a
    closed hat that dies in half the time reads the same silent tail as the real ones."""
    g, r = f.get("decay_db"), f.get("decay_db_real")
    if not (_ok(g) and _ok(r)):
        return Line("tail", NONE, "No tail to measure", "\u2013")
    p = plural(cls)
    text = f"Their tails {fall(g)} in the first second; real {p} {fall(r)}"
    cell = f"{signed_db(g)} vs {signed_db(r)}"
    problem = f"{p}' tails {'ring on' if g > r else 'die too fast'}"
    detail = "level at 0.5\u20131 s against the first 100 ms"
    verdict, score = _grade(abs(g - r), 6.0, 12.0), abs(g - r) / 6.0
    ring, ring_r = f.get("ring_ms"), f.get("ring_ms_real")
    if _ok(ring) and _ok(ring_r) and ring > 0 and ring_r > 0:
        text += f"; they ring for {ring:.0f} ms, real {p} for {ring_r:.0f} ms"
        cell += f", {ring:.0f} vs {ring_r:.0f}\u00a0ms"
        detail += f"; time until {RING_DB:.0f} dB under the loudest 5 ms"
        off = abs(math.log(ring / ring_r))
        ring_verdict = _grade(off, math.log(1.5), math.log(2.0))
        if RANK[ring_verdict] > RANK[verdict]:
            verdict, score = ring_verdict, off / math.log(1.5)
            problem = f"{p} {'ring too long' if ring > ring_r else 'end too soon'}"
    return Line("tail", verdict, text, cell, detail + "; medians", problem, score)


def signed_db(x: float) -> str:
    """'\u221224 dB', '+0.4 dB' (a level change, sign shown)."""
    text = f"{x:+.0f}" if abs(x) >= 10 else f"{x:+.1f}"
    return text.replace("-", "\u2212") + "\u00a0dB"


def attack(f: dict[str, Any], cls: str) -> Line:
    a, r = f.get("attack_ms"), f.get("attack_ms_real")
    if not (_ok(a) and _ok(r)):
        return Line("attack", NONE, "No attack to measure", "\u2013")
    p = plural(cls)
    text = f"They reach full level {a:.0f} ms after they start; real {p} in {r:.0f} ms"
    gap = abs(a - r)
    verdict = GOOD if gap <= max(10.0, 0.5 * r) else FAIR if gap <= max(30.0, 2 * r) else POOR
    problem = f"{p}' attacks too {'soft' if a > r else 'sudden'}"
    cell = f"{a:.0f} vs {r:.0f}\u00a0ms"
    detail = "time from the onset to the loudest 5 ms, medians"
    return Line("attack", verdict, text, cell, detail, problem, gap / max(r, 10.0))


def brightness(f: dict[str, Any], cls: str) -> Line:
    c, r = f.get("centroid_hz"), f.get("centroid_hz_real")
    if not (_ok(c) and _ok(r)) or c <= 0 or r <= 0:
        return Line("brightness", NONE, "No brightness to measure", "\u2013")
    p = plural(cls)
    octaves = math.log2(c / r)
    text = f"Their sound centres on {hz(c)}; real {p} on {hz(r)}"
    if abs(octaves) >= 0.5:
        text += f" ({'brighter' if octaves > 0 else 'duller'} than real)"
    problem = f"{p} too {'bright' if octaves > 0 else 'dull'}"
    cell = f"{hz(c)} vs {hz(r)}"
    detail = "spectral centroid of the first 100 ms, medians"
    return Line(
        "brightness", _grade(abs(octaves), 0.5, 1.0), text, cell, detail, problem, abs(octaves)
    )


def tone(f: dict[str, Any], cls: str) -> Line:
    d, floor, at = f.get("tone_db"), f.get("tone_floor_db"), f.get("tone_hz")
    if not (_ok(d) and _ok(floor) and _ok(at)):
        return Line("tone", NONE, "No tone to measure", "\u2013")
    p, over = plural(cls), d - floor
    rings = over > 3.0
    text = (
        f"A tone at {hz(at)} rings through them, {db(d)} above real {p} there"
        if rings
        else f"No pitch rings through them that real {p} lack"
    )
    detail = (
        f"largest excess of their median spectral prominence (first 300 ms) over real {p}': "
        f"{d:.1f} dB at {at:.0f} Hz; between two real halves {floor:.1f} dB"
    )
    problem = f"{p} carry a tone at {hz(at)}"
    cell = f"{db(d)} at {hz(at)}" if rings else "none"
    return Line("tone", _grade(over, 3.0, 10.0), text, cell, detail, problem, over)


def copy_limits(thresholds: dict[str, Any], cls: str | None) -> dict[str, float] | None:
    """The near-copy thresholds ({"ncc", "mel"}) that apply to ``cls``: one set for every
    class, or one per class."""
    if "ncc" in thresholds and "mel" in thresholds:
        return thresholds
    limits = thresholds.get(cls) if cls is not None else None
    return limits if isinstance(limits, dict) and "ncc" in limits and "mel" in limits else None


def copies(f: dict[str, Any], cls: str | None, thresholds: dict[str, Any]) -> Line:
    n, k = int(f.get("n", 0)), int(f.get("near_copies", 0))
    if k == 0:
        text = f"None of the {n} is a near-copy of a training sound"
    else:
        text = f"{k} of {n} are near-copies of a training sound: the model is repeating its data"
    detail = ""
    limits = copy_limits(thresholds, cls)
    if _ok(f.get("closest_ncc")) and _ok(f.get("closest_mel")) and limits:
        detail = (
            f"closest waveform match {f['closest_ncc']:.3f} (copy above {limits['ncc']:.3f}), "
            f"closest spectrum match {f['closest_mel']:.3f} (above {limits['mel']:.3f})"
        )
    verdict = GOOD if k == 0 else _grade(k / max(n, 1), 0.0, 0.1)
    return Line("copies", verdict, text, f"{k} of {n}", detail, f"{k} of {n} copy a training sound")


def flaws(sounds: list[dict[str, Any]]) -> Line:
    n = len(sounds)
    bad = [s for s in sounds if s.get("invalid")]
    if not bad:
        text = f"None of the {n} has a flaw (a click at the start, DC offset, clipping, silence)"
        return Line("flaws", GOOD if n else NONE, text, f"0 of {n}")
    counts = {flag: sum(flag in s["invalid"] for s in sounds) for flag in FLAWS}
    parts = [f"{c} {FLAWS[flag]}" for flag, c in counts.items() if c]
    text = f"{len(bad)} of {n} need fixing before use: " + "; ".join(parts)
    top = max(counts, key=lambda flag: counts[flag])
    verdict = _grade(len(bad) / n, 0.0, 0.1)
    return Line(
        "flaws", verdict, text, f"{len(bad)} of {n}", "", f"{counts[top]} of {n} {FLAWS[top]}"
    )


def class_lines(
    f: dict[str, Any], cls: str, sounds: list[dict[str, Any]], thresholds: dict[str, Any]
) -> list[Line]:
    """Every measure of one class, in COLUMNS order."""
    return [
        heard(f, cls),
        distance(f, cls),
        variety(f, cls),
        tail(f, cls),
        attack(f, cls),
        brightness(f, cls),
        tone(f, cls),
        copies(f, cls, thresholds),
        flaws(sounds),
    ]


def overall_lines(
    figures: dict[str, Any], per_class: dict[str, list[Line]], thresholds: dict[str, Any]
) -> list[Line]:
    """The whole set's measures; the sound-shape ones (tail, attack, brightness, tone) have
    no overall figure, so they say how many classes are off and quote the worst."""
    o = figures["overall"]
    lines = [heard(o, None), distance(o, None), variety(o, None)]
    for i, (key, _) in enumerate(COLUMNS[3:7], start=3):
        of_class = {cls: ls[i] for cls, ls in per_class.items()}
        lines.append(_worst(key, of_class))
    lines += [copies(o, None, thresholds), flaws(figures["sounds"])]
    return lines


NOUNS = {"tail": "tails", "attack": "attacks", "brightness": "brightness", "tone": "stray tones"}


def _worst(key: str, of_class: dict[str, Line]) -> Line:
    graded = {c: line for c, line in of_class.items() if line.verdict != NONE}
    if not graded:
        return Line(key, NONE, "Nothing to measure", "\u2013")
    off = [c for c, line in graded.items() if line.verdict != GOOD]
    m, noun = len(graded), NOUNS[key]
    if not off:
        return Line(
            key, GOOD, f"{noun.capitalize()}: every class is close to its real sounds", "all close"
        )
    worst = max(off, key=lambda c: (RANK[graded[c].verdict], graded[c].score))
    line = graded[worst]
    text = f"{noun.capitalize()}: {len(off)} of {m} classes are off; furthest, {plural(worst)}. "
    text += line.text
    problem = line.problem if len(off) == 1 else f"{noun} off in {len(off)} of {m} classes"
    return Line(key, line.verdict, text, f"{len(off)} of {m} off", "", problem, line.score)


def headline(lines: list[Line]) -> tuple[str, str]:
    """The page's one-sentence verdict and its grade."""
    poor = [line.problem for line in lines if line.verdict == POOR and line.problem]
    fair = [line for line in lines if line.verdict == FAIR]
    if poor:
        return POOR, "Not there yet: " + "; ".join(poor) + "."
    if fair:
        return FAIR, "Close, with rough edges: " + ", ".join(
            k.key for k in fair
        ) + " could be better."
    return GOOD, "Close to real drums on every measure on this page."
