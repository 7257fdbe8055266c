"""Unit tests for forwarder.formats.syslog: headers, PRI and framing, on exact bytes."""

from __future__ import annotations

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from forwarder.config import OutputConfig, ParserConfig
from forwarder.formats.cef import split_fields
from forwarder.formats.encoder import EventEncoder
from forwarder.formats.records import Record
from forwarder.formats.severity import cef_severity
from forwarder.formats.syslog import (
    BATCH_FRAMERS,
    FRAMERS,
    frame_newline,
    frame_octet_counting,
    pri,
    printusascii,
    rfc3164_timestamp,
    rfc5424_timestamp,
)

# 2025-11-28 07:25:12.125 UTC (.125 is exact in binary, so the milliseconds are too).
NOW = 1764314712.125
CEF = b"CEF:0|Cato Networks|Cato SASE Platform|1.0|Security|Block rule|7|rt=1 msg=x"
JSON = b'{"event_type": "Security"}'


def cef_with_severity(severity: str) -> bytes:
    return f"CEF:0|Cato Networks|Cato SASE Platform|1.0|Security|Rule|{severity}|act=Block".encode()


def record(text: bytes, kind: str = "cef") -> Record:
    return Record(0, "", 1, text, kind)


class Encoder:
    """The production encoder, stamping with the time a batch is sent (header_time: now), the
    text unchecked (invalid_utf8: keep)."""

    def __init__(self, encoder: EventEncoder) -> None:
        self._encoder = encoder

    def encode_batch(self, records: list[Record]) -> list[bytes]:
        return self._encoder.encode(records).messages


def encoder(clock_calls: list[float] | None = None, **output: str) -> Encoder:
    """An encoder for host "fwd01.example.com" with a fixed clock (counting its calls)."""

    def clock() -> float:
        if clock_calls is not None:
            clock_calls.append(NOW)
        return NOW

    settings = {"hostname": "fwd01.example.com", "header_time": "now", **output}
    return Encoder(EventEncoder(OutputConfig(**settings), ParserConfig(invalid_utf8="keep"), clock=clock))  # type: ignore[arg-type]


def test_rfc5424_message_exact_bytes() -> None:
    """RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME - - - MSG, time in UTC with milliseconds."""
    [message] = encoder(header="rfc5424").encode_batch([record(CEF)])
    assert message == b"<131>1 2025-11-28T07:25:12.125Z fwd01.example.com cato - - - " + CEF


def test_rfc3164_message_exact_bytes() -> None:
    """RFC 3164: <PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG."""
    [message] = encoder(header="rfc3164").encode_batch([record(CEF)])
    assert message == b"<131>Nov 28 07:25:12 fwd01.example.com cato: " + CEF


def test_header_none_leaves_the_body_unchanged() -> None:
    """header none sends the event text alone, byte for byte."""
    texts = [CEF, JSON, "CEF:0|x|Zürich|1|2|3|5|".encode() + b"\xff"]
    kinds = ["cef", "json", "cef"]
    assert (
        encoder(header="none").encode_batch([record(t, k) for t, k in zip(texts, kinds, strict=True)])
        == texts
    )


def test_app_name_is_used_in_both_headers() -> None:
    """output.app_name becomes APP-NAME (RFC 5424) and TAG (RFC 3164)."""
    assert encoder(app_name="catofw").encode_batch([record(JSON, "json")]) == [
        b"<133>1 2025-11-28T07:25:12.125Z fwd01.example.com catofw - - - " + JSON
    ]
    assert encoder(app_name="catofw", header="rfc3164").encode_batch([record(JSON, "json")]) == [
        b"<133>Nov 28 07:25:12 fwd01.example.com catofw: " + JSON
    ]


def test_one_timestamp_per_batch() -> None:
    """The clock is read once per batch, and every message of the batch carries that time."""
    calls: list[float] = []
    messages = encoder(calls).encode_batch([record(CEF), record(JSON, "json"), record(CEF)])
    assert len(calls) == 1
    assert [m[:5] for m in messages] == [b"<131>", b"<133>", b"<131>"]
    assert len({m[5:].split(b" - - - ")[0] for m in messages}) == 1


