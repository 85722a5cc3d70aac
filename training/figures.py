"""The figures of a generated set, per class and overall, each beside its real-data floor.

``judge_generated`` takes the reference (training.evaluation.prepare) and the generated clips
by class, and returns plain numbers (JSON-ready): class accuracy against the judge's held-out
ceiling; Fréchet and kernel distance against the distance between two real halves; diversity
against real diversity; envelope medians against the data's; a tone the generated sounds
share against two real halves; near-copies and invalid files counted. ``sounds`` holds each
generated sound's own verdict (for the listening page).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training import quality as q
from training.evaluation import Reference, closest
from training.judge import log_mel, span_means

LOW, HIGH = 5.0, 95.0  # percentiles of the intervals
# Where a stray tone is looked for: below 500 Hz kicks and snares ring at their own tunings,
# which cluster (a set tuned alike reads as a shared line), above 16 kHz is little but air.
TONE_BAND_HZ = (500.0, 16000.0)


def distances(
    gen: np.ndarray, real: np.ndarray, bandwidth: float, rounds: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Fréchet and kernel distance of generated embeddings to half the real ones, beside the
    distance between the two real halves (same sizes on both sides), over ``rounds`` splits."""
    m = len(real) // 2
    if m < 2 or len(gen) < 2:
        return {k: None for k in ("frechet", "frechet_floor", "frechet_ratio", "kernel")}
    fd_g, fd_f, kd_g, kd_f = [], [], [], []
    for _ in range(rounds):
        perm = rng.permutation(len(real))
        a, b = real[perm[:m]], real[perm[m : 2 * m]]
        g = gen[rng.choice(len(gen), min(m, len(gen)), replace=False)]
        fd_g.append(q.frechet_distance(g, b))
        fd_f.append(q.frechet_distance(a, b))
        kd_g.append(q.kernel_distance(g, b, bandwidth))
        kd_f.append(q.kernel_distance(a, b, bandwidth))
    floor = float(np.mean(fd_f))
    return {
        "frechet": float(np.mean(fd_g)),
        "frechet_interval": _interval(fd_g),
        "frechet_floor": floor,
        "frechet_floor_interval": _interval(fd_f),
        "frechet_ratio": float(np.mean(fd_g)) / floor if floor > 0 else None,
        "kernel": float(np.mean(kd_g)),
        "kernel_interval": _interval(kd_g),
        "kernel_floor": float(np.mean(kd_f)),
        "kernel_floor_interval": _interval(kd_f),
        "half_size": m,
    }


def _interval(values: list[float]) -> list[float]:
    lo, hi = np.percentile(values, [LOW, HIGH])
    return [float(lo), float(hi)]


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def judge_generated(
    ref: Reference,
    generated: dict[str, list[np.ndarray]],
    length: int,
    rounds: int,
    seed: int,
) -> dict[str, Any]:
    """Every figure, per class and overall, and each sound's verdict."""
    rng = np.random.default_rng(seed)
    tone_rng = np.random.default_rng([seed, 1])  # its own draws: the other figures stay put
    real, sr = ref.real, ref.real.sample_rate
    sounds: list[dict[str, Any]] = []
    classes: dict[str, dict[str, Any]] = {}
    all_emb, all_held = [], []
    for ci, cls in enumerate(real.classes):
        clips = generated.get(cls, [])
        if not clips:
            continue
        mels = [log_mel(x, sr) for x in clips]
        feats = np.stack([span_means(m, sr) for m in mels])
        emb = ref.judge.embed(feats)
        proba = ref.judge.proba(feats)
        mine = np.array([label == cls for label in real.labels])
        held = ref.emb[mine & real.held]
        verdicts = [_sound(ref, cls, i, x, mels[i], proba[i], length) for i, x in enumerate(clips)]
        sounds += verdicts
        classes[cls] = _class_figures(ref, cls, ci, verdicts, emb, held, mine, rounds, rng)
        tones = np.stack([q.prominence(x, sr) for x in clips])
        classes[cls].update(tone(tones, ref.tones[mine], sr, rounds, tone_rng))
        all_emb.append(emb)
        all_held.append(held)
    overall = _overall(ref, classes, sounds, np.concatenate(all_emb), np.concatenate(all_held))
    overall.update(distances(overall.pop("_emb"), overall.pop("_held"), ref.bandwidth, rounds, rng))
    return {"overall": overall, "classes": classes, "sounds": sounds}


