"""Unit tests for the fixed-cost time path: forwarder.formats.times' Cato forms and
forwarder.formats.stamps, against the general parser and the syslog module, byte for byte."""

from __future__ import annotations

import calendar
import time
import tracemalloc
from datetime import datetime, timezone

from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from forwarder.config import parse_config
from forwarder.formats import stamps, times
from forwarder.formats.encoder import EventEncoder
from forwarder.formats.records import Record
from forwarder.formats.syslog import pri, rfc3164_prefix, rfc3164_timestamp, rfc5424_prefix

PROPERTY = settings(
    database=None, max_examples=400, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink]
)
NOW = 1764314712.5
LAST_SECOND = times.END_MS // 1000 - 1  # 9999-12-31T23:59:59Z
_MONTH_ENDS = [
    calendar.timegm((year, month, calendar.monthrange(year, month)[1], 23, 59, 59))
    for year in (1970, 1999, 2000, 2023, 2024, 2100, 2400, 9999)
    for month in range(1, 13)
]
# Seconds anywhere from 1970 to 9999, and the last second of months (leap years, centuries) and the next.
SECONDS = st.integers(0, LAST_SECOND) | st.sampled_from(_MONTH_ENDS).flatmap(
    lambda end: st.sampled_from([end, min(end + 1, LAST_SECOND)])
)


def java_date(seconds: int) -> bytes:
    """Java's Date.toString() in UTC, as Cato writes rt."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(seconds)).encode()


# Near misses of Cato's form: parse_time reads some differently (another zone, Feb 29 of a
# common year rolls over, second 60), refuses others; the fixed path must leave them all to it.
_MUTATIONS = [
    (4, 11, b"Feb 29 "),
    (4, 11, b"Feb 30 "),
    (4, 11, b"Apr 31 "),
    (4, 11, b"May 00 "),
    (4, 11, b"may 18 "),
    (17, 20, b"60 "),
    (11, 17, b"24:00:"),
    (20, 24, b"EST "),
    (20, 24, b"PDT "),
    (20, 24, b"XYZ "),
    (24, 28, b"1969"),
    (24, 28, b"0999"),
    (0, 4, b"Foo "),
    (0, 4, b"Mon  "),
    (10, 11, b"  "),
]


@PROPERTY
@given(seconds=SECONDS, millis=st.integers(0, 999))
def test_cato_forms_read_at_fixed_offsets_are_the_general_parsers_times(seconds: int, millis: int) -> None:
    """Java's date and 13-digit epoch ms read by table lookups give parse_time's epoch ms."""
    date = java_date(seconds)
    assert times.cato_date(date) == times.parse_time(date.decode()) == seconds * 1000
    digits = b"%013d" % (seconds * 1000 + millis)
    assert times.fixed_time(digits) == times.parse_time(digits.decode())


@PROPERTY
@given(seconds=SECONDS, mutation=st.sampled_from(_MUTATIONS))
def test_what_is_not_exactly_catos_form_is_left_to_the_general_parser(
    seconds: int, mutation: tuple[int, int, bytes]
) -> None:
    """A near miss of Cato's date is either read exactly as parse_time reads it, or not at all."""
    start, end, part = mutation
    date = java_date(seconds)
    mutated = date[:start] + part + date[end:]
    fixed = times.fixed_time(mutated)
    assert fixed is None or fixed == times.parse_time(mutated.decode())


def expected_header(header: str, severity: int, epoch_ms: int, host: str = "fwd-test") -> bytes:
    """What forwarder.formats.syslog writes for *epoch_ms* (whole milliseconds, no float)."""
    seconds, millis = divmod(epoch_ms, 1000)
    if header == "rfc3164":
        return pri(16, severity) + rfc3164_prefix(rfc3164_timestamp(seconds), host, "cato")
    moment = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return pri(16, severity) + rfc5424_prefix(f"{moment}.{millis:03d}Z", host, "cato")


@PROPERTY
@given(
    seconds=SECONDS,
    millis=st.integers(0, 999),
    severity=st.integers(0, 7),
    header=st.sampled_from(["rfc5424", "rfc3164"]),
)
def test_stamps_from_tables_are_the_syslog_modules_headers(
    seconds: int, millis: int, severity: int, header: str
) -> None:
    """PRI and header put together from the shared tables equal forwarder.formats.syslog's, to the byte."""
    stamper = stamps.Stamper(header, 16, "fwd-test", "cato")
    epoch_ms = seconds * 1000 + millis
    assert stamper.at(severity, epoch_ms) == expected_header(header, severity, epoch_ms)


