"""The evaluation's figures where the answer is known (issue 12): real drums judged as if
generated score at the floor; noise, a sine and silence score badly; a training sound copied,
shifted by 5 ms or 6 dB quieter is a near-copy; a sound that decays like the data passes the
envelope check and a steady one does not.

The "real" set is the demo kit's synthesizer (pipeline.sources.demo) at 16 kHz, one second per
clip: 48 sounds per class are the dataset, 24 more per class from other seeds of the same
synthesizer stand in for a perfect generator. (A synthesizer repeats itself more than
recordings do: its hats can correlate with each other as no two recorded hats would, so the
floor test leaves near-copies to the copy test.)
"""

from __future__ import annotations

import numpy as np
import pytest
from drumkit import CLASSES, clip

from pipeline.audio import fix_length, trim
from training import quality as q
from training.evaluation import RealSet, group_of, prepare, split
from training.figures import judge_generated

SR = 16000
N = SR  # one second
REAL, FRESH = 48, 24  # per class: the dataset, and new sounds from the same synthesizer
ROUNDS = 30


def _clip(cls: str, i: int) -> np.ndarray:
    """A synthesized hit as the pipeline leaves it: 5 ms of pre-roll, one second."""
    x = trim(clip(cls, i, N, SR), SR, 40.0, 5.0, 1.0, 20.0, 10.0, 5.0, 30.0, 6.0)
    return fix_length(np.pad(x, ((0, 0), (round(0.005 * SR), 0))), N, SR, 20.0)[0]


@pytest.fixture(scope="module")
def ref():
    labels = [c for c in CLASSES for _ in range(REAL)]
    clips = [_clip(c, i) for c in CLASSES for i in range(REAL)]
    paths = [f"{c}/{c}_{i:03d}.wav" for c in CLASSES for i in range(REAL)]
    groups = [f"demo:{p}" for p in paths]
    real = RealSet(list(CLASSES), SR, clips, labels, groups, paths)
    real.held = split(labels, groups, 0.5, seed=0)
    return prepare(real, seed=0, copy_percentile=99.9)


def _judge(ref, generated: dict[str, list[np.ndarray]]) -> dict:
    return judge_generated(ref, generated, N, ROUNDS, seed=1)


def _inside(value: float, interval: list[float]) -> bool:
    return interval[0] <= value <= interval[1]


def _as_far_as_chance(value: float, interval: list[float]) -> bool:
    """Within chance either way: the two real halves are exchangeable, so the floor's gap is
    symmetric about 0, though 50 splits of sets whose hats mostly end in digital silence
    (-80 dB) can put one of its bounds right at 0."""
    return abs(value) <= max(abs(interval[0]), abs(interval[1]))


def test_real_sounds_judged_as_generated_score_at_the_floor(ref) -> None:
    fresh = {c: [_clip(c, REAL + i) for i in range(FRESH)] for c in CLASSES}
    figures = _judge(ref, fresh)
    o = figures["overall"]
    assert ref.held_accuracy["overall"] >= 0.9  # the judge itself: the ceiling
    assert o["accuracy"] >= o["ceiling"] - 0.1
    assert _inside(o["frechet"], o["frechet_floor_interval"]), o
    assert _inside(o["kernel"], o["kernel_floor_interval"]), o
    assert 0.7 <= o["diversity_ratio"] <= 1.4
    # The originals the judge was fitted on, scored as a generated set would be: on a kit this
    # size they read about 1 (a small kit's judge draws them together: under 1).
    labels, held, seen = np.array(ref.real.labels), ref.real.held, []
    for cls, f in figures["classes"].items():
        mine = labels == cls
        want = q.diversity(ref.emb[mine & ~held]) / q.diversity(ref.emb[mine & held])
        assert f["diversity_seen"] == pytest.approx(want) and 0.7 <= want <= 1.4, (cls, want)
        seen.append(want)
    assert o["diversity_seen"] == pytest.approx(np.mean(seen))
    assert o["invalid"] == 0
    assert o["decays_like_data"] >= 0.85 * o["n"]  # a 95 % range: a few lie outside by chance
    for cls, f in figures["classes"].items():  # the median decay as far off as chance puts it
        assert _as_far_as_chance(f["decay_gap_matched_db"], f["decay_gap_floor_interval"]), (
            cls,
            f,
        )


