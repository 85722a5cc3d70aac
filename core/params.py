"""params.yaml as typed, checked sections: the one reader of the file.

Every entry point (each stage, ``training.train``, ``training.sample``, the crawlers) calls
:func:`load` once, before it touches any file. Every key of params.yaml is declared here with
its type and range, and nowhere else: a key that is not declared (``normalise:``,
``trim.treshold_db``), a missing key, a value of the wrong type, an out-of-range value or a
contradiction between sections raises :class:`ConfigError` with one line that names the key,
the value and what is allowed. The values themselves live in params.yaml only: nothing here
has a default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

import yaml

from core.errors import ConfigError
from core.typecheck import convert, knob

PARAMS_FILE = "params.yaml"

# The choices some keys take (the declarations below use them; the code that implements the
# choices imports the tuples).
AudioExtension = Literal["wav", "aif", "aiff", "flac", "ogg", "mp3"]
Sampler = Literal["ddim", "dpmpp-2m"]
AUDIO_EXTENSIONS: tuple[str, ...] = get_args(AudioExtension)
SAMPLERS: tuple[str, ...] = get_args(Sampler)


def mib(megabytes: float) -> int:
    """Bytes in ``megabytes`` MiB (the ``*_mb`` settings)."""
    return int(megabytes * 2**20)


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Audio:
    sample_rate: int = knob(ge=8000, le=384000)
    duration: float = knob(gt=0, le=60)
    channels: int = knob(ge=1, le=2)
    subtype: Literal["FLOAT", "PCM_24", "PCM_16"] = knob()


@dataclass(frozen=True)
class Runner:
    workers: int = knob(ge=0)
    chunk_size: int = knob(ge=1)
    backend: Literal["local", "ray"] = knob()
    address: str = knob()


@dataclass(frozen=True)
class Demo:
    per_class: int = knob(ge=1, le=10000)
    seed: int = knob(ge=0)


@dataclass(frozen=True)
class Collect:
    sources: list[Literal["demo", "local", "freesound", "crawl"]] = knob(nonempty=True, unique=True)
    local_dirs: list[str] = knob(unique=True)
    extensions: list[AudioExtension] = knob(nonempty=True)
    max_duration: float = knob(gt=0)
    min_sample_rate: int = knob(ge=1)
    max_sample_rate: int = knob(ge=1)
    max_channels: int = knob(ge=1)
    max_file_mb: float = knob(gt=0)
    demo: Demo = knob()

    @property
    def max_file_bytes(self) -> int:
        return mib(self.max_file_mb)


@dataclass(frozen=True)
class Freesound:
    max_per_class: int = knob(ge=1)
    query: dict[str, str] = knob()
    max_duration: float = knob(gt=0)
    extra_filter: str = knob()
    licenses: list[Literal["cc0", "cc-by", "cc-by-nc", "sampling+"]] = knob(
        nonempty=True, unique=True
    )
    allow_ai_opt_out: bool = knob()
    page_size: int = knob(ge=1, le=150)
    sort: str = knob()
    requests_per_minute: float = knob(gt=0)
    downloads_per_minute: float = knob(gt=0)
    max_retries: int = knob(ge=0)
    backoff_s: float = knob(ge=0)
    max_file_mb: float = knob(gt=0)
    timeout_s: float = knob(gt=0)

    @property
    def max_file_bytes(self) -> int:
        return mib(self.max_file_mb)

    def query_for(self, label: str) -> str:
        """The search text for one class (``freesound.query.<class>``, else the class name)."""
        return self.query.get(label) or label


@dataclass(frozen=True)
class Crawl:
    allow_unknown_license: bool = knob()
    urls: list[str] = knob()
    index_urls: list[str] = knob()
    max_depth: int = knob(ge=0)
    max_file_mb: float = knob(gt=0)
    max_archive_mb: float = knob(gt=0)
    max_archive_files: int = knob(ge=1)

    @property
    def max_file_bytes(self) -> int:
        return mib(self.max_file_mb)

    @property
    def max_archive_bytes(self) -> int:
        return mib(self.max_archive_mb)


@dataclass(frozen=True)
class Normalize:
    mode: Literal["peak", "lufs"] = knob()
    peak_db: float = knob(ge=-60, le=0)
    lufs: float = knob(ge=-70, le=0)
    dc_cutoff_hz: float = knob(ge=0, le=1000)
    silence_db: float = knob(ge=-200, lt=0)
    resample_quality: Literal["QQ", "LQ", "MQ", "HQ", "VHQ"] = knob()


@dataclass(frozen=True)
class Trim:
    threshold_db: float = knob(gt=0, le=200)
    preroll_ms: float = knob(ge=0, le=1000)
    fade_in_ms: float = knob(ge=0, le=1000)
    tail_ms: float = knob(ge=0, le=10000)
    fade_out_ms: float = knob(ge=0, le=10000)
    window_ms: float = knob(gt=0, le=1000)
    gap_ms: float = knob(ge=0, le=10000)
    floor_db: float = knob(ge=0, le=200)


@dataclass(frozen=True)
class Pad:
    fade_out_ms: float = knob(ge=0, le=10000)


@dataclass(frozen=True)
class Label:
    classes: list[str] = knob(nonempty=True, unique=True, name=True)
    keywords: dict[str, list[str]] = knob()


@dataclass(frozen=True)
class Augment:
    variants: int = knob(ge=0, le=100)
    seed: int = knob(ge=0)
    kinds: list[Literal["phase_flip", "pitch", "saturate", "gain"]] = knob(unique=True)
    pitch_semitones: float = knob(gt=0, le=24)
    pitch_step: float = knob(gt=0, le=24)
    saturation: tuple[float, float] = knob(ge=0, le=1)
    gain_db: tuple[float, float] = knob(ge=-60, le=24)
    pitch_engine: Literal["resample", "pedalboard", "rubberband"] = knob()
    rubberband_args: dict[str, Any] = knob()


@dataclass(frozen=True)
class Shard:
    clips_per_shard: int = knob(ge=1)
    seed: int = knob(ge=0)


@dataclass(frozen=True)
class Report:
    per_class: int = knob(ge=1, le=64)


@dataclass(frozen=True)
class Train:
    init_checkpoint: str = knob()
    steps: int = knob(ge=1)
    batch_size: int = knob(ge=1)
    grad_accum: int = knob(ge=1)
    lr: float = knob(gt=0)
    warmup_steps: int = knob(ge=0)
    lr_final: float = knob(ge=0, le=1)
    weight_decay: float = knob(ge=0)
    grad_clip: float = knob(ge=0)
    ema_decay: float = knob(ge=0, lt=1)
    label_dropout: float = knob(ge=0, le=1)
    snr_cap: float = knob(ge=0, le=1e6)
    low_noise_share: float = knob(ge=0, le=1)
    seed: int = knob(ge=0)
    devices: int = knob(ge=1)
    num_nodes: int = knob(ge=1)
    accelerator: Literal["auto", "cpu", "cuda", "gpu"] = knob()
    precision: Literal[
        "auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true"
    ] = knob()
    compile: bool = knob()
    checkpoint_every: int = knob(ge=1)
    demo_every: int = knob(ge=0)
    demo_steps: int = knob(ge=1)
    load_workers: int = knob(ge=0)
    data: Literal["folder", "shards"] = knob()
    shards: str = knob()
    eval_every: int = knob(ge=0)
    eval_per_class: int = knob(ge=1)
    eval_steps: int = knob(ge=1)
    early_stop: Literal["", "accuracy", "frechet", "kernel"] = knob()
    early_stop_patience: int = knob(ge=1)


@dataclass(frozen=True)
class Model:
    preset: str = knob()
    # Each preset's keys are the architecture's own: training.model checks them.
    presets: dict[str, dict[str, Any]] = knob()


@dataclass(frozen=True)
class Sample:
    n: int = knob(ge=1)
    n_per_class: int = knob(ge=1)
    sampler: Sampler = knob()
    steps: int = knob(ge=1)
    rho: float = knob(gt=0, le=10)
    guidance: float = knob(ge=0, le=100)
    seed: int = knob(ge=0, lt=2**63)
    batch_size: int = knob(ge=1)
    device: str = knob()
    precision: Literal["auto", "bf16", "fp32"] = knob()
    bit_depth: Literal[16, 24] = knob()
    peak_db: float = knob(ge=-60, le=0)
    strength: float = knob(ge=0, le=1)
    inpaint_fade_ms: float = knob(ge=0, le=1000)
    frames: int = knob(ge=2)
    inversion_refine: int = knob(ge=0, le=100)
    finish: bool = knob()
    grid_shifts: int = knob(ge=1, le=64)
    grid_below: float = knob(ge=0, le=1)
    length_stretch: float = knob(ge=0.25, le=4)
    length_below: float = knob(ge=0, le=1)


@dataclass(frozen=True)
class Evaluate:
    n_per_class: int = knob(ge=1)
    seed: int = knob(ge=0, lt=2**63)
    held_out: float = knob(gt=0, lt=1)
    rounds: int = knob(ge=1)
    copy_percentile: float = knob(ge=50, le=100)


@dataclass(frozen=True)
class Params:
    """Every section of params.yaml."""

    audio: Audio
    runner: Runner
    collect: Collect
    freesound: Freesound
    crawl: Crawl
    normalize: Normalize
    trim: Trim
    pad: Pad
    label: Label
    augment: Augment
    shard: Shard
    report: Report
    train: Train
    model: Model
    sample: Sample
    evaluate: Evaluate


# ----------------------------------------------------------------------------- reading


def read_yaml(path: str | os.PathLike[str] = PARAMS_FILE) -> dict[str, Any]:
    """The file's mapping, unchecked (DVC runs stages from the repo root: the default path
    is relative)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p} not found: run from the repository root")
    try:
        with p.open(encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{p} is not valid YAML{at}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p} must hold a mapping at the top level")
    return raw