@pytest.mark.parametrize(
    ("epoch", "rfc5424", "rfc3164"),
    [
        (NOW, "2025-11-28T07:25:12.125Z", "Nov 28 07:25:12"),
        (1764576000.0, "2025-12-01T08:00:00.000Z", "Dec  1 08:00:00"),
        (0.5, "1970-01-01T00:00:00.500Z", "Jan  1 00:00:00"),
        (1709251199.999, "2024-02-29T23:59:59.999Z", "Feb 29 23:59:59"),
    ],
)
def test_timestamps(epoch: float, rfc5424: str, rfc3164: str) -> None:
    """RFC 5424 time is ISO 8601 UTC with milliseconds; RFC 3164 pads a one-digit day with a space."""
    assert rfc5424_timestamp(epoch) == rfc5424
    assert rfc3164_timestamp(epoch) == rfc3164


@pytest.mark.parametrize(
    ("severity", "syslog"),
    [
        ("0", 6), ("1", 6), ("2", 6), ("3", 6),
        ("4", 4), ("5", 4), ("6", 4),
        ("7", 3), ("8", 3),
        ("9", 2), ("10", 2),
        ("Low", 6), ("Medium", 4), ("High", 3), ("Very-High", 2),
        ("low", 6), ("MEDIUM", 4), (" High ", 3), ("very high", 2),
        ("11", 5), ("-1", 5), ("Unknown", 5), ("", 5),
    ],
)  # fmt: skip
def test_cef_severity_maps_to_syslog_severity(severity: str, syslog: int) -> None:
    """CEF 0-3/Low → 6, 4-6/Medium → 4, 7-8/High → 3, 9-10/Very-High → 2, anything else → 5."""
    assert cef_severity(cef_with_severity(severity)) == syslog


@pytest.mark.parametrize(
    ("severity", "prival"),
    [("0", 134), ("3", 134), ("4", 132), ("6", 132), ("7", 131), ("8", 131), ("9", 130), ("10", 130),
     ("Low", 134), ("Medium", 132), ("High", 131), ("Very-High", 130)],
)  # fmt: skip
def test_pri_for_local0_follows_cef_severity(severity: str, prival: int) -> None:
    """With facility local0 (16) PRI is 128 + the syslog severity taken from the CEF header."""
    [message] = encoder(header="rfc3164").encode_batch([record(cef_with_severity(severity))])
    assert message.startswith(b"<%d>Nov 28 " % prival)


def test_json_record_is_notice() -> None:
    """A JSON record gets severity notice (5): PRI 133 with local0."""
    [message] = encoder().encode_batch([record(JSON, "json")])
    assert message.startswith(b"<133>1 ")


@pytest.mark.parametrize(
    ("text", "syslog"),
    [
        (b"CEF:0|Cato|SASE|1.0|Security|Block \\| rule|9|act=Block", 2),
        (b"CEF:0|Cato|SASE|1.0|Sec\\|urity|Block \\| rule \\| again|1|act=Block", 6),
        (b"CEF:0|Cato|SASE|1.0|Security|path C:\\\\|7|x=1", 3),
        (b"CEF:0|Cato|SASE|1.0|Security|Rule \\\\\\| x|High|x=1", 3),
        (b"CEF:0|Cato|SASE|1.0|Security|Rule|8|msg=a\\|b 10", 3),
    ],
)
def test_escaped_pipes_in_the_header_do_not_shift_the_severity(text: bytes, syslog: int) -> None:
    """\\| inside a header field is part of the field; \\\\ is an escaped backslash before a real |."""
    assert cef_severity(text) == syslog


@pytest.mark.parametrize(
    "text",
    [b"CEF:0|Cato|SASE|1.0|Security|Rule", b"CEF:0|Cato|SASE|1.0|Security|Rule \\| x", b"CEF:0"],
)
def test_cef_without_severity_field_is_notice(text: bytes) -> None:
    """A CEF header too short to hold a Severity field gives notice (5)."""
    assert cef_severity(text) == 5


@pytest.mark.parametrize(
    ("facility", "severity", "expected"),
    [(0, 0, b"<0>"), (16, 6, b"<134>"), (16, 2, b"<130>"), (23, 7, b"<191>"), (1, 5, b"<13>")],
)
def test_pri(facility: int, severity: int, expected: bytes) -> None:
    """PRI is "<" facility * 8 + severity ">"."""
    assert pri(facility, severity) == expected


