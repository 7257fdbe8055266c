"""Event times: the forms CEF allows for ``rt``/``end`` (and ISO 8601), as epoch milliseconds.

``parse_time`` reads any of them; ``event_time`` finds a CEF event's time; ``raw_time_values``
finds the raw ``rt``/``end`` values of an extension without parsing it (the encoder's scan).
"""

from __future__ import annotations

import calendar
import re
import time

from forwarder.formats.cef import KEY_PATTERN, CefEvent

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
