"""The embedded demo kit: a deterministic synthesized drum kit, so a fresh clone has real input.

Every clip is made from its seed alone, the way drum machines and acoustic kits make their
sounds: kicks with a fast pitch sweep, a beater click, sometimes a second shell mode, and a
short or long decay; snares with two tonal modes under band-passed wire noise and a stick
click; hats from six detuned square oscillators through band-passes, closed or open; claps as
three or four short noise bursts and a short room tail. Each hit has its own tuning, decays
and velocity (harder hits are brighter). What varies besides is what varies in real sample
folders: level, DC offset, leading and trailing silence, length (0.2-2.5 s), sample rate
(22.05/44.1/48 kHz), channels (a stereo hit is one hit, slightly wider) and file format (wav,
flac, ogg).
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


def _env(t: np.ndarray, attack: float, decay: float) -> np.ndarray:
    """A hit's envelope: a linear rise over ``attack`` seconds, then an exponential decay."""
    return np.clip(t / max(attack, 1e-5), 0.0, 1.0) * np.exp(-t / decay)


def _noise(rng: np.random.Generator, n: int, ch: int) -> np.ndarray:
    """Noise for every channel: mostly shared (the same hit), a little of each channel's own
    (a stereo recording's width)."""
    shared = rng.standard_normal(n)
    return np.stack([shared + 0.25 * rng.standard_normal(n) for _ in range(ch)])


def _kick(t: np.ndarray, sr: int, rng: np.random.Generator, ch: int, vel: float) -> np.ndarray:
    """A sine whose pitch sweeps down fast (the beater's punch) to the body's note, an
    inharmonic second mode on acoustic-like kicks, a beater click, soft saturation."""
    f_end = rng.uniform(42.0, 68.0)
    f_start = f_end * rng.uniform(2.5, 6.0)
    freq = f_end + (f_start - f_end) * np.exp(-t / rng.uniform(0.008, 0.045))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    decay = rng.uniform(0.03, 0.12) if rng.random() < 0.7 else rng.uniform(0.12, 0.35)
    body = np.sin(phase) * _env(t, 0.0008, decay)
    if rng.random() < 0.5:  # an acoustic drum's shell: a second, faster-dying mode
        ratio = rng.uniform(1.45, 1.8)
        body = body + rng.uniform(0.1, 0.35) * np.sin(ratio * phase) * np.exp(-t / (0.4 * decay))
    click = _filter(
        _noise(rng, t.size, ch), sr, "bandpass", (rng.uniform(1200, 2500), rng.uniform(4000, 7000))
    )
    click *= np.exp(-t / rng.uniform(0.001, 0.006)) * rng.uniform(0.3, 1.0) * vel
    drive = rng.uniform(1.0, 3.5) * (0.6 + 0.4 * vel)
    return np.tanh(drive * (body[None, :] + click)) / np.tanh(drive)


def _snare(t: np.ndarray, sr: int, rng: np.random.Generator, ch: int, vel: float) -> np.ndarray:
    """Two tonal modes of the head and shell (their pitch bends down a little at the hit)
    under band-passed noise of the snare wires, and a stick click."""
    f1 = rng.uniform(150.0, 240.0)
    bend = 1.0 + rng.uniform(0.05, 0.2) * np.exp(-t / 0.012)
    f2 = f1 * rng.uniform(1.5, 1.85)
    tone = np.sin(2 * np.pi * np.cumsum(f1 * bend) / sr) * np.exp(-t / rng.uniform(0.02, 0.08))
    tone += (
        rng.uniform(0.3, 0.8)
        * np.sin(2 * np.pi * np.cumsum(f2 * bend) / sr)
        * np.exp(-t / rng.uniform(0.015, 0.05))
    )
    lo, hi = rng.uniform(1200, 2800), min(rng.uniform(6500, 11000), 0.45 * sr)
    wires = _filter(_noise(rng, t.size, ch), sr, "bandpass", (lo, hi))
    wires *= _env(t, 0.001, rng.uniform(0.035, 0.14)) * rng.uniform(0.6, 1.6) * (0.7 + 0.3 * vel)
    stick = _filter(_noise(rng, t.size, ch), sr, "highpass", min(4000.0, 0.4 * sr))
    stick *= np.exp(-t / rng.uniform(0.001, 0.003)) * rng.uniform(0.2, 0.6) * vel
    y = tone[None, :] * rng.uniform(0.4, 1.0) + wires + stick
    return np.tanh(1.5 * y) / np.tanh(1.5)


