"""CEF (ArcSight Common Event Format, "Implementing ArcSight CEF" rev 25) as pure functions.

``parse`` turns one line into a :class:`CefEvent` (or raises :class:`CefError` with the
reason); ``render`` writes one back, escaping exactly as the specification says. So
``parse(render(event)) == event`` for every event whose header fields hold no CR or LF
(the specification allows line breaks only in extension values) and whose keys are
:data:`KEY_PATTERN` keys. ``parse_time`` reads the time forms CEF allows for ``rt``/``end``.

Lenient where real senders are sloppy, strict where the meaning would be lost: an unknown
escape (``\\x``) is kept as written, an escaped pipe in the extension is read as a pipe, an
empty field (Cato writes an empty Device Product) is fine; a header with fewer than seven
fields, a version that is not a number or text before the first ``key=`` is an error.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import NamedTuple

# CEF:Version|Device Vendor|Device Product|Device Version|Device Event Class ID|Name|Severity|[Extension]
HEADER_FIELDS = 7


class CefError(ValueError):
    """A line that is not valid CEF; the message says why, for the dead-letter file."""


class CefEvent(NamedTuple):
    """One CEF event: the seven header fields, unescaped, and the extension's pairs in order."""

    version: str
    vendor: str
    product: str
    device_version: str
    signature_id: str  # Device Event Class ID
    name: str
    severity: str
    extension: dict[str, str]


# --- escaping ------------------------------------------------------------------------
# Rev 25, "Character Encoding":
#   "If a pipe (|) is used in the header, it has to be escaped with a backslash (\). But
#    note that pipes in the extension do not need escaping."
#   "If a backslash (\) is used in the header or the extension, it has to be escaped with
#    another backslash (\)."
#   "If an equal sign (=) is used in the extensions, it has to be escaped with a backslash
#    (\). Equal signs in the header need no escaping."
#   "Multi-line fields can be sent by CEF by encoding the newline character as \n or \r.
#    Note that multiple lines are only allowed in the value part of the extensions."
_HEADER_UNESCAPE = re.compile(r"\\([\\|])")
_VALUE_UNESCAPE = re.compile(r"\\([\\=nr|])")
_VALUE_MEANING = {"\\": "\\", "=": "=", "n": "\n", "r": "\r", "|": "|"}


# Most values hold none of these characters: four `in` tests (~0.1 µs), and the escaping
# only when one is there. Four replace() calls (~0.1 µs) instead of translate() with a
# table (0.4 µs for a short ASCII value, far more for other text).
def escape_header(value: str) -> str:
    """A header field as CEF writes it: ``\\`` and ``|`` escaped; CR/LF (not allowed) as spaces."""
    if "\\" in value or "|" in value or "\r" in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return value


def escape_value(text: str) -> str:
    """An extension value as CEF writes it: ``\\``, ``=`` escaped, CR and LF as ``\\r``, ``\\n``.
    Also a line's values at once, joined by a character none of them holds. Each replace()
    only for a character that is there: a test costs ~0.01 µs, a replace() that finds
    nothing in 600 characters of non-ASCII text ~0.15."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "=" in text:
        text = text.replace("=", "\\=")
    if "\r" in text or "\n" in text:
        text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text


def unescape_header(field: str) -> str:
    """A header field's text: ``\\|`` and ``\\\\`` read; any other backslash kept as written."""
    return _HEADER_UNESCAPE.sub(r"\1", field) if "\\" in field else field


def unescape_value(value: str) -> str:
    """An extension value's text: ``\\\\ \\= \\n \\r`` (and a needless ``\\|``) read; others kept."""
    if "\\" not in value:
        return value
    return _VALUE_UNESCAPE.sub(_unescaped, value)


def _unescaped(match: re.Match[str]) -> str:
    return _VALUE_MEANING[match.group(1)]


