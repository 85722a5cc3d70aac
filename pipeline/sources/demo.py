"""The embedded demo kit: a deterministic synthesized drum kit, so a fresh clone has real input.

Every clip is made from its seed alone: kick (pitch-swept sine and click), snare (two body modes
and band-passed noise), hihat (808-style square cluster and high-passed noise, closed or open)
and clap (a few noise bursts and a diffuse tail). What varies is what varies in real sample
folders: pitch, decay, tone, noise, level, DC offset, leading and trailing silence, length
(0.2-2.5 s), sample rate (22.05/44.1/48 kHz), channels and file format (wav, flac, ogg).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.provenance import CC0_DEED

CLASSES = ("kick", "snare", "hihat", "clap")
RATES = (22050, 44100, 48000)
FORMATS = ("wav", "flac", "ogg")
WAV_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
LICENSE = CC0_DEED


@dataclass(frozen=True)
class DemoSpec:
    """Everything that decides one demo clip; made again from the kit's seed alone."""

    cls: str
    index: int
    seed: int
    sample_rate: int
    fmt: str
    subtype: str
    channels: int
    length: float  # seconds, silence included
    lead: float  # leading silence, seconds
    tail: float  # trailing silence, seconds
    peak_db: float
    dc: float

    @property
    def source_id(self) -> str:
        return f"{self.cls}_{self.index:03d}"

    @property
    def file_name(self) -> str:
        return f"{self.source_id}.{self.fmt}"


def plan(per_class: int, seed: int, classes: tuple[str, ...] = CLASSES) -> list[DemoSpec]:
    """The kit's specs: ``per_class`` clips of every class, each with its own seed."""
    specs = []
    for c, cls in enumerate(classes):
        for i in range(per_class):
            rng = np.random.default_rng([seed, c, i])
            length = float(rng.uniform(0.2, 2.5))
            fmt = FORMATS[(i + c) % len(FORMATS)]
            specs.append(
                DemoSpec(
                    cls=cls,
                    index=i,
                    seed=int(rng.integers(0, 2**31 - 1)),
                    sample_rate=RATES[(i + 2 * c) % len(RATES)],
                    fmt=fmt,
                    subtype=WAV_SUBTYPES[i % len(WAV_SUBTYPES)] if fmt == "wav" else "",
                    channels=2 if i % 5 == 3 else 1,
                    length=round(length, 4),
                    lead=round(float(rng.uniform(0.0, 0.25)) * length, 4),
                    tail=round(float(rng.uniform(0.0, 0.25)) * length, 4),
                    peak_db=round(float(rng.uniform(-24.0, -0.5)), 2),
                    dc=round(float(rng.choice([0.0, 0.0, rng.uniform(-0.05, 0.05)])), 4),
                )
            )
    return specs


def rows(per_class: int, seed: int) -> list[dict[str, str]]:
    """Collect rows for the kit (no file yet: ``collect`` synthesizes each clip)."""
    return [
        {
            "path": "",
            "source": "demo",
            "source_id": spec.source_id,
            "name": spec.file_name,
            "folder": spec.cls,
            "license": LICENSE,
            "attribution": (
                f"{spec.source_id} by oneshot-diffusion -- synthesized demo kit -- "
                f"License: {LICENSE}"
            ),
        }
        for spec in plan(per_class, seed)
    ]


def _filter(
    x: np.ndarray, sr: int, kind: str, freq: float | tuple[float, float], order: int = 2
) -> np.ndarray:
    # Imported here: scipy.signal takes ~1 s to import, and `collect` (which runs on every
    # `dvc repro`) needs it only when it actually synthesizes the kit.
    from scipy.signal import butter, sosfilt

    nyq = sr / 2
    wn = [min(f / nyq, 0.99) for f in freq] if isinstance(freq, tuple) else min(freq / nyq, 0.99)
    return sosfilt(butter(order, wn, btype=kind, output="sos"), x)


