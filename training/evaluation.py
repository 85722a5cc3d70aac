"""Judging generated one-shots against the real ones: every figure beside its real-data floor.

The reference is the training set's originals (variants are near-copies of them and would
flatter every comparison). A share of them, whole packs where the pack is known, is held out:
the judge (training.judge) is fitted on the rest, and its accuracy on the held-out sounds is
the ceiling the generated sounds' accuracy is read against. Distances are measured between the
generated set and half of the held-out set, and their floor is the distance between the two
halves: equal sizes on both sides, so small-sample bias is the same (``rounds`` random halves,
5-95 % interval over them). Near-copies are judged against every original, with thresholds
from how similar real sounds are to their closest other real sound.

No files here: :class:`RealSet` is built by the caller from the manifest (training.evaluate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from training import quality as q
from training.judge import Judge, log_mel, span_means

COPY_SECONDS = 0.25  # compared from the onset on: where a hit's identity is
COPY_DECIMATE = 4  # the waveforms are compared at a quarter of the rate (cost)
COPY_LAG_MS = 10.0  # lags tried either way after onset alignment
COPY_QUERIES = 300  # real sounds whose closest other real sound sets the threshold (cost)


@dataclass
class RealSet:
    """The originals as the judge sees them: mono clips, their class, their pack (``group``),
    their path in the manifest's folder, and whether the classifier never sees them."""

    classes: list[str]
    sample_rate: int
    clips: list[np.ndarray]
    labels: list[str]
    groups: list[str]
    paths: list[str]
    held: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def group_of(row: dict[str, str]) -> str:
    """The pack a manifest row's sound came from, so a pack never straddles the split: the
    folder inside a local library, the uploader on Freesound, the page of a crawled archive;
    the original itself where nothing is known (the demo kit)."""
    source = row.get("source", "")
    sid = row.get("source_id", "")
    if source == "local" and "/" in sid:
        return "local:" + sid.rsplit("/", 1)[0]
    if source == "freesound" and row.get("author"):
        return "freesound:" + row["author"]
    if source not in ("local", "freesound", "demo") and row.get("url"):
        return f"{source}:{row['url']}"
    return f"{source}:{sid}"