# The six square-wave oscillators of an analog hat (the TR-808's ratios), detuned per hit.
_HAT_RATIOS = (1.0, 1.4471, 1.617, 1.9265, 2.5028, 2.6637)


def _hihat(t: np.ndarray, sr: int, rng: np.random.Generator, ch: int, vel: float) -> np.ndarray:
    """Six detuned square waves and some noise through two band-passes (the metallic band),
    closed (short) or open (long)."""
    base = rng.uniform(190.0, 280.0)
    metal = sum(
        np.sign(np.sin(2 * np.pi * base * r * rng.uniform(0.99, 1.01) * t + rng.uniform(0, 6.3)))
        for r in _HAT_RATIOS
    )
    y = metal[None, :] + _noise(rng, t.size, ch) * rng.uniform(0.3, 1.2)
    top = 0.45 * sr
    y = _filter(y, sr, "bandpass", (min(rng.uniform(6000, 8500), top - 1000), top), order=2)
    y = _filter(y, sr, "highpass", min(rng.uniform(5000, 7500), 0.4 * sr), order=2)
    closed = rng.random() < 0.6
    decay = rng.uniform(0.015, 0.07) if closed else rng.uniform(0.18, 0.6)
    return y * _env(t, 0.0004, decay) * (0.8 + 0.2 * vel)


def _clap(t: np.ndarray, sr: int, rng: np.random.Generator, ch: int, vel: float) -> np.ndarray:
    """Three or four hand hits a few milliseconds apart (band-passed noise bursts), then a
    short room tail."""
    centre = rng.uniform(900.0, 2200.0)
    noise = _filter(_noise(rng, t.size, ch), sr, "bandpass", (centre / 1.6, centre * 1.6))
    env = np.zeros_like(t)
    start = 0.0
    for _ in range(int(rng.integers(3, 5))):
        env = np.maximum(
            env,
            _env(np.clip(t - start, 0.0, None), 0.0004, rng.uniform(0.002, 0.007)) * (t >= start),
        )
        start += rng.uniform(0.006, 0.014)
    room = _env(np.clip(t - start, 0.0, None), 0.002, rng.uniform(0.04, 0.22)) * (t >= start)
    env = np.maximum(env, room * rng.uniform(0.3, 0.7))
    return noise * env * (0.8 + 0.2 * vel)


_VOICES = {"kick": _kick, "snare": _snare, "hihat": _hihat, "clap": _clap}


def synthesize(spec: DemoSpec) -> np.ndarray:
    """One demo clip as float32 ``[channels, samples]`` at ``spec.sample_rate``."""
    sr = spec.sample_rate
    rng = np.random.default_rng(spec.seed)
    n = max(1, round(spec.length * sr))
    lead, tail = round(spec.lead * sr), round(spec.tail * sr)
    body_n = max(int(0.05 * sr), n - lead - tail)
    t = np.arange(body_n) / sr
    velocity = float(rng.uniform(0.4, 1.0))  # harder hits are brighter, not only louder
    body = _VOICES[spec.cls](t, sr, rng, spec.channels, velocity)
    fade_n = min(body_n, int(0.005 * sr))
    body[:, -fade_n:] *= np.linspace(1.0, 0.0, fade_n)
    body /= np.max(np.abs(body)) or 1.0
    y = np.zeros((spec.channels, lead + body_n + tail))
    y[:, lead : lead + body_n] = body
    # A faint noise floor, as in real recordings, far below the trim threshold.
    y += rng.standard_normal(y.shape) * 10 ** (-85 / 20)
    y *= 10 ** (spec.peak_db / 20)
    y += spec.dc
    return y.astype(np.float32)
