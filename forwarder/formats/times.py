"""Event times: the forms CEF allows for ``rt``/``end`` (and ISO 8601), as epoch milliseconds.

``parse_time`` reads any of them; ``event_time`` finds a CEF event's time; ``raw_time_values``
finds the raw ``rt``/``end`` values of an extension without parsing it (the encoder's scan).
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from typing import NamedTuple

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
    next ``key=``: what ``parse_extension`` would find (``rt=123 x y=1`` is ``123 x``).
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
        following = _NEXT_KEY.search(extension, start)
        value = extension[start : following.start()] if following else extension[start:]
        if value:
            found.append(value)
    return found


_NEXT_KEY = re.compile(rb" " + KEY_PATTERN.encode() + rb"=")


# --- Cato's two forms at a fixed cost -------------------------------------------------------
# Cato writes rt as Java's Date.toString() ("EEE MMM dd HH:mm:ss zzz yyyy", zone UTC) and
# its JSON time as 13-digit epoch milliseconds. Both are read here at fixed offsets with
# table lookups: no regular expression, no calendar.timegm (parse_time takes ~3 µs a value
# and a regular expression, this ~1 µs and none). Whatever is not exactly such a value
# (another zone, a day the month does not have, second 60, a year before 1970...) is left
# to parse_time, which decides.
#
#   Mon May 18 14:49:40 UTC 2020
#   0          11    17 20      28
CATO_DATE_LENGTH = 28
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_LENGTHS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Days from 1970-01-01 to the first of each month, in a common and in a leap year.
_MONTH_STARTS = tuple(
    tuple(sum(_MONTH_LENGTHS[:m]) - (m >= 2) * (1 - leap) for m in range(12)) for leap in (0, 1)
)


class CatoTables(NamedTuple):
    """The parts of a Cato date, each a table: what is not in them is not this form."""

    dates: dict[bytes, tuple[int, int]]  # b"Mon May 18 " -> (5, 18): every day a month can have
    clock_minutes: dict[bytes, int]  # b"14:49:" -> minutes into the day
    clock_seconds: dict[bytes, int]  # b"40 " -> 40 (not 60: a leap second is parse_time's)
    zones: frozenset[bytes]  # b"UTC ", b"GMT "


@functools.cache
def cato_tables() -> CatoTables:
    """The tables, built on first use (~3,900 entries, shared by the process)."""
    return CatoTables(
        dates={
            b"%s %s %02d " % (weekday.encode(), calendar.month_abbr[month].encode(), day): (month, day)
            for weekday in _WEEKDAYS
            for month in range(1, 13)
            for day in range(1, _MONTH_LENGTHS[month - 1] + 1)
        },
        clock_minutes={b"%02d:%02d:" % divmod(minute, 60): minute for minute in range(1440)},
        clock_seconds={b"%02d " % second: second for second in range(60)},
        zones=frozenset((b"UTC ", b"GMT ")),
    )


def year_days(year: int) -> int:
    """Days from 1970-01-01 to January 1 of *year* (1970 or later)."""
    before = year - 1
    return (
        365 * (year - 1970) + before // 4 - before // 100 + before // 400 - 477
    )  # 477 leap years before 1970


def cato_year(digits: bytes) -> int | None:
    """The year of a Cato date's last four bytes; None unless 1970-9999."""
    return int(digits) if len(digits) == 4 and digits.isdigit() and digits >= b"1970" else None


def cato_date(raw: bytes) -> int | None:
    """Epoch ms of exactly ``Mon May 18 14:49:40 UTC 2020`` (any weekday name, UTC or GMT, a
    real day of a year from 1970), read at fixed offsets; None for anything else (which
    ``parse_time`` may still read)."""
    if len(raw) != CATO_DATE_LENGTH:
        return None
    tables = cato_tables()
    date = tables.dates.get(raw[:11])
    minutes = tables.clock_minutes.get(raw[11:17])
    second = tables.clock_seconds.get(raw[17:20])
    year = cato_year(raw[24:28])
    if date is None or minutes is None or second is None or year is None or raw[20:24] not in tables.zones:
        return None
    month, day = date
    leap = calendar.isleap(year)
    if month == 2 and day == 29 and not leap:
        return None
    days = year_days(year) + _MONTH_STARTS[leap][month - 1] + day - 1
    return (days * 86400 + minutes * 60 + second) * 1000


def fixed_time(raw: bytes) -> int | None:
    """Epoch ms of a raw time value in one of Cato's forms (epoch ms digits, Java's date),
    read at a fixed cost; None when it is in neither (ask ``parse_time``)."""
    if raw.isdigit():
        return in_range(epoch_digits(raw))
    return cato_date(raw)