# --- parsing ---------------------------------------------------------------------------
# A key is what stands between a space (or the start of the extension) and an unescaped
# "=": the specification's keys are alphanumeric; Cato's own custom keys hold "_" too
# ("tunnel_device_type"). An "=" inside a value must be escaped, so "word=" after a space
# always starts the next pair.
KEY_PATTERN = r"[A-Za-z0-9_.\-\[\]]+"
# Searched in " " + the extension: a pattern that starts with a literal space is scanned
# for twice as fast as one starting "(?:^| )" (2.2 µs for the benchmark's extension, not 4.2).
_PAIRS = re.compile(r" (" + KEY_PATTERN + r")=")
_VALID_KEY = re.compile(KEY_PATTERN + r"\Z")
_VERSION = re.compile(r"\d+(?:\.\d+)?\Z", re.ASCII)


def split_header(text: str) -> tuple[list[str], str]:
    """The seven raw (still escaped) header fields after ``CEF:`` and the raw extension.

    Raises CefError when there are fewer than seven unescaped ``|``.
    """
    if not text.startswith("CEF:"):
        raise CefError("not CEF (does not start with CEF:)")
    body = text[4:]
    parts = body.split("|", HEADER_FIELDS)
    if len(parts) > HEADER_FIELDS and "\\" in body[: len(body) - len(parts[HEADER_FIELDS])]:
        # A backslash takes the next character literally: mask every escaped pair (same
        # length, so offsets hold) and split again to find the real separators.
        masked = body.replace("\\\\", "\0\0").replace("\\|", "\0\0")
        cuts = masked.split("|", HEADER_FIELDS)
        if len(cuts) <= HEADER_FIELDS:
            parts = cuts
        else:
            parts, start = [], 0
            for cut in cuts[:HEADER_FIELDS]:
                parts.append(body[start : start + len(cut)])
                start += len(cut) + 1
            parts.append(body[start:])
    if len(parts) <= HEADER_FIELDS:
        found = len(parts) - 1
        raise CefError(f"CEF header has {found} of its {HEADER_FIELDS} '|'-separated fields")
    return parts[:HEADER_FIELDS], parts[HEADER_FIELDS]


def parse_extension(extension: str) -> dict[str, str]:
    """The extension's ``key=value`` pairs, values unescaped, in order.

    A value runs to the space before the next key (so it may hold spaces and bare ``|``);
    pairs are separated by one space, and a value keeps any further spaces it ends with.
    """
    keys, values = extension_items(extension)
    pairs = dict(zip(keys, values, strict=True))
    if len(pairs) < len(keys):  # a key twice: the first wins
        pairs = {}
        for key, value in zip(keys, values, strict=True):
            pairs.setdefault(key, value)
    return pairs


def extension_items(extension: str) -> tuple[list[str], list[str]]:
    """The extension's keys and their values (unescaped), in order, a key twice included."""
    text = extension.lstrip(" ")
    if not text:
        return [], []
    # [" " + "text before the first key", key, value, key, value...], in one pass in C.
    parts = _PAIRS.split(" " + text)
    if len(parts[0]) > 1:
        raise CefError(f"CEF extension: text before the first key=value ({parts[0].strip()[:40]!r})")
    keys = parts[1::2]
    values = parts[2::2]
    joined = "\0".join(values)
    if "\\" in joined:  # unescaped in one go where no value holds NUL
        if joined.count("\0") == len(values) - 1:
            values = _VALUE_UNESCAPE.sub(_unescaped, joined).split("\0")
        else:
            values = list(map(unescape_value, values))
    return keys, values


def parse(text: str) -> CefEvent:
    """One CEF line as a CefEvent; CefError says what is wrong with a line that is not CEF."""
    (version, vendor, product, device_version, signature_id, name, severity), extension = header_fields(text)
    return CefEvent(
        version, vendor, product, device_version, signature_id, name, severity, parse_extension(extension)
    )


Header = tuple[str, str, str, str, str, str, str]  # the seven fields, CefEvent's first seven


