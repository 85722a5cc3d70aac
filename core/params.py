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

import difflib
import math
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from core.errors import ConfigError

PARAMS_FILE = "params.yaml"

SOURCES = ("demo", "local", "freesound", "crawl")
AUDIO_EXTENSIONS = ("wav", "aif", "aiff", "flac", "ogg", "mp3")
AUGMENT_KINDS = ("phase_flip", "pitch", "saturate", "gain")
LICENSE_CODES = ("cc0", "cc-by", "cc-by-nc", "sampling+")
SAMPLERS = ("ddim", "dpmpp-2m")
# Lightning's precision values (``train.precision``), plus auto.
TRAIN_PRECISIONS = (
    "auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true",
)  # fmt: skip
# Class names become folder and file names: letters, digits, _ and -.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def knob(**checks: Any) -> Any:
    """A declared key; ``checks``: ge, gt, le, lt (numbers), nonempty, unique (lists),
    name (a class-like name)."""
    return field(metadata=checks)


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


@dataclass(frozen=True)
class Demo:
    per_class: int = knob(ge=1, le=10000)
    seed: int = knob(ge=0)


@dataclass(frozen=True)
class Collect:
    sources: list[Literal["demo", "local", "freesound", "crawl"]] = knob(nonempty=True, unique=True)
    local_dirs: list[str] = knob(unique=True)
    extensions: list[Literal["wav", "aif", "aiff", "flac", "ogg", "mp3"]] = knob(nonempty=True)
    max_duration: float = knob(gt=0)
    min_sample_rate: int = knob(ge=1)
    max_sample_rate: int = knob(ge=1)
    max_channels: int = knob(ge=1)
    max_file_mb: float = knob(gt=0)
    demo: Demo = knob()


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


@dataclass(frozen=True)
class Crawl:
    allow_unknown_license: bool = knob()
    urls: list[str] = knob()
    index_urls: list[str] = knob()
    max_depth: int = knob(ge=0)
    max_file_mb: float = knob(gt=0)
    max_archive_mb: float = knob(gt=0)
    max_archive_files: int = knob(ge=1)


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
    rubberband_args: dict[str, Any] = knob()


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
    weight_decay: float = knob(ge=0)
    grad_clip: float = knob(ge=0)
    ema_decay: float = knob(ge=0, lt=1)
    label_dropout: float = knob(ge=0, le=1)
    seed: int = knob(ge=0)
    devices: int = knob(ge=1)
    accelerator: Literal["auto", "cpu", "cuda", "gpu"] = knob()
    precision: Literal[
        "auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true"
    ] = knob()
    checkpoint_every: int = knob(ge=1)
    demo_every: int = knob(ge=0)
    demo_steps: int = knob(ge=1)
    load_workers: int = knob(ge=0)


@dataclass(frozen=True)
class Model:
    preset: str = knob()
    # Each preset's keys are the architecture's own: training.model checks them.
    presets: dict[str, dict[str, Any]] = knob()


@dataclass(frozen=True)
class Sample:
    n: int = knob(ge=1)
    n_per_class: int = knob(ge=1)
    sampler: Literal["ddim", "dpmpp-2m"] = knob()
    steps: int = knob(ge=1)
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
    report: Report
    train: Train
    model: Model
    sample: Sample


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
        params = _convert(raw, Params, "")
        _cross_check(params)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return params


# ----------------------------------------------------------------------------- checking


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    origin = get_origin(tp)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or is_dataclass(tp):
        return "a mapping"
    return "a value"


def _number(value: Any, tp: type, where: str) -> int | float:
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be {_kind(tp)}, got {_show(value)}")
    if isinstance(value, str):  # e.g. 4e-05, which YAML 1.1 reads as a string
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"{where} must be {_kind(tp)}, got {_show(value)}") from None
    if not isinstance(value, int | float):
        raise ConfigError(f"{where} must be {_kind(tp)}, got {_show(value)}")
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {_show(value)}")
    if tp is int:
        if value != int(value):
            raise ConfigError(f"{where} must be a whole number, got {_show(value)}")
        return int(value)
    return float(value)


def _bounds(value: float, where: str, meta: dict[str, Any]) -> None:
    lo = meta.get("ge", meta.get("gt"))
    hi = meta.get("le", meta.get("lt"))
    ok = (
        ("ge" not in meta or value >= meta["ge"])
        and ("gt" not in meta or value > meta["gt"])
        and ("le" not in meta or value <= meta["le"])
        and ("lt" not in meta or value < meta["lt"])
    )
    if ok:
        return
    if lo is not None and hi is not None:
        left = "[" if "ge" in meta else "("
        right = "]" if "le" in meta else ")"
        allowed = f"in {left}{lo:g}, {hi:g}{right}"
    elif lo is not None:
        allowed = f"at least {lo:g}" if "ge" in meta else f"more than {lo:g}"
    else:
        allowed = f"at most {hi:g}" if "le" in meta else f"less than {hi:g}"
    raise ConfigError(f"{where} must be {allowed}, got {_show(value)}")


def _convert(value: Any, tp: Any, where: str, meta: dict[str, Any] | None = None) -> Any:
    """``value`` as type ``tp`` (checked against ``meta``), or ConfigError naming ``where``."""
    meta = meta or {}
    origin, args = get_origin(tp), get_args(tp)
    if is_dataclass(tp):
        return _section(value, tp, where)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args or isinstance(value, bool):
            choices = ", ".join(str(a) for a in args)
            raise ConfigError(f"{where} must be one of {choices}, got {_show(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {_show(value)}")
        return value
    if tp in (int, float):
        number = _number(value, tp, where)
        _bounds(number, where, meta)
        return number
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {_show(value)}")
        if meta.get("name") and not _NAME.match(value):
            raise ConfigError(
                f"{where} must be a name of letters, digits, _ and - (it names folders), "
                f"got {_show(value)}"
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {_show(value)}")
        if origin is tuple and len(value) != len(args):
            raise ConfigError(f"{where} must be a list of {len(args)} values, got {_show(value)}")
        inner = args if origin is tuple else [args[0]] * len(value)
        pairs = enumerate(zip(value, inner, strict=True))
        items = [_convert(v, t, f"{where}[{i}]", meta) for i, (v, t) in pairs]
        if meta.get("nonempty") and not items:
            raise ConfigError(f"{where} must not be empty")
        if meta.get("unique"):
            repeated = sorted({str(v) for v in items if items.count(v) > 1})
            if repeated:
                raise ConfigError(f"{where} lists {', '.join(repeated)} more than once")
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {_show(value)}")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    raise TypeError(f"params: no converter for {tp!r}")  # a declaration error, not the user's


def _section(value: Any, cls: type, where: str) -> Any:
    if not isinstance(value, dict):
        what = where or "the file"
        raise ConfigError(f"{what} must be a mapping of settings, got {_show(value)}")
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    prefix = f"{where}." if where else ""
    for key in value:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(
                f"{prefix}{key} is not a setting{hint}; {where or 'params.yaml'} has "
                f"{', '.join(known)}"
            )
    values = {}
    for f in fields(cls):
        if f.name not in value:
            raise ConfigError(f"{prefix}{f.name} is missing ({_kind(hints[f.name])})")
        values[f.name] = _convert(value[f.name], hints[f.name], prefix + f.name, dict(f.metadata))
    return cls(**values)


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
    return _convert(value, get_type_hints(section)[key], name, dict(declared.metadata))