@pytest.mark.parametrize("kind", ["noise", "sine", "silence"])
def test_noise_a_sine_and_silence_score_badly(ref, kind: str) -> None:
    rng = np.random.default_rng(5)
    t = np.arange(N) / SR

    def make(i: int) -> np.ndarray:
        if kind == "noise":
            return (0.5 * rng.standard_normal(N)).astype(np.float32)
        if kind == "sine":
            return (0.5 * np.sin(2 * np.pi * (60 + 40 * i) * t)).astype(np.float32)
        return np.zeros(N, np.float32)

    figures = _judge(ref, {c: [make(i) for i in range(FRESH)] for c in CLASSES})
    o = figures["overall"]
    assert o["frechet_ratio"] > 3.0, o
    assert o["kernel"] > o["kernel_floor_interval"][1], o
    assert o["accuracy"] <= 0.5 or o["diversity_ratio"] < 0.3, o  # one class for all of it
    if kind == "silence":
        assert o["invalid"] == o["n"]
    else:  # steady: no decay at all, where real drums fall by tens of dB
        assert all(abs(f["decay_gap_db"]) > 6.0 for f in figures["classes"].values())


def test_a_copied_training_sound_is_a_near_copy_even_shifted_or_quieter(ref) -> None:
    original = ref.real.clips[ref.real.labels.index("snare") + 3]
    shifted = np.concatenate([np.zeros(round(0.005 * SR), np.float32), original])[:N]
    quieter = original * np.float32(10 ** (-6 / 20))
    fresh = [_clip("snare", REAL + i) for i in range(3)]
    figures = _judge(ref, {"snare": [original, shifted, quieter, *fresh]})
    flags = [s["near_copy"] for s in figures["sounds"]]
    assert flags == [True, True, True, False, False, False], [
        (round(s["copy_ncc"], 3), round(s["copy_mel"], 3)) for s in figures["sounds"]
    ]
    assert figures["classes"]["snare"]["near_copies"] == 3
    i = next(k for k, x in enumerate(ref.real.clips) if x is original)
    assert figures["sounds"][0]["nearest"] == ref.real.paths[i]


def test_each_training_sound_is_held_to_its_own_class_line(ref) -> None:
    """A new clap over a training kick at half its level correlates 0.73 with that kick, less
    than real kicks correlate with each other (0.97), and no more with any clap than claps do:
    it copies nothing. It is still most like a clap overall, and claps' line is low (0.65:
    noise bursts barely correlate); the kick's 0.73 judged against the clap's line made a
    false near-copy (as a hat correlating 0.29 with a kick did in the committed evaluation)."""
    kick = ref.real.clips[ref.real.labels.index("kick") + 2]
    clap = _clip("clap", REAL + 1)
    layered = clap + 0.5 * kick * (np.abs(clap).max() / np.abs(kick).max())
    sound = _judge(ref, {"clap": [layered]})["sounds"][0]
    lines = ref.thresholds
    assert lines["clap"]["ncc"] < sound["copy_ncc"] < lines["kick"]["ncc"], (sound, lines)
    assert sound["nearest"].startswith("clap/")  # most like a clap overall
    assert not sound["near_copy"]


def test_the_envelope_check_passes_a_decaying_hit_and_fails_a_steady_one(ref) -> None:
    rng = np.random.default_rng(2)
    t = np.arange(N) / SR
    hits = [_clip("snare", REAL + i) for i in range(FRESH)]  # decay like the data
    steady = [
        (0.3 * rng.standard_normal(N) * np.minimum(1.0, t / 0.005)).astype(np.float32)
        for _ in range(FRESH)
    ]
    good = _judge(ref, {"snare": hits})["classes"]["snare"]
    bad = _judge(ref, {"snare": steady})["classes"]["snare"]
    assert good["decay_db_real"] < -15.0  # real snares fall by tens of dB
    assert good["decays_like_data"] == FRESH and bad["decays_like_data"] == 0, (good, bad)
    assert _inside(good["decay_gap_matched_db"], good["decay_gap_floor_interval"]), good
    assert bad["decay_gap_db"] > 6.0, bad
    assert not _inside(bad["decay_gap_matched_db"], bad["decay_gap_floor_interval"]), bad
    assert not _as_far_as_chance(bad["decay_gap_matched_db"], bad["decay_gap_floor_interval"])