def header_fields(text: str) -> tuple[Header, str]:
    """The seven header fields (unescaped) and the raw extension of a line; CefError as ``parse``."""
    fields, extension = split_header(text)
    if not _VERSION.match(fields[0]):
        raise CefError(f"CEF version is not a number ({fields[0][:20]!r})")
    version, vendor, product, device_version, signature_id, name, severity = map(unescape_header, fields)
    return (version, vendor, product, device_version, signature_id, name, severity), extension


# --- rendering -------------------------------------------------------------------------


def valid_key(key: str) -> bool:
    """True when *key* reads back as the same key (see KEY_PATTERN)."""
    return _VALID_KEY.match(key) is not None


def render(event: CefEvent) -> str:
    """The CEF line for *event* (keys are written as they are: see valid_key)."""
    header = "|".join(
        escape_header(f)
        for f in (
            event.vendor,
            event.product,
            event.device_version,
            event.signature_id,
            event.name,
            event.severity,
        )
    )
    pairs = event.extension
    values = "".join(pairs.values())
    if "\\" in values or "=" in values or "\r" in values or "\n" in values:
        extension = " ".join(map("=".join, zip(pairs, map(escape_value, pairs.values()), strict=True)))
    else:  # nothing to escape anywhere: joined in C
        extension = " ".join(map("=".join, pairs.items()))
    return f"CEF:{event.version}|{header}|{extension}"


# --- times -----------------------------------------------------------------------------
# Rev 25, "Date Formats" (for rt, end, start...): "Milliseconds since January 1, 1970
# (integer)", "MMM dd HH:mm:ss.SSS zzz", "MMM dd HH:mm:sss.SSS", "MMM dd HH:mm:ss zzz",
# "MMM dd HH:mm:ss", "MMM dd yyyy HH:mm:ss.SSS zzz", "MMM dd yyyy HH:mm:ss.SSS",
# "MMM dd yyyy HH:mm:ss zzz", "MMM dd yyyy HH:mm:ss". Cato writes Java's Date.toString(),
# "EEE MMM dd HH:mm:ss zzz yyyy": "Mon May 18 14:49:40 UTC 2020". A time without a zone is
# taken as UTC, one without a year as this year (last year if that is more than a day ahead).
_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_ZONES = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "EST": -300, "EDT": -240, "CST": -360, "CDT": -300,
    "MST": -420, "MDT": -360, "PST": -480, "PDT": -420,
}  # fmt: skip
_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+)?(?P<mon>[A-Z][a-z]{2})\s+(?P<day>\d{1,2})\s+"
    r"(?:(?P<year>\d{4})\s+)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,3}))?"
    r"(?:\s+(?P<zone>[A-Za-z]{1,5})?(?P<offset>[+-]\d{1,2}(?::?\d{2})?)?)?"
    r"(?:\s+(?P<year2>\d{4}))?\s*\Z",
    re.ASCII,
)
_ISO = re.compile(
    r"(?P<year>\d{4})-(?P<mon>\d{2})-(?P<day>\d{2})[T ](?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?(?:(?P<z>Z)|(?P<offset>[+-]\d{2}(?::?\d{2})?))?\s*\Z",
    re.ASCII,
)
DAY_MS = 86_400_000


# The times that a syslog header and LEEF's devTime can write (years 1970-9999), in epoch
# ms: a value beyond them is no time (the field is kept as it is), never an overflow.
END_MS = 253_402_300_800_000


def epoch_digits(digits: str | bytes) -> int | None:
    """A run of ASCII digits as epoch ms; None when it has more significant digits than any
    time before END_MS (int() refuses numbers of over 4,300 digits: never asked to)."""
    text = digits.decode("ascii") if isinstance(digits, bytes) else digits
    return int(text) if len(text.lstrip("0")) <= len(str(END_MS)) else None


def in_range(epoch_ms: int | None) -> int | None:
    """*epoch_ms* when it is a time from 1970 to 9999, else None."""
    return epoch_ms if epoch_ms is not None and 0 <= epoch_ms < END_MS else None