def _sound(
    ref: Reference,
    cls: str,
    i: int,
    x: np.ndarray,
    mel_db: np.ndarray,
    proba: np.ndarray,
    length: int,
) -> dict[str, Any]:
    sr = ref.real.sample_rate
    ncc, mel, nearest, copy = closest(ref, x, sr, mel_db)
    pred = int(proba.argmax())
    return {
        "class": cls,
        "index": i,
        "predicted": ref.real.classes[pred],
        "confidence": float(proba[pred]),
        "class_probability": float(proba[ref.real.classes.index(cls)]),
        "copy_ncc": ncc,
        "copy_mel": mel,
        "near_copy": copy,
        "nearest": ref.real.paths[nearest],
        "envelope": q.envelope(x, sr),
        "invalid": [k for k, bad in q.validity(x, length).items() if bad],
    }


def _class_figures(
    ref: Reference,
    cls: str,
    ci: int,
    verdicts: list[dict[str, Any]],
    emb: np.ndarray,
    held: np.ndarray,
    mine: np.ndarray,
    rounds: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    real_env = [e for e, m in zip(ref.envelopes, mine, strict=True) if m]
    real_div = q.diversity(held)
    # The originals the judge was fitted on, scored as if generated: what a model that gave
    # them back exactly would read. On a small kit a held-out set of 3-6 sounds may be more or
    # less spread than the rest by chance (and the fit draws what it has seen a little
    # together), so even they read 0.5-1 there; on the demo kit about 1.
    seen_div = q.diversity(ref.emb[mine & ~ref.real.held])
    out: dict[str, Any] = {
        "n": len(verdicts),
        "accuracy": float(np.mean([v["predicted"] == cls for v in verdicts])),
        "ceiling": ref.held_accuracy[cls],
        "diversity": q.diversity(emb),
        "diversity_real": real_div,
        "diversity_ratio": q.diversity(emb) / real_div if real_div and real_div > 0 else None,
        "diversity_seen": seen_div / real_div if real_div > 0 and np.isfinite(seen_div) else None,
        "near_copies": int(sum(v["near_copy"] for v in verdicts)),
        "closest_ncc": max(v["copy_ncc"] for v in verdicts),
        "closest_mel": max(v["copy_mel"] for v in verdicts),
        "invalid": int(sum(bool(v["invalid"]) for v in verdicts)),
        "starts_with_click": int(sum("click" in v["invalid"] for v in verdicts)),
        "dc_offset": int(sum("dc" in v["invalid"] for v in verdicts)),
    }
    for key in ("attack_ms", "decay_db", "ring_ms", "centroid_hz"):
        out[key] = _median([v["envelope"][key] for v in verdicts])
        out[key + "_real"] = _median([e[key] for e in real_env])
    out.update(_decay(verdicts, [e["decay_db"] for e in real_env], rounds, rng))
    out.update(distances(emb, held, ref.bandwidth, rounds, rng))
    return out


def tone(
    gen: np.ndarray, real: np.ndarray, sr: int, rounds: int, rng: np.random.Generator
) -> dict[str, Any]:
    """The strongest narrow line the generated sounds share and the real ones lack.

    ``gen`` and ``real`` are [n, bins] spectral prominences (quality.prominence). Over a set,
    a drum's own modes blur (each hit rings at its own pitch, and the median across sounds
    ignores what a few have) while a line the generator draws at one frequency in every sound
    stays. ``tone_db``: the largest excess of the generated median over the real median in
    ``TONE_BAND_HZ``, with as many sounds on each side
    as there are generated ones (at most half the real ones), averaged over ``rounds`` draws;
    ``tone_hz`` where it is; ``tone_floor_db`` the same between two random real halves (how far
    chance alone reaches: a few dB)."""
    m = min(len(real) // 2, len(gen))
    if m < 1:
        return {}
    freqs = np.fft.rfftfreq(q.TONE_FFT, 1 / sr)
    band = (freqs >= TONE_BAND_HZ[0]) & (freqs <= min(TONE_BAND_HZ[1], 0.45 * sr))
    excess, floor = [], []
    for _ in range(rounds):
        perm = rng.permutation(len(real))
        a, b = np.median(real[perm[:m]], 0), np.median(real[perm[m : 2 * m]], 0)
        g = np.median(gen[rng.choice(len(gen), m, replace=False)], 0)
        excess.append(float((g - b)[band].max()))
        floor.append(float((a - b)[band].max()))
    where = (np.median(gen, 0) - np.median(real, 0))[band]
    return {
        "tone_db": float(np.mean(excess)),
        "tone_hz": float(freqs[band][int(where.argmax())]),
        "tone_floor_db": float(np.mean(floor)),
        "tone_floor_interval": _interval(floor),
    }


def _decay(
    verdicts: list[dict[str, Any]], real: list[float], rounds: int, rng: np.random.Generator
) -> dict[str, Any]:
    """How the generated sounds' decay compares with the data's. ``decay_gap_db``: generated
    median minus real median. Real decays spread widely (a closed and an open hat), so the
    median of a dozen sounds moves by several dB by chance: the floor is the gap between the
    medians of two random halves of the real sounds (as many sounds on each side as there are
    generated ones, at most half the real ones), 5-95 % over ``rounds`` splits. Each sound
    ``decays_like_data`` when its own decay lies in the real range (2.5-97.5 %, 3 dB either
    side)."""
    gen = [v["envelope"]["decay_db"] for v in verdicts]
    if not gen or len(real) < 4:
        return {}
    m = min(len(real) // 2, len(gen))
    floor, gaps = [], []
    for _ in range(rounds):
        perm = rng.permutation(len(real))
        a, b = np.take(real, perm[:m]), np.take(real, perm[m : 2 * m])
        floor.append(float(np.median(a) - np.median(b)))
        gaps.append(float(np.median(rng.choice(gen, m, replace=False)) - np.median(b)))
    lo, hi = np.percentile(real, [2.5, 97.5])
    for v in verdicts:
        v["decays_like_data"] = bool(lo - 3.0 <= v["envelope"]["decay_db"] <= hi + 3.0)
    return {
        "decay_gap_db": float(np.median(gen) - np.median(real)),
        "decay_gap_matched_db": float(np.mean(gaps)),
        "decay_gap_floor_interval": _interval(floor),
        "decays_like_data": int(sum(v["decays_like_data"] for v in verdicts)),
    }


def _overall(
    ref: Reference,
    classes: dict[str, dict[str, Any]],
    sounds: list[dict[str, Any]],
    emb: np.ndarray,
    held: np.ndarray,
) -> dict[str, Any]:
    ratios = [c["diversity_ratio"] for c in classes.values() if c["diversity_ratio"] is not None]
    seen = [c["diversity_seen"] for c in classes.values() if c["diversity_seen"] is not None]
    gaps = [abs(c["decay_gap_db"]) for c in classes.values() if c.get("decay_gap_db") is not None]
    toned = [c for c in classes if classes[c].get("tone_db") is not None]
    loudest = max(toned, key=lambda c: classes[c]["tone_db"], default=None)
    return {
        "n": len(sounds),
        "accuracy": float(np.mean([s["predicted"] == s["class"] for s in sounds])),
        "ceiling": ref.held_accuracy["overall"],
        "diversity_ratio": float(np.mean(ratios)) if ratios else None,
        "diversity_seen": float(np.mean(seen)) if seen else None,
        "decay_gap_db_max": max(gaps) if gaps else None,
        "tone_db_max": classes[loudest]["tone_db"] if loudest else None,
        "tone_class": loudest,
        "tone_hz": classes[loudest]["tone_hz"] if loudest else None,
        "tone_floor_db_max": max((classes[c]["tone_floor_db"] for c in toned), default=None),
        "near_copies": int(sum(s["near_copy"] for s in sounds)),
        "decays_like_data": int(sum(s.get("decays_like_data", False) for s in sounds)),
        "invalid": int(sum(bool(s["invalid"]) for s in sounds)),
        "starts_with_click": int(sum("click" in s["invalid"] for s in sounds)),
        "dc_offset": int(sum("dc" in s["invalid"] for s in sounds)),
        "_emb": emb,
        "_held": held,
    }


def layout_2d(points: np.ndarray, seed: int) -> np.ndarray:
    """2-D positions for the map of real and generated sounds (t-SNE of the embeddings; with
    fewer than 6 points, their first two principal components)."""
    from sklearn.decomposition import PCA

    n = len(points)
    if n < 6:
        pts = PCA(n_components=min(2, n), random_state=seed).fit_transform(points)
        return np.pad(pts, ((0, 0), (0, 2 - pts.shape[1])))
    from sklearn.manifold import TSNE

    tsne = TSNE(2, perplexity=min(30.0, (n - 1) / 3.0), init="pca", random_state=seed)
    return tsne.fit_transform(points)