def encoder(header: str, validate: str = "light") -> EventEncoder:
    pipeline = parse_config(
        f"source: {{bucket: b}}\noutput: {{hostname: fwd-test, header: {header}}}\n"
        f"parser: {{validate: {validate}}}\n",
        env={},
    ).pipeline()
    return EventEncoder(pipeline.output, pipeline.parser, clock=lambda: NOW)


def _rt_value(draw: st.DrawFn) -> bytes:
    seconds, millis = draw(SECONDS), draw(st.integers(0, 999))
    form = draw(st.sampled_from(["epoch", "java", "mutated", "other"]))
    if form == "epoch":
        return b"%013d" % (seconds * 1000 + millis) if seconds < 10**10 else b"%d" % seconds
    if form == "java":
        return java_date(seconds)
    if form == "mutated":
        start, end, part = draw(st.sampled_from(_MUTATIONS))
        date = java_date(seconds)
        return date[:start] + part + date[end:]
    return draw(
        st.sampled_from(
            [b"May 18 2020 14:49:40.5 GMT+02:00", b"2021-01-01T12:10:30.591Z", b"soon", b"12", b"", b"Mon"]
        )
    )


@st.composite
def cef_lines(draw: st.DrawFn) -> bytes:
    """A CEF line whose extension starts with rt= in one of Cato's forms, a near miss or another form."""
    severity = draw(st.sampled_from([b"3", b"7", b"10", b"High", b"Very-High", b"weird"]))
    after = draw(
        st.sampled_from([b"", b" src=10.0.0.1", b" cs2Label=Rule cs2=x", b"  src=1", b" x y=1", b"=1"])
    )
    name = draw(st.sampled_from([b"Block", b"Block rule \\| default", b"a\\\\b"]))
    return (
        b"CEF:0|Cato Networks|Cato SASE Platform|1.0|Security|"
        + name
        + b"|"
        + severity
        + b"|rt="
        + (_rt_value(draw) + after)
    )


@PROPERTY
@given(lines=st.lists(cef_lines(), min_size=1, max_size=5), header=st.sampled_from(["rfc5424", "rfc3164"]))
@example(lines=[b"CEF:0||||||0|rt="], header="rfc5424")  # nothing to remember yet: no empty stamp
@example(lines=[b"CEF:0|a|b|c|d|e|5|rt=1589813380123 x y=1"], header="rfc5424")  # the value goes on
def test_fast_path_messages_are_the_full_parses_byte_for_byte(lines: list[bytes], header: str) -> None:
    """Pass-through's fixed-offset reading gives the messages a full parse of every event gives,
    for any time of 1970-9999 in Cato's forms, their near misses and the other CEF forms."""
    records = [Record(i, "", i + 1, line, "cef") for i, line in enumerate(lines)]
    light = encoder(header).encode(records)
    full = encoder(header, "full").encode(records)
    assert light.messages == full.messages
    assert light.rejected == full.rejected == []


@PROPERTY
@given(seconds=SECONDS, millis=st.integers(0, 999), end=st.sampled_from([b",", b"}", b" ,"]))
def test_json_epoch_time_is_stamped_as_a_full_parse_stamps_it(seconds: int, millis: int, end: bytes) -> None:
    """A JSON event's 13-digit "time" takes the fixed path with the full parse's header."""
    value = seconds * 1000 + millis
    text = b'{"event_type":"Security","time":%d%s"x":1}' % (value, end if end != b"}" else b",")
    record = Record(0, "", 1, text, "json")
    light = encoder("rfc5424").encode([record])
    assert light.messages == encoder("rfc5424", "full").encode([record]).messages
    assert light.messages[0].startswith(expected_header("rfc5424", 5, value))


def test_an_encoder_is_small_and_the_tables_are_shared() -> None:
    """Encoders share the module's tables; each holds only its own settings' parts (a few KB),
    so hundreds of pipelines do not hold hundreds of copies."""
    first = encoder("rfc5424")
    first.encode([Record(0, "", 1, b"CEF:0|a|b|c|d|e|5|rt=" + java_date(1589813380), "cef")])
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        many = [encoder("rfc5424") for _ in range(100)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert many[0]._stamper.tables is first._stamper.tables
    assert grown / len(many) < 16_000
