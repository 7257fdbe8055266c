"""Build a frozen dataclass from a YAML mapping: unknown keys refused, values typed and checked.

The rules come from the dataclass: a field's type (str, int, float, bool, a nested
dataclass, a tuple of strings) and its metadata (``choices``, ``min``/``max``,
``required``, ``nonempty``, ``kinds``: the dataclass to build, chosen by the mapping's
``kind``). Every error names the key path, what was expected and what was given.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any

import yaml

from forwarder.config.fields import SECRET_KEYS
from forwarder.errors import ConfigError


def join(path: str, key: object) -> str:
    """The key path of *key* under *path* (``output`` + ``port`` = ``output.port``)."""
    return f"{path}.{key}" if path else str(key)


def describe(value: Any) -> str:
    """A value as an error message shows it: ``"sixty"``, ``true``, ``a list``."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _number_text(value: float) -> str:
    # ":g" alone would show a limit of 1_000_000 as "1e+06"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def range_text(low: float | None, high: float | None) -> str:
    """`` 1-65535``, `` >= 0.1`` or nothing."""
    if low is not None and high is not None:
        return f" {_number_text(low)}-{_number_text(high)}"
    if low is not None:
        return f" >= {_number_text(low)}"
    return ""


def _coerce_scalar(value: Any, kind: type, path: str, meta: Mapping[str, Any]) -> Any:
    """Check one scalar against its declared type and range; return the typed value."""
    if isinstance(value, str) and type(value) is not str and kind is not str:
        # from ${VAR}: the environment's text may stand for a number or a boolean
        try:
            loaded = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:  # "[" or "@x" from the environment: reported below as given
            loaded = value
        value = loaded if isinstance(loaded, (int, float, bool)) else value
    low, high = meta.get("min"), meta.get("max")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {describe(value)}")
        return value
    if kind in (int, float):
        ok = isinstance(value, int) or (kind is float and isinstance(value, float))
        inside = (low is None or value >= low) and (high is None or value <= high) if ok else False
        if not ok or isinstance(value, bool) or not inside:
            noun = "an integer" if kind is int else "a number"
            raise ConfigError(f"{path}: expected {noun}{range_text(low, high)}, got {describe(value)}")
        return kind(value)
    if not isinstance(value, str):
        if path.rpartition(".")[2] in SECRET_KEYS:  # a password of digits, unquoted: never echo it
            raise ConfigError(f'{path}: expected a string (quote it: "..."); a secret, so not shown')
        raise ConfigError(f"{path}: expected a string, got {describe(value)}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{path}: expected one of {', '.join(choices)}, got {describe(value)}")
    if meta.get("nonempty") and not value.strip():
        raise ConfigError(f"{path}: expected a non-empty string, got {describe(value)}")
    return str(value)


def kind_of(kinds: Mapping[str, type], data: Any, path: str) -> type:
    """The dataclass that *data*'s ``kind`` names (the first kind when it names none)."""
    kind = data.get("kind", next(iter(kinds))) if isinstance(data, dict) else next(iter(kinds))
    if kind not in kinds:
        raise ConfigError(f"{join(path, 'kind')}: expected one of {', '.join(kinds)}, got {describe(kind)}")
    return kinds[kind]


def build(cls: type[Any], data: Any, path: str) -> Any:
    """Build dataclass *cls* from mapping *data* (None: all defaults), rejecting unknown keys
    and bad values; *path* is the key path of *data* ("" for the file itself)."""
    where = path or "the config file"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise ConfigError(f"{join(path, key)}: unknown key{hint}; {where} takes: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        full = join(path, name)
        if name not in data:
            if fld.metadata.get("required"):
                raise ConfigError(f"{full}: required key is missing")
            continue
        kind = hints[name]
        if "kinds" in fld.metadata:
            values[name] = build(kind_of(fld.metadata["kinds"], data[name], full), data[name], full)
        elif dataclasses.is_dataclass(kind):
            values[name] = build(typing.cast(type, kind), data[name], full)
        elif isinstance(kind, types.UnionType):
            values[name] = data[name]  # checked by the owner's own validation
        elif typing.get_origin(kind) is tuple:
            items = data[name]
            if not isinstance(items, list):
                raise ConfigError(f"{full}: expected a list, got {describe(items)}")
            item_kind = typing.get_args(kind)[0]
            values[name] = tuple(
                _coerce_scalar(item, item_kind, f"{full}[{i}]", {"nonempty": True})
                for i, item in enumerate(items)
            )
        else:
            values[name] = _coerce_scalar(data[name], kind, full, fld.metadata)
    return cls(**values)