def load(path: str | os.PathLike[str] = PARAMS_FILE) -> Params:
    """Read and check params.yaml; ConfigError (one line) on anything unusable."""
    return parse(read_yaml(path), Path(path).name)


def parse(raw: dict[str, Any], source: str = PARAMS_FILE) -> Params:
    """Check a params mapping against the declared sections."""
    try:
        params = convert(raw, Params, "")
        _cross_check(params)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return params


def _cross_check(p: Params) -> None:
    """What no single key can say: agreement between keys and between sections."""
    if p.collect.min_sample_rate > p.collect.max_sample_rate:
        raise ConfigError(
            f"collect.min_sample_rate {p.collect.min_sample_rate} is above "
            f"collect.max_sample_rate {p.collect.max_sample_rate}"
        )
    if "local" in p.collect.sources and not p.collect.local_dirs:
        raise ConfigError("collect.sources has 'local' but collect.local_dirs is empty")
    if p.normalize.dc_cutoff_hz >= p.audio.sample_rate / 2:
        raise ConfigError(
            f"normalize.dc_cutoff_hz {p.normalize.dc_cutoff_hz:g} must be below half of "
            f"audio.sample_rate ({p.audio.sample_rate / 2:g})"
        )
    classes = p.label.classes
    for name, words in p.label.keywords.items():
        if name not in classes:
            raise ConfigError(
                f"label.keywords.{name} names no class in label.classes "
                f"({', '.join(classes)}): rename it or add the class"
            )
        if not [w for w in words if w.strip()]:
            raise ConfigError(f"label.keywords.{name} is empty: give the words that name it")
    missing = [c for c in classes if c not in p.label.keywords]
    if missing:
        raise ConfigError(
            f"label.keywords has no words for {', '.join(missing)}: every class in "
            "label.classes needs a list (its name alone counts too, e.g. [" + missing[0] + "])"
        )
    for name in p.freesound.query:
        if name not in classes:
            raise ConfigError(
                f"freesound.query.{name} names no class in label.classes ({', '.join(classes)})"
            )
    a = p.augment
    if a.variants and not a.kinds:
        raise ConfigError("augment.kinds is empty but augment.variants is not 0")
    if a.pitch_step > a.pitch_semitones:
        raise ConfigError(
            f"augment.pitch_step {a.pitch_step:g} is larger than augment.pitch_semitones "
            f"{a.pitch_semitones:g}"
        )
    for key in ("saturation", "gain_db"):
        lo, hi = getattr(a, key)
        if lo > hi:
            raise ConfigError(f"augment.{key} must be [low, high], got [{lo:g}, {hi:g}]")
    if p.model.preset not in p.model.presets:
        raise ConfigError(
            f"model.preset {p.model.preset!r} is not in model.presets "
            f"({', '.join(p.model.presets) or 'none'})"
        )


def check_value(section: type, key: str, value: Any, name: str) -> Any:
    """A command-line override of ``<section>.<key>``, checked against the same declaration
    as params.yaml (type, range, choices); ``name`` (the flag) is what a message names."""
    declared = {f.name: f for f in fields(section)}[key]
    return convert(value, get_type_hints(section)[key], name, dict(declared.metadata))