def split(labels: list[str], groups: list[str], share: float, seed: int) -> np.ndarray:
    """Which sounds to hold out: about ``share`` of each class, whole groups at a time, with
    at least two held out (one for a class of three) and two left per class; a class whose
    groups cannot give that is split sound by sound."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), bool)
    for cls in sorted(set(labels)):
        idx = [i for i, label in enumerate(labels) if label == cls]
        least = 1 if len(idx) < 4 else 2
        want = min(max(least, round(share * len(idx))), len(idx) - 2)
        units = sorted({groups[i] for i in idx})
        members = {g: [i for i in idx if groups[i] == g] for g in units}
        order = [units[k] for k in rng.permutation(len(units))]
        chosen: list[int] = []
        for g in order:
            if len(chosen) >= want:
                break
            chosen += members[g]
        if not (least <= len(chosen) <= len(idx) - 2):  # one pack per class, or too few sounds
            chosen = [idx[k] for k in rng.permutation(len(idx))[:want]]
        held[chosen] = True
    return held


@dataclass
class Reference:
    """What is computed from the real set once and judges every generated set."""

    real: RealSet
    judge: Judge
    emb: np.ndarray  # embeddings of every original
    held_accuracy: dict[str, float]  # per class and "overall"
    confusion: list[list[int]]  # held-out, rows: true class, columns: predicted
    bandwidth: float
    envelopes: list[dict[str, float]]
    tones: np.ndarray  # [n, bins] each original's spectral prominence (quality.prominence)
    copy_bank: tuple[np.ndarray, np.ndarray, int]
    mel_bank: np.ndarray
    thresholds: dict[str, dict[str, float]]  # per class: {"ncc", "mel"}


def prepare(real: RealSet, seed: int, copy_percentile: float) -> Reference:
    """Fit the judge on the originals it may see, score it on the held-out ones, and measure
    what every later comparison needs (embeddings, envelopes, near-copy thresholds)."""
    sr = real.sample_rate
    mels = [log_mel(x, sr) for x in real.clips]
    feats = np.stack([span_means(m, sr) for m in mels])
    train = ~real.held
    seen = [real.labels[i] for i in np.flatnonzero(train)]
    judge = Judge.fit(feats[train], seen, real.classes, seed)
    emb = judge.embed(feats)
    truth = np.array([real.classes.index(label) for label in real.labels])
    pred = judge.proba(feats).argmax(axis=1)
    k = len(real.classes)
    confusion = np.zeros((k, k), int)
    for t, p in zip(truth[real.held], pred[real.held], strict=True):
        confusion[t, p] += 1
    held_accuracy = {
        c: _share(pred[real.held & (truth == i)] == i) for i, c in enumerate(real.classes)
    }
    held_accuracy["overall"] = _share(pred[real.held] == truth[real.held])
    copy_bank = q.spectra(np.stack([_copy_wave(x, sr) for x in real.clips]))
    mel_bank = np.stack([_copy_mel(m) for m in mels])
    return Reference(
        real=real,
        judge=judge,
        emb=emb,
        held_accuracy=held_accuracy,
        confusion=confusion.tolist(),
        bandwidth=q.median_bandwidth(emb[real.held]),
        envelopes=[q.envelope(x, sr) for x in real.clips],
        tones=np.stack([q.prominence(x, sr) for x in real.clips]),
        copy_bank=copy_bank,
        mel_bank=mel_bank,
        thresholds=_copy_thresholds(copy_bank, mel_bank, real, copy_percentile, seed),
    )


def _share(hits: np.ndarray) -> float:
    return float(hits.mean()) if hits.size else float("nan")


# ----------------------------------------------------------------------------- near-copies


def _copy_wave(x: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import resample_poly

    y = resample_poly(q.aligned(x, round(COPY_SECONDS * sr)), 1, COPY_DECIMATE)
    return y.astype(np.float64)


def _copy_mel(mel: np.ndarray) -> np.ndarray:
    """A :func:`log_mel` relative to its own peak (level does not count)."""
    return np.maximum(mel - mel.max(), -80.0).ravel()


def _max_lag(sr: int) -> int:
    return round(COPY_LAG_MS * sr / 1000 / COPY_DECIMATE)


def closest(
    ref: Reference, x: np.ndarray, sr: int, mel: np.ndarray
) -> tuple[float, float, int, bool]:
    """The highest waveform correlation and log-mel similarity of ``x`` to any original, the
    index of the original most like it (of those it copies, if any), and whether ``x`` is a
    near-copy: closer to some training sound than real sounds of that sound's class come to
    each other. Each original is held to its own class's line: a hat that correlates 0.29
    with a kick (whose line is 0.96) while most like a clap overall (line 0.23) copies
    nothing. ``mel``: its :func:`log_mel`."""
    ncc = q.max_ncc(_copy_wave(x, sr), ref.copy_bank, _max_lag(sr))
    mel = q.cosine_rows(_copy_mel(mel), ref.mel_bank)
    lines = [ref.thresholds[label] for label in ref.real.labels]
    over = (ncc > np.array([t["ncc"] for t in lines])) | (mel > np.array([t["mel"] for t in lines]))
    best = int(np.argmax(np.where(over, ncc + mel, -np.inf) if over.any() else ncc + mel))
    return float(ncc.max()), float(mel.max()), best, bool(over.any())


def _copy_thresholds(
    bank: tuple[np.ndarray, np.ndarray, int],
    mel_bank: np.ndarray,
    real: RealSet,
    percentile: float,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Per class, how close real sounds come to their closest other real sound: a generated
    sound closer to a training sound than that is a near-copy.

    The percentile is read off a normal fitted to the Fisher z (atanh) of those similarities,
    and never lies below the closest pair actually seen: with a few dozen sounds per class the
    sample's 99.9th percentile is just its maximum, which a generator as good as the data
    would pass by chance once in every few dozen sounds. Classes differ (synthesized kicks
    resemble each other far more than claps do), so each has its own threshold.
    """
    from scipy.stats import norm

    fb, norms, size = bank
    n = len(norms)
    rng = np.random.default_rng(seed)
    lag = _max_lag(real.sample_rate)
    out: dict[str, dict[str, float]] = {}
    for cls in real.classes:
        idx = [i for i, label in enumerate(real.labels) if label == cls]
        queries = [idx[k] for k in rng.permutation(len(idx))[:COPY_QUERIES]]
        ncc, mel = [], []
        for i in queries:
            a = np.fft.irfft(fb[i], size)[: _copy_len(real.sample_rate)]
            c = q.max_ncc(a, bank, lag)
            m = q.cosine_rows(mel_bank[i], mel_bank)
            c[i] = m[i] = -np.inf
            ncc.append(c.max())
            mel.append(m.max())
        z = norm.ppf(percentile / 100.0)
        out[cls] = {
            "ncc": _fisher(ncc, z) if n > 2 else 1.0,
            "mel": _fisher(mel, z) if n > 2 else 1.0,
        }
    return out


def _fisher(values: list[float], z: float) -> float:
    """tanh(mean + z * std) of the values' atanh (a percentile of similarities in [-1, 1]),
    or the largest value if that is higher."""
    f = np.arctanh(np.clip(values, -0.999999, 0.999999))
    fitted = float(np.tanh(f.mean() + z * f.std(ddof=1))) if len(f) > 1 else 1.0
    return max(fitted, float(np.max(values)))


def _copy_len(sr: int) -> int:
    return math.ceil(round(COPY_SECONDS * sr) / COPY_DECIMATE)
