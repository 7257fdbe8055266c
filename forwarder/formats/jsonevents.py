"""JSON events: reading an object exactly (orjson where it reads what json reads), finding a
member without parsing, writing one line of JSON, and CEF events as JSON.

``formats.jsonsplit`` turns a member's JSON lines into records.
"""

from __future__ import annotations

import json
import re
from typing import Any

from forwarder.formats.cef import CefEvent

try:  # C JSON parsing, ~3x the stdlib's speed on exporter events (see load_object)
    import orjson
except ImportError:  # pragma: no cover - a dependency; json alone gives the same results
    orjson = None  # type: ignore[assignment]


# --- reading ----------------------------------------------------------------------------


def parse_object(text: str) -> dict[str, Any]:
    """One record's JSON object; ValueError (with the reason) when it is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON: {err.msg} (column {err.colno})") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except ValueError:  # int() refuses a number of over 4,300 digits
        raise ValueError("JSON number too long to read (over 4,300 digits)") from None
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object (a value of type {type(value).__name__})")
    return value


# orjson reads integers beyond 64 bits as floats, where json keeps them exact: its result
# is taken only without a float, an object or an array among the members (which might hide
# one); json reads the others, and whatever orjson refuses (NaN, lone surrogates, invalid
# UTF-8 kept by parser.invalid_utf8: keep), so every record reads as parse_object reads it.
_MAYBE_INEXACT = frozenset((float, dict, list))
_PLAIN = frozenset((str, int))
_EXACT_ITEMS = frozenset((str, int, bool, type(None)))


def read_object(raw: bytes) -> tuple[dict[str, Any] | None, bool]:
    """(the object, *plain*) when orjson reads *raw* (valid UTF-8, valid JSON, an object) as
    json would; (None, False) when only json can tell (``load_object``). *Plain*: every member
    is a string or an integer, as the exporter writes them, and no string holds NUL (which
    only ``\\u0000`` can write), so each value's text is ``str(value)``."""
    if orjson is None:
        return None, False
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, False
    if type(value) is not dict:
        return None, False
    if _PLAIN.issuperset(map(type, value.values())):  # the common case: one check for both
        return value, raw.find(b"\\") < 0 or b"\\u0000" not in raw  # memchr first: 0.05 µs, not 0.3
    kinds = set(map(type, value.values()))
    if _MAYBE_INEXACT.isdisjoint(kinds):
        return value, False
    # Arrays of strings, integers and booleans (the push feed's app_stack, categories) read
    # exactly too: without this, each such event took json's path (3.5x slower to CEF).
    if float in kinds or dict in kinds:
        return None, False
    lists = (v for v in value.values() if type(v) is list)
    return (value, False) if all(_EXACT_ITEMS.issuperset(map(type, v)) for v in lists) else (None, False)


def load_object(raw: bytes) -> dict[str, Any]:
    """``parse_object`` for a record's bytes, by orjson where that gives the same object."""
    value, _ = read_object(raw)
    return value if value is not None else parse_object(raw.decode("utf-8", "surrogateescape"))


# A member's raw value, found without parsing the object: a string or a number.
_RAW_VALUE = re.compile(rb'\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?[0-9][0-9.eE+-]*))')


def raw_member(text: bytes, key: bytes) -> bytes | None:
    """The raw value of the first member named *key* (a string's content, or a number).

    ``"key"`` followed by ``:`` only occurs as a member name: inside a string every quote
    is escaped. A nested member of that name would be found too; Cato's events are flat.
    """
    at = text.find(b'"' + key + b'"')
    if at < 0:
        return None
    match = _RAW_VALUE.match(text, at + len(key) + 2)
    if match is None:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)


# --- writing ----------------------------------------------------------------------------
# CEF as JSON: the header fields under their ArcSight names, the extension as an object.
CEF_JSON_KEYS = ("cefVersion", "deviceVendor", "deviceProduct", "deviceVersion", "deviceEventClassId", "name",
                 "severity")  # fmt: skip


def render_json(value: Any) -> str:
    """One line of JSON: RFC 8259 escaping (quote, backslash, control characters), UTF-8 as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def cef_as_json(event: CefEvent) -> str:
    """A CEF event as one JSON object (``extension`` holding the key=value pairs)."""
    value = {**dict(zip(CEF_JSON_KEYS, event[:7], strict=True)), "extension": event.extension}
    if orjson is not None:  # text only: orjson writes what render_json writes, 6x faster
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError:  # a lone surrogate (bytes that invalid_utf8: keep kept)
            pass
    return render_json(value)


def cef_from_json(text: str) -> CefEvent:
    """The CEF event that ``cef_as_json`` wrote (ValueError when it is not one)."""
    value = parse_object(text)
    try:
        version, vendor, product, device_version, signature_id, name, severity = (
            str(value[key]) for key in CEF_JSON_KEYS
        )
        extension = {str(k): str(v) for k, v in value["extension"].items()}
    except (KeyError, AttributeError) as exc:
        raise ValueError(f"not a CEF event as JSON ({exc})") from None
    return CefEvent(version, vendor, product, device_version, signature_id, name, severity, extension)
