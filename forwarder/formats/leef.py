"""LEEF 2.0 (IBM QRadar's Log Event Extended Format) as pure functions: ``render`` and ``parse``.

``LEEF:2.0|Vendor|Product|Version|EventID|DelimiterCharacter|key=value<delim>key=value...``

IBM's "LEEF event components": "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|" - the LEEF 2.0
header adds a delimiter field: "You can use a single character or the hex value for the
character. The hex value can be represented by the prefix 0x or x, followed by a series of
1-4 characters (0-9A-Fa-f)"; without it (and in LEEF 1.0) attributes are separated by a
tab. An attribute's key ends at its first "=", so "=" in a value needs no escape.

LEEF defines no escaping at all. So that every value survives, this module:
- picks the delimiter per event: a tab (written ``x09``) unless some value holds one, else
  the first of ``^``, ``~`` and US (``x1F``) that no value holds; only when all four occur
  is a tab in a value written ``\\t``;
- writes LF as ``\\n`` and CR as ``\\r`` (a syslog message stays one line), and doubles a
  backslash only where it would otherwise be read as one of these escapes (before ``n``,
  ``r``, ``t``, a backslash, or at the end), so a Windows path reads as it is in QRadar;
- escapes ``|`` and ``\\`` in header fields as CEF does (``\\|``, ``\\\\``), CR/LF there as spaces.

``parse(render(event)) == event`` for every event whose header fields hold no CR or LF and
whose keys match :data:`forwarder.formats.cef.KEY_PATTERN`.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from forwarder.formats.cef import KEY_PATTERN, escape_header, split_fields

VERSION = "2.0"
_DELIMITERS = (("\t", "x09"), ("^", "^"), ("~", "~"), ("\x1f", "x1F"))
_HEX_DELIMITER = re.compile(r"0?[xX]([0-9A-Fa-f]{1,4})\Z")
_HEADER_UNESCAPE = re.compile(r"\\([\\|])")
# A backslash is doubled where it would start an escape: before n, r, t, a backslash, a
# character that becomes an escape (LF, CR, TAB), or at the end of the value.
_ESCAPE_STARTS = "nrt\n\r\t"
_VALUE_UNESCAPE = re.compile(r"\\([\\nrt])")
_VALUE_MEANING = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_VALID_KEY = re.compile(KEY_PATTERN + r"\Z")


class LeefError(ValueError):
    """Text that is not LEEF; the message says why."""


class LeefEvent(NamedTuple):
    """One LEEF event: the header fields and the attributes, in order (the delimiter is the
    writer's choice, not part of the event)."""

    vendor: str
    product: str
    product_version: str
    event_id: str
    attributes: dict[str, str]


def escape_value(value: str, delimiter: str = "\t") -> str:
    """An attribute value as written with *delimiter* (see the module docstring)."""
    if "\\" not in value and "\n" not in value and "\r" not in value and "\t" not in value:
        return value  # the common case, without a regex or a replace()
    if "\\" in value:
        value = _double_backslashes(value, _ESCAPE_STARTS)
    value = value.replace("\n", "\\n").replace("\r", "\\r")
    return value.replace("\t", "\\t") if delimiter == "\t" else value


def escape_values(joined: str, delimiter: str = "\t") -> str:
    """``escape_value`` for each of the values in *joined*, joined by NUL (none holding one)."""
    if "\\" in joined:
        joined = _double_backslashes(joined, _ESCAPE_STARTS + "\0")  # a NUL ends a value too
    joined = joined.replace("\n", "\\n").replace("\r", "\\r")
    return joined.replace("\t", "\\t") if delimiter == "\t" else joined


def _double_backslashes(text: str, before: str) -> str:
    """*text* with each backslash doubled that stands before a character of *before*, before
    another backslash, or at the end (a split at the backslashes, not a regex with a
    lookahead: 0.6 µs instead of 0.9 for a line's values)."""
    parts = text.split("\\")
    return parts[0] + "".join(("\\\\" if not p or p[0] in before else "\\") + p for p in parts[1:])


def unescape_value(value: str) -> str:
    """An attribute value's text: ``\\\\``, ``\\n``, ``\\r`` and ``\\t`` read; other backslashes kept."""
    if "\\" not in value:
        return value
    return _VALUE_UNESCAPE.sub(lambda m: _VALUE_MEANING[m.group(1)], value)


def choose_delimiter(attributes: dict[str, str], values: str | None = None) -> tuple[str, str]:
    """(delimiter, how the header writes it): the first candidate no value holds (*values*:
    the values joined, when the caller has them)."""
    if values is None:
        values = "".join(attributes.values())
    for delimiter, written in _DELIMITERS:
        if delimiter not in values:
            return delimiter, written
    return _DELIMITERS[0]


def render(event: LeefEvent) -> str:
    """The LEEF 2.0 line for *event*."""
    attributes = event.attributes
    values = "\0".join(attributes.values())  # NUL is no delimiter: the choice is the same
    delimiter, written = choose_delimiter(attributes, values)
    if "\\" in values or "\n" in values or "\r" in values or "\t" in values:
        if values.count("\0") == len(attributes) - 1:  # no value holds NUL: escaped in one go
            escaped = escape_values(values, delimiter).split("\0")
        else:
            escaped = [escape_value(value, delimiter) for value in attributes.values()]
        body = delimiter.join(map("=".join, zip(attributes, escaped, strict=True)))
    else:  # nothing to escape anywhere: joined in C
        body = delimiter.join(map("=".join, attributes.items()))
    return f"{header(event.vendor, event.product, event.product_version, event.event_id)}{written}|{body}"


@functools.lru_cache(maxsize=1024)  # events repeat their header fields: 0.7 µs made once
def header(vendor: str, product: str, product_version: str, event_id: str) -> str:
    """The header up to the delimiter field: ``LEEF:2.0|Vendor|Product|Version|EventID|``."""
    fields = (vendor, product, product_version, event_id)
    return f"LEEF:{VERSION}|" + "".join(escape_header(f) + "|" for f in fields)


def valid_key(key: str) -> bool:
    """True when *key* reads back as the same key."""
    return _VALID_KEY.match(key) is not None


def parse(text: str) -> LeefEvent:
    """A LEEF 1.0 or 2.0 line as a LeefEvent; LeefError says why a line is not LEEF."""
    if not text.startswith("LEEF:"):
        raise LeefError("not LEEF (does not start with LEEF:)")
    body = text[5:]
    version = body.split("|", 1)[0]
    count = 6 if version.startswith("2") else 5  # fields before the attributes, version included
    fields, rest = _split_header(body, count)
    delimiter = _delimiter(fields[5]) if count == 6 else "\t"
    attributes: dict[str, str] = {}
    for piece in rest.split(delimiter):
        if not piece:
            continue
        key, sep, value = piece.partition("=")
        if not sep:
            raise LeefError(f"LEEF attribute without '=' ({piece[:40]!r})")
        attributes.setdefault(key, unescape_value(value))
    vendor, product, product_version, event_id = (_HEADER_UNESCAPE.sub(r"\1", f) for f in fields[1:5])
    return LeefEvent(vendor, product, product_version, event_id, attributes)


def _split_header(body: str, count: int) -> tuple[list[str], str]:
    parts = split_fields(body, count)
    if len(parts) <= count:
        raise LeefError(f"LEEF header has {len(parts) - 1} of its {count} '|'-separated fields")
    return parts[:count], parts[count]


def _delimiter(field: str) -> str:
    if not field:
        return "\t"
    match = _HEX_DELIMITER.match(field)
    if match:
        return chr(int(match.group(1), 16))
    if len(field) == 1:
        return field
    raise LeefError(f"LEEF delimiter is neither one character nor a hex value ({field[:10]!r})")
