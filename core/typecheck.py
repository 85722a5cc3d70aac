"""Checking plain YAML values against typed declarations: the machinery behind core.params.

A declaration is a frozen dataclass whose fields carry their checks (:func:`knob`); a value is
converted to the field's type (int, float, str, bool, Literal choices, lists, tuples, mappings,
nested declarations) and checked, or refused with a ConfigError that names the key (``where``),
the value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import field, fields, is_dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

from core.errors import ConfigError

# Class names become folder and file names: letters, digits, _ and -.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def knob(**checks: Any) -> Any:
    """A declared key; ``checks``: ge, gt, le, lt (numbers), nonempty, unique (lists),
    name (a class-like name)."""
    return field(metadata=checks)


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


def convert(value: Any, tp: Any, where: str, meta: dict[str, Any] | None = None) -> Any:
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
        items = [convert(v, t, f"{where}[{i}]", meta) for i, (v, t) in pairs]
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
        return {str(k): convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
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
        values[f.name] = convert(value[f.name], hints[f.name], prefix + f.name, dict(f.metadata))
    return cls(**values)
