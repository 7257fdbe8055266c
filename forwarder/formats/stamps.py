"""The syslog header of an event at a fixed cost, whatever its time: parts looked up, never formatted.

A message is PRI, the header and the text. The header is put together from parts::

    <134>1 2026-11-28T07:25:12.123Z HOSTNAME APP-NAME - - - CEF:0|...
    PRI  |---- day ---||min-||s.||ms||------ tail -------| text
    <134>Nov 28 07:25:12 HOSTNAME TAG: CEF:0|...           (RFC 3164: no milliseconds)

- the day (``1 2026-11-28T``; RFC 3164 ``Nov 28 ``) from a cache by epoch day;
- the minute of the day (``07:25:``) and the second (``12.``) from tables of 1440 and 60;
- the milliseconds (``123Z``), looked up by the three digits and the byte after them in the
  text, which checks the value's end in the same lookup;
- the tail: the only part that depends on the settings (hostname, app-name), kept per
  ``Stamper``.

Cato's ``rt=Mon May 18 14:49:40 UTC 2020`` needs no arithmetic at all: its parts are
checked at fixed offsets against ``formats.times``' tables and rearranged
(``1 2020`` + ``-05-18T`` + ``14:49:40`` + ``.000Z`` + tail).

Measured (benchmark CEF events, per event): 0.65 µs for an epoch value whatever the
second, 0.77 µs for a Cato date; the per-second cache this replaced took 0.37 µs when
events shared a second and 10-30 µs (a full parse) for a Cato date that did not.

The tables hold nothing of the settings, so they are the module's: built on first use
(not at import) and shared by every encoder of the process — an MSSP's hundreds of
pipelines have one set (~200 KB), not one each. The day cache is bounded
(``formats.cache``).
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from dataclasses import dataclass, field

from forwarder.formats import times
from forwarder.formats.cache import remember
from forwarder.formats.cef import KEY_PATTERN
from forwarder.formats.syslog import (
    MONTHS,
    pri,
    rfc3164_prefix,
    rfc3164_timestamp,
    rfc5424_prefix,
    rfc5424_timestamp,
)

_KEY_FOLLOWS = re.compile(rb" " + KEY_PATTERN.encode() + rb"=")


@dataclass
class Tables:
    """The parts of one header kind's timestamps (see the module docstring)."""

    header: str
    minutes: list[bytes]  # minute of the day -> b"07:25:"
    seconds: list[bytes]  # second -> b"12." (RFC 3164: b"12")
    millis: list[bytes]  # 0-999 -> b"123Z" (RFC 3164: b"")
    cef_millis: dict[bytes, bytes]  # b"123" -> b"123Z" (RFC 3164: b"")
    # By the three digits after an epoch's seconds and the byte after them (",", "}", " ").
    json_millis: dict[bytes, bytes]
    # A Cato date's b"Mon May 18 " -> b"-05-18T" (RFC 3164: b"May 18 "); Feb 29 is leap_day.
    dates: dict[bytes, bytes]
    leap_day: bytes
    zero_millis: bytes  # b".000Z" (RFC 3164: b"")
    days: dict[int, bytes] = field(default_factory=dict)  # epoch day -> b"1 2026-11-28T"
    years: dict[bytes, bytes] = field(default_factory=dict)  # b"UTC 2020" -> b"1 2020" (RFC 3164: b"")
    clock_minutes: dict[bytes, int] = field(default_factory=lambda: times.cato_tables().clock_minutes)
    clock_seconds: dict[bytes, int] = field(default_factory=lambda: times.cato_tables().clock_seconds)

    def day(self, day: int) -> bytes:
        """The day part for *day* days after 1970-01-01 (before year 10000), cached."""
        text = self.days.get(day)
        if text is None:
            year, month, mday = time.gmtime(day * 86400)[:3]
            if self.header == "rfc5424":
                text = b"1 %04d-%02d-%02dT" % (year, month, mday)
            else:
                text = b"%s %2d " % (MONTHS[month - 1].encode(), mday)
            remember(self.days, day, text)
        return text

    def year(self, zone_year: bytes) -> bytes | None:
        """The year part of a Cato date's b"UTC 2020" (None unless UTC or GMT, 1970-9999), cached."""
        text = self.years.get(zone_year)
        if text is None:
            year = zone_year[4:]
            if zone_year[:4] not in times.cato_tables().zones or times.cato_year(year) is None:
                return None
            text = remember(self.years, zone_year, b"1 " + year if self.header == "rfc5424" else b"")
        return text


@functools.cache
def tables(header: str) -> Tables:
    """The module's tables for *header* (``rfc5424`` or ``rfc3164``), built on first use."""
    rfc5424 = header == "rfc5424"
    millis = [b"%03dZ" % ms if rfc5424 else b"" for ms in range(1000)]
    leap_day = b"-02-29T" if rfc5424 else b"Feb 29 "
    dates = {}
    for key, (month, day) in times.cato_tables().dates.items():
        if (month, day) == (2, 29):
            dates[key] = leap_day  # the same object: the leap year check is "is"
        else:
            dates[key] = b"-%02d-%02dT" % (month, day) if rfc5424 else b"%s %2d " % (key[4:7], day)
    return Tables(
        header,
        minutes=[b"%02d:%02d:" % divmod(minute, 60) for minute in range(1440)],
        seconds=[(b"%02d." if rfc5424 else b"%02d") % second for second in range(60)],
        millis=millis,
        cef_millis={b"%03d" % ms: millis[ms] for ms in range(1000)},
        json_millis={b"%03d%s" % (ms, end): millis[ms] for ms in range(1000) for end in (b",", b"}", b" ")},
        dates=dates,
        leap_day=leap_day,
        zero_millis=b".000Z" if rfc5424 else b"",
    )