def _kick(t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    f0, f1 = rng.uniform(110, 260), rng.uniform(38, 70)
    sweep = rng.uniform(0.01, 0.06)
    freq = f1 + (f0 - f1) * np.exp(-t / sweep)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    body = np.sin(phase) * np.exp(-t / rng.uniform(0.08, 0.5))
    click = _filter(rng.standard_normal(t.size), sr, "highpass", rng.uniform(1500, 4000))
    click *= np.exp(-t / rng.uniform(0.001, 0.005)) * rng.uniform(0.1, 0.6)
    y = body + click
    return np.tanh(y * rng.uniform(1.0, 3.0))


def _snare(t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    f = rng.uniform(170, 260)
    tone = np.sin(2 * np.pi * f * t) + 0.5 * np.sin(2 * np.pi * f * rng.uniform(1.5, 1.8) * t)
    tone *= np.exp(-t / rng.uniform(0.03, 0.12))
    lo, hi = rng.uniform(800, 2000), rng.uniform(6000, 10000)
    noise = _filter(rng.standard_normal(t.size), sr, "bandpass", (lo, min(hi, 0.45 * sr)))
    noise *= np.exp(-t / rng.uniform(0.06, 0.3)) * rng.uniform(0.6, 1.5)
    return tone * rng.uniform(0.3, 1.0) + noise


def _hihat(t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(280, 520)
    metal = sum(np.sign(np.sin(2 * np.pi * base * r * t)) for r in (2, 3, 4.16, 5.43, 6.79, 8.21))
    noise = rng.standard_normal(t.size) * rng.uniform(0.5, 2.0)
    decay = rng.uniform(0.02, 0.08) if rng.random() < 0.6 else rng.uniform(0.2, 0.6)
    y = _filter(metal + noise, sr, "highpass", min(rng.uniform(5000, 8000), 0.4 * sr), order=4)
    return y * np.exp(-t / decay)


def _clap(t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    noise = _filter(
        rng.standard_normal(t.size),
        sr,
        "bandpass",
        (rng.uniform(700, 1200), rng.uniform(2200, 4000)),
    )
    env = np.zeros_like(t)
    start = 0.0
    for _ in range(int(rng.integers(3, 5))):
        env += (t >= start) * np.exp(-np.clip(t - start, 0, None) / rng.uniform(0.003, 0.008))
        start += rng.uniform(0.006, 0.015)
    env += (t >= start) * np.exp(-np.clip(t - start, 0, None) / rng.uniform(0.05, 0.25)) * 0.5
    return noise * env


_VOICES = {"kick": _kick, "snare": _snare, "hihat": _hihat, "clap": _clap}


def synthesize(spec: DemoSpec) -> np.ndarray:
    """One demo clip as float32 ``[channels, samples]`` at ``spec.sample_rate``."""
    sr = spec.sample_rate
    rng = np.random.default_rng(spec.seed)
    n = max(1, round(spec.length * sr))
    lead, tail = round(spec.lead * sr), round(spec.tail * sr)
    body_n = max(int(0.05 * sr), n - lead - tail)
    t = np.arange(body_n) / sr
    chans = []
    for _ in range(spec.channels):
        body = _VOICES[spec.cls](t, sr, rng)
        fade_n = min(body_n, int(0.005 * sr))
        body[-fade_n:] *= np.linspace(1.0, 0.0, fade_n)
        chans.append(body)
    body = np.stack(chans)
    body /= np.max(np.abs(body)) or 1.0
    y = np.zeros((spec.channels, lead + body_n + tail))
    y[:, lead : lead + body_n] = body
    # A faint noise floor, as in real recordings, far below the trim threshold.
    y += rng.standard_normal(y.shape) * 10 ** (-85 / 20)
    y *= 10 ** (spec.peak_db / 20)
    y += spec.dc
    return y.astype(np.float32)