@pytest.mark.parametrize(("facility", "prival"), [("kern", 5), ("user", 13), ("local7", 189)])
def test_configured_facility_sets_pri(facility: str, prival: int) -> None:
    """output.facility is the PRI's facility (JSON, severity 5, shown)."""
    [message] = encoder(facility=facility).encode_batch([record(JSON, "json")])
    assert message.startswith(b"<%d>1 " % prival)


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("fwd01.example.com", 255, "fwd01.example.com"),
        ("my host name", 255, "myhostname"),
        ("zürich-hq", 255, "zrich-hq"),
        ("東京", 255, "-"),
        ("", 255, "-"),
        (" \t\n", 255, "-"),
        ("a" * 60, 48, "a" * 48),
    ],
)
def test_printusascii(value: str, limit: int, expected: str) -> None:
    """Header fields keep only %d33-126, are cut at the limit, and are "-" when nothing is left."""
    assert printusascii(value, limit) == expected


def test_hostname_and_app_name_are_cleaned_in_the_header() -> None:
    """A hostname with spaces or non-ASCII characters cannot break the header's fields."""
    enc = encoder(hostname="fw 01 zürich", app_name="cato app")
    [message] = enc.encode_batch([record(JSON, "json")])
    assert message == b"<133>1 2025-11-28T07:25:12.125Z fw01zrich catoapp - - - " + JSON
    enc = encoder(hostname="東京", app_name="cato app!", header="rfc3164")
    [message] = enc.encode_batch([record(JSON, "json")])
    assert message == b"<133>Nov 28 07:25:12 - catoapp: " + JSON


def test_empty_hostname_uses_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty output.hostname means this machine's hostname."""
    monkeypatch.setattr("socket.gethostname", lambda: "this-box")
    [message] = encoder(hostname="").encode_batch([record(JSON, "json")])
    assert message.split(b" ")[2] == b"this-box"


@pytest.mark.parametrize(
    ("message", "frame"),
    [
        (b"hello", b"5 hello"),
        (b"", b"0 "),
        ("Zürich".encode(), b"7 Z\xc3\xbcrich"),
        (b"a\nb", b"3 a\nb"),
        (b"x" * 1234, b"1234 " + b"x" * 1234),
    ],
)
def test_octet_counting_frame(message: bytes, frame: bytes) -> None:
    """Octet counting is "<length in octets> <message>" (RFC 6587 3.4.1)."""
    assert frame_octet_counting(message) == frame
    assert FRAMERS["octet_counting"](message) == frame


@pytest.mark.parametrize(
    ("message", "frame"), [(b"hello", b"hello\n"), ("Zürich".encode(), b"Z\xc3\xbcrich\n")]
)
def test_newline_frame(message: bytes, frame: bytes) -> None:
    """Newline framing appends one LF (RFC 6587 3.4.2)."""
    assert frame_newline(message) == frame
    assert FRAMERS["newline"](message) == frame


def severity_field_byte_by_byte(text: bytes) -> bytes | None:
    """CEF's 7th header field found the slow, obvious way: a backslash takes the next byte."""
    field_no, start, i = 0, 0, 0
    while i < len(text):
        if text[i] == 0x5C:
            i += 2
            continue
        if text[i] == 0x7C:
            field_no += 1
            if field_no == 7:
                return text[start:i]
            start = i + 1
        i += 1
    return None


@settings(
    database=None,
    max_examples=500,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
@given(st.binary(max_size=40).map(lambda b: bytes(b"a|\\5"[x % 4] for x in b)))
def test_severity_field_honours_escapes_like_a_byte_by_byte_parse(text: bytes) -> None:
    """Any mix of pipes, backslashes and other bytes gives the field a byte-by-byte parse gives
    (a backslash takes the next byte literally), and the encoder's PRI agrees with cef_severity
    for every event it sends (a header that is not CEF is not sent: see test_encoding)."""
    cut = split_fields(text, 7)
    assert (cut[6] if len(cut) > 7 else None) == severity_field_byte_by_byte(text)
    for message in encoder(header="rfc3164").encode_batch([record(b"CEF:0|" + text)]):
        assert message.startswith(b"<%d>" % (128 + cef_severity(b"CEF:0|" + text)))


@pytest.mark.parametrize("framing", list(FRAMERS))
@pytest.mark.parametrize("messages", [[], [b"a"], [b"hello", b"", "Zürich".encode(), b"x" * 1234]])
def test_batch_framers_give_the_frames_back_to_back(framing: str, messages: list[bytes]) -> None:
    """A batch framed in one go is exactly its messages' frames joined."""
    assert BATCH_FRAMERS[framing](messages) == b"".join(FRAMERS[framing](m) for m in messages)