class Stamper:
    """PRI and header for one encoder's settings; the parts come from the shared ``tables``."""

    def __init__(self, header: str, facility: int, hostname: str, app_name: str) -> None:
        self.header = header
        self.pri = [pri(facility, severity) for severity in range(8)]
        self._hostname, self._app_name = hostname, app_name
        self.tables = tables(header)
        prefix = self._prefix(0)
        # What follows the time: b" HOSTNAME APP-NAME - - - " (RFC 3164: b" HOSTNAME TAG: ").
        self.tail = prefix[prefix.index(b" ", 2 if header == "rfc5424" else 15) :]
        self._key_after = b" rt="  # the `` key=`` after an rt value met last
        # The event before's time and header part: a one-entry memo per form (see _seconds).
        # (None matches no slice: a memo holds only values that were checked.)
        self._last_digits: bytes | None = None
        self._last_date: bytes | None = None
        self._last_seconds = self._last_date_stamp = b""

    def _prefix(self, seconds: float) -> bytes:
        if self.header == "rfc5424":
            return rfc5424_prefix(rfc5424_timestamp(seconds), self._hostname, self._app_name)
        return rfc3164_prefix(rfc3164_timestamp(seconds), self._hostname, self._app_name)

    def now(self, seconds: float) -> list[bytes]:
        """PRI and header at *seconds*, per severity (``header_time: now``, and events without a time)."""
        prefix = self._prefix(seconds)
        return [p + prefix for p in self.pri]

    def at(self, severity: int, epoch_ms: int) -> bytes | None:
        """PRI and header for an event at *epoch_ms*; None when the header cannot write it."""
        if not 0 <= epoch_ms < times.END_MS:
            return None
        seconds, millis = divmod(epoch_ms, 1000)
        day, second = divmod(seconds, 86400)
        minute, second = divmod(second, 60)
        t = self.tables
        date = t.days.get(day) or t.day(day)
        return b"".join(
            (self.pri[severity], date, t.minutes[minute], t.seconds[second], t.millis[millis], self.tail)
        )

    def _seconds(self, digits: bytes) -> bytes | None:
        """The header from the day to the second (``1 2026-11-28T07:25:12.``) for 10 *digits*
        of epoch seconds; None when they are not digits. Kept for the next event: callers
        compare with ``_last_digits`` first, so events that share a second skip the
        arithmetic and this call (0.35 µs), others pay one comparison (0.03)."""
        if not digits.isdigit():
            return None
        t = self.tables
        day, second = divmod(int(digits), 86400)
        minute, second = divmod(second, 60)
        self._last_seconds = b"".join((t.days.get(day) or t.day(day), t.minutes[minute], t.seconds[second]))
        self._last_digits = digits
        return self._last_seconds

    def rt(self, prival: bytes, ext: bytes, text: bytes) -> bytes | None:
        """The message for a CEF *text* whose extension *ext* starts with ``rt=`` and one of
        Cato's forms (13 digits of epoch ms, or Java's date); None for any other value."""
        if ext[:3] != b"rt=":
            return None
        millis = self.tables.cef_millis.get(ext[13:16])
        if millis is not None:  # rt=<10 digits of seconds><3 of ms>
            digits = ext[3:13]
            stamp = self._last_seconds if digits == self._last_digits else self._seconds(digits)
            if stamp is None or not self._ends(ext, 16):
                return None
            return b"".join((prival, stamp, millis, self.tail, text))
        # rt=Mon May 18 14:49:40 UTC 2020, at formats.times' offsets 3 bytes on
        date = ext[3:31]
        if date == self._last_date:
            stamp = self._last_date_stamp
        else:
            stamp = self._date(date)
            if stamp is None:
                return None
        if not self._ends(ext, 31):
            return None
        return b"".join((prival, stamp, self.tail, text))

    def _date(self, date: bytes) -> bytes | None:
        """The header from the year to the milliseconds (``1 2020-05-18T14:49:40.000Z``) for
        a Cato *date*, kept for the next event; None when it is not exactly that form."""
        t = self.tables
        day = t.dates.get(date[:11])
        if day is None or date[11:17] not in t.clock_minutes or date[17:20] not in t.clock_seconds:
            return None
        year = t.years.get(date[20:28]) or t.year(date[20:28])
        if year is None or (day is t.leap_day and not calendar.isleap(int(date[24:28]))):
            return None
        self._last_date_stamp = b"".join((year, day, date[11:19], t.zero_millis))
        self._last_date = date
        return self._last_date_stamp

    def _ends(self, ext: bytes, at: int) -> bool:
        """True when a value of *ext* ends at *at*: the extension's end, or `` key=`` (else the
        value goes on: ``rt=1589813380123 x y=1`` is ``1589813380123 x``, no time).

        The key met last is tried first (one startswith, 0.06 µs; the match 0.14 µs)."""
        if len(ext) <= at or ext.startswith(self._key_after, at):
            return True
        found = _KEY_FOLLOWS.match(ext, at)
        if found is None:
            return False
        self._key_after = found.group()
        return True

    def json(self, prival: bytes, text: bytes, at: int) -> bytes | None:
        """The message for a JSON *text* whose ``"time"`` value starts at *at*, when it is 13
        digits of epoch ms; None otherwise."""
        millis = self.tables.json_millis.get(text[at + 10 : at + 14])
        if millis is None:
            return None
        digits = text[at : at + 10]
        stamp = self._last_seconds if digits == self._last_digits else self._seconds(digits)
        if stamp is None:
            return None
        return b"".join((prival, stamp, millis, self.tail, text))