def parse_time(value: str, now: float | None = None) -> int | None:
    """Milliseconds since the epoch for a CEF (or ISO 8601) time from 1970 to 9999, None when
    it is none of them."""
    return in_range(_parse_time(value.strip(), now))


def _parse_time(value: str, now: float | None) -> int | None:
    if value.isascii() and value.isdigit():  # str.isdigit() also takes "²"
        return epoch_digits(value)
    match = _DATE.match(value)
    if match:
        month = _MONTHS.get(match["mon"])
        year = match["year"] or match["year2"]
        minutes = _zone_minutes(match["zone"], match["offset"])
        if month is None or minutes is None:
            return None
        fixed = year is not None
        moment = _epoch_ms(
            int(year) if fixed else time.gmtime(now).tm_year,
            month,
            match["day"],
            match["h"],
            match["m"],
            match["s"],
            match["frac"],
            minutes,
        )
        if moment is not None and not fixed and moment - (now or time.time()) * 1000 > DAY_MS:
            moment = _epoch_ms(
                time.gmtime(now).tm_year - 1, month, match["day"], match["h"], match["m"], match["s"],
                match["frac"], minutes,
            )  # fmt: skip
        return moment
    match = _ISO.match(value)
    if match:
        minutes = 0 if not match["offset"] else _zone_minutes(None, match["offset"])
        return _epoch_ms(
            int(match["year"]), int(match["mon"]), match["day"], match["h"], match["m"], match["s"],
            match["frac"], minutes or 0,
        )  # fmt: skip
    return None


def _zone_minutes(zone: str | None, offset: str | None) -> int | None:
    """Minutes east of UTC for ``UTC``, ``GMT+02:00``, ``+0200``, ``-5``...; None when unknown."""
    base = 0
    if zone:
        if zone.upper() not in _ZONES:
            return None
        base = _ZONES[zone.upper()]
    if not offset:
        return base
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    hours, minutes = (digits, "0") if len(digits) <= 2 else (digits[:-2], digits[-2:])
    return base + sign * (int(hours) * 60 + int(minutes))


def _epoch_ms(
    year: int, month: int, day: str, hour: str, minute: str, second: str, frac: str | None, zone: int
) -> int | None:
    try:
        seconds = calendar.timegm((year, month, int(day), int(hour), int(minute), int(second), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if not (1 <= int(day) <= 31 and int(hour) < 24 and int(minute) < 60 and int(second) < 61):
        return None
    millis = int((frac or "0")[:3].ljust(3, "0"))
    return (seconds - zone * 60) * 1000 + millis


def event_time(event: CefEvent, now: float | None = None) -> int | None:
    """The event's time in epoch milliseconds: ``rt`` (device receipt time), else ``end``."""
    for key in ("rt", "end"):
        value = event.extension.get(key)
        if value:
            moment = parse_time(value, now)
            if moment is not None:
                return moment
    return None


def raw_time_values(extension: bytes) -> list[bytes]:
    """The raw values of ``rt=`` and ``end=`` (in that order, the non-empty ones) in an
    extension, found without parsing it: what ``event_time`` looks at.

    A key starts the extension or follows a space, and a value ends at the space before the
    next ``key=`` (an epoch value at the first space): what ``parse_extension`` would find.
    """
    found = []
    for key in (b"rt=", b"end="):
        if extension.startswith(key):
            start = len(key)
        else:
            at = extension.find(b" " + key)
            if at < 0:
                continue
            start = at + 1 + len(key)
        if extension[start : start + 1].isdigit():
            end = extension.find(b" ", start)
            value = extension[start:] if end < 0 else extension[start:end]
        else:
            following = _NEXT_KEY.search(extension, start)
            value = extension[start : following.start()] if following else extension[start:]
        if value:
            found.append(value)
    return found


_NEXT_KEY = re.compile(rb" " + KEY_PATTERN.encode() + rb"=")
