"""Unit tests for forwarder.formats.times: the time forms CEF allows (and ISO 8601) as epoch ms."""

from __future__ import annotations

import calendar

import pytest

from forwarder.formats import cef, times


def ms(year: int, month: int, day: int, hour: int, minute: int, second: int, millis: int = 0) -> int:
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) * 1000 + millis


HEADER = "CEF:0|Cato Networks|Cato SASE Platform|1.0|Security|Block|7|"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1589813380000", ms(2020, 5, 18, 14, 49, 40)),
        ("Mon May 18 14:49:40 UTC 2020", ms(2020, 5, 18, 14, 49, 40)),
        ("Thu Dec 31 23:59:59 GMT 2020", ms(2020, 12, 31, 23, 59, 59)),
        ("May 18 2020 14:49:40.123 UTC", ms(2020, 5, 18, 14, 49, 40, 123)),
        ("May 18 2020 14:49:40.123", ms(2020, 5, 18, 14, 49, 40, 123)),
        ("May 18 2020 14:49:40 EST", ms(2020, 5, 18, 19, 49, 40)),
        ("May 18 2020 14:49:40", ms(2020, 5, 18, 14, 49, 40)),
        ("May 18 2020 14:49:40 GMT+02:00", ms(2020, 5, 18, 12, 49, 40)),
        ("May 18 2020 14:49:40 +0530", ms(2020, 5, 18, 9, 19, 40)),
        ("2021-01-01T12:10:30.591Z", ms(2021, 1, 1, 12, 10, 30, 591)),
        ("2021-01-01T12:10:30+01:00", ms(2021, 1, 1, 11, 10, 30)),
        ("May 18 2020 14:49:40 XYZ", None),
        ("yesterday", None),
        ("", None),
        ("Feb 30 2020 25:00:00", None),
    ],
)
def test_parse_time(value: str, expected: int | None) -> None:
    """rev 25's date forms, epoch ms, Cato's Java date and ISO 8601 give epoch ms; others None."""
    assert times.parse_time(value) == expected


def test_time_without_year_is_this_year_or_last() -> None:
    """A year-less date is taken in the current year, or last year when that is over a day ahead."""
    now = ms(2026, 1, 1, 0, 30, 0) / 1000
    assert times.parse_time("Dec 31 23:59:00", now) == ms(2025, 12, 31, 23, 59, 0)
    assert times.parse_time("Jan 01 00:10:00.5 UTC", now) == ms(2026, 1, 1, 0, 10, 0, 500)


def test_event_time_prefers_rt_then_end() -> None:
    """The event's time is rt, else end (rt that does not parse falls through to end)."""
    assert times.event_time(cef.parse(HEADER + "end=1000 rt=2000")) == 2000
    assert times.event_time(cef.parse(HEADER + "end=1000 rt=soon")) == 1000
    assert times.event_time(cef.parse(HEADER + "src=1.1.1.1")) is None


@pytest.mark.parametrize(
    ("extension", "raw"),
    [
        (b"rt=1589813380000 src=1", b"1589813380000"),
        (b"src=1 rt=1589813380000", b"1589813380000"),
        (b"rt=Mon May 18 14:49:40 UTC 2020 src=1", b"Mon May 18 14:49:40 UTC 2020"),
        (b"msg=a rt\\=5 end=7", b"7"),
        (b"start=1 end=Mon May 18 14:49:40 UTC 2020", b"Mon May 18 14:49:40 UTC 2020"),
        (b"msg=no time", None),
    ],
)
def test_raw_time_value_is_found_without_parsing(extension: bytes, raw: bytes | None) -> None:
    """The cheap scan finds rt= (then end=) as the full parser reads it, escaped = ignored."""
    assert times.raw_time_values(extension)[:1] == ([raw] if raw else [])