def test_ring_is_how_long_a_hit_stays_within_40_db_of_its_loudest() -> None:
    """Noise falling 20 dB per 100 ms after 100 ms of silence rings 200 ms; falling twice as
    fast, 100 ms, while both read the same silent tail at 0.5-1 s (the decay figure cannot
    tell them apart)."""
    rng = np.random.default_rng(0)
    t = np.arange(N) / SR
    rings = []
    for per_100ms in (20.0, 40.0):
        x = rng.standard_normal(N) * 10 ** (-per_100ms * t / 0.1 / 20)
        e = q.envelope(np.concatenate([np.zeros(SR // 10), x])[:N], SR)
        assert e["decay_db"] == q.DECAY_FLOOR_DB
        rings.append(e["ring_ms"])
    assert rings[0] == pytest.approx(200.0, abs=10.0) and rings[1] == pytest.approx(100, abs=10)


def test_validity_flags_what_is_unusable() -> None:
    ok = _clip("kick", 0)
    assert q.validity(ok, N) == dict.fromkeys(
        ("nan", "silent", "clipped", "dc", "click", "length"), False
    )
    bad = ok.copy()
    bad[5] = np.nan
    assert q.validity(bad, N)["nan"]
    assert q.validity(np.zeros(N, np.float32), N)["silent"]
    assert q.validity(np.clip(ok * 8, -1, 1), N)["clipped"]
    assert q.validity(ok + 0.05, N)["dc"]
    assert q.validity(np.concatenate([[0.5], ok[1:]]).astype(np.float32), N)["click"]
    assert q.validity(ok[:-10], N)["length"]


def test_held_out_split_keeps_packs_whole_and_every_class_on_both_sides() -> None:
    labels = ["kick"] * 8 + ["snare"] * 8
    groups = [f"pack{i // 2}" for i in range(16)]  # pairs of sounds share a pack
    held = split(labels, groups, 0.5, seed=3)
    for g in set(groups):
        members = {bool(held[i]) for i in range(16) if groups[i] == g}
        assert len(members) == 1, g  # a pack never straddles the split
    for cls in ("kick", "snare"):
        idx = [i for i, label in enumerate(labels) if label == cls]
        assert 2 <= held[idx].sum() <= len(idx) - 2
    # One pack per class (a folder per class): split sound by sound instead.
    held = split(labels, ["kicks"] * 8 + ["snares"] * 8, 0.25, seed=3)
    assert held[:8].sum() == 2 and held[8:].sum() == 2


def test_group_of_names_the_pack() -> None:
    assert group_of({"source": "local", "source_id": "808/Kicks/k1.wav"}) == "local:808/Kicks"
    assert group_of({"source": "freesound", "source_id": "12", "author": "drummer"}) == (
        "freesound:drummer"
    )
    assert group_of({"source": "samplepack", "source_id": "ab12", "url": "https://x/kit"}) == (
        "samplepack:https://x/kit"
    )
    assert group_of({"source": "demo", "source_id": "kick_003"}) == "demo:kick_003"


def test_distances_are_zero_on_average_for_one_distribution() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((200, 4)), rng.standard_normal((200, 4))
    assert abs(q.kernel_distance(a, b, q.median_bandwidth(a))) < 0.01
    assert q.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = b + 3.0
    assert q.frechet_distance(a, shifted) == pytest.approx(36.0, rel=0.15)  # |mu|^2 = 4 * 9
    assert q.kernel_distance(a, shifted, q.median_bandwidth(a)) > 0.5
    assert q.diversity(np.zeros((5, 3))) == 0.0


def test_a_tone_every_new_sound_carries_stands_out_and_real_sounds_show_none(ref) -> None:
    """A faint line at the fold model's patch rate (sample rate / 32) in every new sound, 45 dB
    under its peak, is found at its frequency far above the real halves' floor; the same
    sounds without it read within chance of the floor."""
    fresh = {c: [_clip(c, REAL + i) for i in range(FRESH)] for c in CLASSES}
    line = np.sin(2 * np.pi * (SR / 32) * np.arange(N) / SR)
    toned = {
        c: [(x + 10 ** (-45 / 20) * np.abs(x).max() * line).astype(np.float32) for x in clips]
        for c, clips in fresh.items()
    }
    clean, rung = _judge(ref, fresh), _judge(ref, toned)
    for cls in CLASSES:
        c, r = clean["classes"][cls], rung["classes"][cls]
        assert c["tone_db"] <= c["tone_floor_interval"][1] + 3.0, (cls, c["tone_db"])
        assert r["tone_floor_db"] == c["tone_floor_db"]  # the same real halves
        if cls in ("kick", "hihat"):  # little of their own sound at that pitch
            assert r["tone_db"] > r["tone_floor_db"] + 10.0, (cls, r["tone_db"])
            assert abs(r["tone_hz"] - SR / 32) < 11.0, (cls, r["tone_hz"])
    o = rung["overall"]
    assert o["tone_db_max"] == max(f["tone_db"] for f in rung["classes"].values())
    assert rung["classes"][o["tone_class"]]["tone_hz"] == o["tone_hz"]


def test_prominence_is_flat_for_noise_and_peaks_at_a_line_after_the_onset() -> None:
    sr = 44100  # 0.3 s holds ten frames: the noise's own bumps average down to a few dB
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(sr)
    flat = q.prominence(noise, sr)
    assert abs(float(np.median(flat))) < 1.0 and float(np.percentile(flat, 99)) < 5.0
    freqs = np.fft.rfftfreq(q.TONE_FFT, 1 / sr)
    at = int(np.argmin(np.abs(freqs - 3000.0)))
    sine = 0.5 * np.sin(2 * np.pi * freqs[at] * np.arange(sr) / sr)  # about 20 dB over its bin
    late = np.concatenate([np.zeros(sr // 2), noise + sine])[:sr]  # half a second of silence
    assert q.prominence(late, sr)[at] > 15.0  # measured from the onset, not the silence
