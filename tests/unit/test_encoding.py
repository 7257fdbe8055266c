"""Unit tests for forwarder.formats.encoder: the header from the event, the encodings, what is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from forwarder.config import Config, parse_config
from forwarder.errors import ConfigError
from forwarder.formats import cef, jsonevents, leef
from forwarder.formats.cef import CefEvent
from forwarder.formats.encoder import EventEncoder
from forwarder.formats.jsonevents import cef_from_json
from forwarder.formats.records import Record
from forwarder.formats.severity import cef_severity
from forwarder.formats.syslog import (
    pri,
    rfc3164_prefix,
    rfc3164_timestamp,
    rfc5424_prefix,
    rfc5424_timestamp,
)

PROPERTY = settings(
    database=None, max_examples=200, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink]
)
NOW = 1764314712.5  # 2025-11-28T07:25:12.500Z


def config(output: str = "", parser: str = "") -> Config:
    return parse_config(
        f"source:\n  bucket: b\noutput:\n  hostname: fwd-test\n{output}parser:\n  format: auto\n{parser}",
        env={},
    )


def encoder(output: str = "", parser: str = "") -> EventEncoder:
    pipeline = config(output, parser).pipeline()
    return EventEncoder(pipeline.output, pipeline.parser, clock=lambda: NOW)


def cef_record(text: str | bytes, ordinal: int = 0) -> Record:
    return Record(ordinal, "", ordinal + 1, text.encode() if isinstance(text, str) else text, "cef")


def json_record(value: object, ordinal: int = 0) -> Record:
    text = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    return Record(ordinal, "", ordinal + 1, text, "json")


CATO = "CEF:0|Cato Networks||1.0|Security|Block|7|rt=Mon May 18 14:49:40 UTC 2020 src=10.0.0.1"


def test_cato_date_is_the_syslog_timestamp() -> None:
    """rt=Mon May 18 14:49:40 UTC 2020 stamps the message 2020-05-18T14:49:40.000Z (cached or not)."""
    enc = encoder()
    first, second = enc.encode([cef_record(CATO), cef_record(CATO, 1)]).messages
    assert first == second == b"<131>1 2020-05-18T14:49:40.000Z fwd-test cato - - - " + CATO.encode()


@pytest.mark.parametrize(
    ("extension", "stamp"),
    [
        ("rt=1589813380123 a=1", b"2020-05-18T14:49:40.123Z"),
        ("a=1 rt=1589813380123", b"2020-05-18T14:49:40.123Z"),
        ("rt=1589813380123", b"2020-05-18T14:49:40.123Z"),
        ("end=May 18 2020 14:49:40.5 GMT+02:00", b"2020-05-18T12:49:40.500Z"),
        ("rt=not a time end=1589813380000", b"2020-05-18T14:49:40.000Z"),
        ("src=1.1.1.1", b"2025-11-28T07:25:12.500Z"),
        ("rt=99999999999999999", b"2025-11-28T07:25:12.500Z"),
        ("rt=15898133801234 a=1", b"2473-10-16T04:16:41.234Z"),
    ],
)
def test_rfc5424_time_from_rt_or_end_else_now(extension: str, stamp: bytes) -> None:
    """The event's rt (else end) in any CEF form; now for none or one RFC 5424 cannot write."""
    text = "CEF:0|V|P|1|id|n|3|" + extension
    assert encoder().encode([cef_record(text)]).messages == [
        b"<134>1 " + stamp + b" fwd-test cato - - - " + text.encode()
    ]


def test_rfc3164_and_none_headers() -> None:
    """RFC 3164 takes the event's second; header none is the text alone."""
    [message] = encoder("  header: rfc3164\n").encode([cef_record(CATO)]).messages
    assert message == b"<131>May 18 14:49:40 fwd-test cato: " + CATO.encode()
    assert encoder("  header: none\n").encode([cef_record(CATO)]).messages == [CATO.encode()]


def test_header_time_now() -> None:
    """output.header_time: now stamps when it is sent, as before."""
    [message] = encoder("  header_time: now\n").encode([cef_record(CATO)]).messages
    assert message.startswith(b"<131>1 2025-11-28T07:25:12.500Z fwd-test cato - - - ")


def test_json_severity_and_time() -> None:
    """A JSON event's severity member sets PRI, its time (or creationTime) the timestamp."""
    records = [
        json_record({"severity": "High", "time": 1589813380123}),
        json_record({"creationTime": "2020-05-18T14:49:40Z", "severity": 9}),
        json_record({"time": 1589813380123, "x": 1}),
        json_record({"a": 1}),
    ]
    heads = [m.split(b" fwd-test")[0] for m in encoder().encode(records).messages]
    assert heads == [
        b"<131>1 2020-05-18T14:49:40.123Z",
        b"<130>1 2020-05-18T14:49:40.000Z",
        b"<133>1 2020-05-18T14:49:40.123Z",
        b"<133>1 2025-11-28T07:25:12.500Z",
    ]


def test_header_time_now_is_pri_then_the_batch_time_then_the_text() -> None:
    """With header_time now, passthrough writes PRI (facility and the event's severity), the
    header of the batch's time and the text unchanged: the syslog module's pure functions."""
    records = [
        cef_record(f"CEF:0|V|P|1|id|n \\| x|{sev}|rt=1589813380123 a=1", i)
        for i, sev in enumerate(["0", "5", "Very-High", "x", ""])
    ]
    records += [json_record({"a": "é"}, 9), cef_record("CEF:0|a\\\\|b|c|d|e|8|x=1", 10)]
    for header, prefix in (
        ("rfc5424", rfc5424_prefix(rfc5424_timestamp(NOW), "fwd-test", "cato")),
        ("rfc3164", rfc3164_prefix(rfc3164_timestamp(NOW), "fwd-test", "cato")),
    ):
        expected = [
            pri(16, cef_severity(r.text) if r.kind == "cef" else 5) + prefix + r.text for r in records
        ]
        assert encoder(f"  header_time: now\n  header: {header}\n").encode(records).messages == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("CEF:0|Cato|SASE|1.0|Security", "CEF header has 4 of its 7 '|'-separated fields"),
        ("CEF:0|a|b|c|d\\|e|f|5", "CEF header has fewer than 7 unescaped '|'-separated fields"),
        ("CEF:x|a|b|c|d|e|5|k=1", "CEF version is not a number (b'x')"),
        ("CEF:0|a|b|c|d|e|5|garbage k=1", "CEF extension: text before the first key=value (b'garbage k=1')"),
    ],
)
def test_light_validation_rejects_malformed_cef(text: str, reason: str) -> None:
    """Passthrough checks the CEF header it splits for the severity anyway; good records go on."""
    good = cef_record("CEF:0|a|b|c|d|e|5|k=1", 1)
    encoded = encoder().encode([cef_record(text), good])
    assert encoded.rejected == [(cef_record(text), reason)]
    assert encoded.records == [good] and len(encoded.messages) == 1


def test_full_validation_rejects_what_light_lets_through() -> None:
    """validate: full parses every record: invalid JSON in {...} and bad CEF extensions."""
    records = [
        json_record(b'{"a": nope}'),
        cef_record("CEF:0|a|b|c|d|e|5|rt=1 x"),
        cef_record("CEF:0|a|b|c|d|e|5|k=1"),
    ]
    assert encoder().encode(records).rejected == []
    rejected = encoder(parser="  validate: full\n").encode(records).rejected
    assert [reason for _, reason in rejected] == ["invalid JSON: Expecting value (column 7)"]
    records[1] = cef_record("CEF:0|a|b|c|d|e|5|x rt=1")
    assert [r for _, r in encoder(parser="  validate: full\n").encode(records).rejected][1] == (
        "CEF extension: text before the first key=value ('x')"
    )


@pytest.mark.parametrize(
    ("policy", "sent", "outcome"),
    [
        ("replace", b"CEF:0|a|b|c|d|e|5|msg=Z\xef\xbf\xbdrich", "repaired"),
        ("reject", None, "rejected"),
        ("keep", b"CEF:0|a|b|c|d|e|5|msg=Z\xfcrich", None),
    ],
)
def test_invalid_utf8_policy(policy: str, sent: bytes | None, outcome: str | None) -> None:
    """replace: sent with U+FFFD and reported repaired; reject: not sent; keep: sent unchecked."""
    record = cef_record(b"CEF:0|a|b|c|d|e|5|msg=Z\xfcrich")
    for encoding in ("passthrough", "cef"):
        encoded = encoder(f"  header: none\n  encoding: {encoding}\n", f"  invalid_utf8: {policy}\n").encode(
            [record]
        )
        assert encoded.messages == ([sent] if sent else [])
        assert [r for r, _ in encoded.repaired] == ([record] if outcome == "repaired" else [])
        assert [r for r, _ in encoded.rejected] == ([record] if outcome == "rejected" else [])
        for _, reason in encoded.repaired + encoded.rejected:
            assert reason.startswith("invalid UTF-8 at byte 23")


SOURCE_CEF = (
    "CEF:0|Cato Networks||1.0|Security|Pipe \\| and backslash \\\\|7|rt=1589813380123 "
    "msg=equals \\= backslash \\\\ newline \\n bare | pipe cs1=Ünïcödé 日本語 spt=1234 suser=jörg"
)
SOURCE_JSON = {
    "event_type": "Security",
    "event_sub_type": "IPS",
    "severity": "Medium",
    "time": 1589813380123,
    "src_ip": "10.0.0.1",
    "msg": "equals = backslash \\ newline \n bare | pipe Ünïcödé 日本語",
}


def bodies(encoding: str) -> list[bytes]:
    enc = encoder(f"  header: none\n  encoding: {encoding}\n")
    encoded = enc.encode([cef_record(SOURCE_CEF), json_record(SOURCE_JSON, 1)])
    assert not encoded.rejected
    return encoded.messages


def test_encoding_cef() -> None:
    """CEF events as they are; JSON events rendered as CEF that parses back to their fields."""
    from_cef, from_json = bodies("cef")
    assert from_cef == SOURCE_CEF.encode()
    event = cef.parse(from_json.decode())
    assert (event.signature_id, event.name, event.severity) == ("Security", "IPS", "Medium")
    assert event.extension == {"rt": "1589813380123", "src": "10.0.0.1", "msg": SOURCE_JSON["msg"]}


def test_encoding_leef() -> None:
    """Every event as LEEF 2.0 that parses back to the source's fields."""
    from_cef, from_json = bodies("leef")
    source = cef.parse(SOURCE_CEF)
    event = leef.parse(from_cef.decode())
    assert event.attributes["msg"] == source.extension["msg"]
    assert event.attributes["name"] == source.name
    assert (event.attributes["srcPort"], event.attributes["usrName"]) == ("1234", "jörg")
    assert event.attributes["devTime"] == "2020-05-18T14:49:40.123+0000"
    event = leef.parse(from_json.decode())
    assert (event.event_id, event.attributes["cat"], event.attributes["sev"]) == ("Security", "IPS", "6")
    assert (event.attributes["src"], event.attributes["msg"]) == ("10.0.0.1", SOURCE_JSON["msg"])


def test_encoding_json() -> None:
    """CEF events as one JSON object that reads back as the same event; JSON events as they are."""
    from_cef, from_json = bodies("json")
    assert cef_from_json(from_cef.decode()) == cef.parse(SOURCE_CEF)
    assert json.loads(from_json) == SOURCE_JSON


# --- properties ----------------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=8)
_TIMES = st.sampled_from(
    ["1589813380123", "1589813380000", "Mon May 18 14:49:40 UTC 2020", "May 18 2020 14:49:40.5 GMT+02:00",
     "2021-01-01T12:10:30.591Z", "soon", "", "158981338012"]
)  # fmt: skip
_EVENTS = st.builds(
    CefEvent,
    st.just("0"),
    _TEXT,
    _TEXT,
    _TEXT,
    _TEXT,
    _TEXT,
    st.sampled_from(["0", "4", "7", "10", "Low", "High", "Very-High", "Unknown", "x", "Critical", " 7"]),
    st.dictionaries(
        st.sampled_from(["src", "msg", "rt", "end", "cs1"]), st.text(max_size=6) | _TIMES, max_size=4
    ),
)


@PROPERTY
@given(events=st.lists(_EVENTS, min_size=1, max_size=6), header=st.sampled_from(["rfc5424", "rfc3164"]))
def test_the_fast_path_stamps_what_the_full_parse_stamps(events: list[CefEvent], header: str) -> None:
    """For valid CEF, passthrough's cheap scans give the same messages as parsing every record."""
    records = [cef_record(cef.render(e), i) for i, e in enumerate(events)]
    light = encoder(f"  header: {header}\n").encode(records)
    full = encoder(f"  header: {header}\n", "  validate: full\n").encode(records)
    assert light.messages == full.messages
    assert light.rejected == full.rejected == []


@PROPERTY
@given(
    texts=st.lists(
        st.binary(max_size=60) | st.sampled_from([b"CEF:0|a|b|c|d|e|5|rt=", b'{"time": 1}']), max_size=5
    ),
    kind=st.sampled_from(["cef", "json"]),
    encoding=st.sampled_from(["passthrough", "cef", "leef", "json"]),
)
def test_no_input_crashes_the_encoder(texts: list[bytes], kind: str, encoding: str) -> None:
    """Any bytes, as any kind, under any encoding: messages or rejections, never an exception."""
    records = [
        Record(i, "", i + 1, (b"CEF:" if kind == "cef" else b"{") + t, kind) for i, t in enumerate(texts)
    ]
    encoded = encoder(f"  encoding: {encoding}\n").encode(records)
    assert len(encoded.messages) + len(encoded.rejected) == len(records)


def test_header_none_passthrough_does_not_look_into_cef() -> None:
    """With no header to build, light validation reads nothing of a CEF line (documented)."""
    record = cef_record("CEF:0|cut short")
    assert encoder("  header: none\n").encode([record]).messages == [b"CEF:0|cut short"]
    assert encoder("  header: none\n", "  validate: full\n").encode([record]).rejected


_JSON_EVENTS = st.fixed_dictionaries(
    {"event_type": st.sampled_from(["Security", "Connectivity"])},
    optional={
        "time": st.sampled_from(
            [1589813380123, 1589813380000, "2021-01-01T12:10:30.591Z", "soon", 5, True, None]
        ),
        "creationTime": st.sampled_from([1589813380999, "Mon May 18 14:49:40 UTC 2020", "x"]),
        "severity": st.sampled_from(["High", "Low", 3, 9, "Critical", "weird", None]),
        "msg": st.text(max_size=8),
    },
)


@PROPERTY
@given(events=st.lists(_JSON_EVENTS, min_size=1, max_size=5), compact=st.booleans())
def test_json_raw_scans_stamp_what_the_full_parse_stamps(
    events: list[dict[str, object]], compact: bool
) -> None:
    """For flat JSON objects, the raw member scans give the headers a full parse gives."""
    separators = (",", ":") if compact else (", ", ": ")
    records = [json_record(json.dumps(e, separators=separators).encode(), i) for i, e in enumerate(events)]
    light = encoder().encode(records)
    full = encoder(parser="  validate: full\n").encode(records)
    assert light.messages == full.messages


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "output:\n  encoding: xml\n",
            'output.encoding: expected one of passthrough, cef, leef, json, got "xml"',
        ),
        ("output:\n  header_time: later\n", 'output.header_time: expected one of event, now, got "later"'),
        ("parser:\n  validate: some\n", 'parser.validate: expected one of light, full, got "some"'),
        (
            "parser:\n  invalid_utf8: drop\n",
            'parser.invalid_utf8: expected one of replace, reject, keep, got "drop"',
        ),
    ],
)
def test_settings_are_checked(yaml: str, message: str) -> None:
    """The new settings refuse unknown values with the key path, the choices and the value."""
    with pytest.raises(ConfigError) as info:
        parse_config("source:\n  bucket: b\n" + yaml, env={})
    assert str(info.value) == message


_BODIES = st.sampled_from(
    [b'"event_type": "Security", "time": 1589813380123, "src_ip": "10.0.0.1", "dest_port": 443',
     b'"severity": "High", "url": "https://h/?a=1", "path": "C:\\\\new"', b'"time": "2020-05-18T14:49:40Z"',
     b'"a": true, "b": null, "c": 1.5, "d": [1]', b'"big": 123456789012345678901234567890',
     b'"nul": "x\\u0000"', b'"bad": "\xff\xfe"',
     b'"lone": "\\ud800"', b'"user_name": "j\xc3\xb6rg"', b'"n": NaN', b'"cut": ']
)  # fmt: skip


@PROPERTY
@given(
    bodies=st.lists(st.lists(_BODIES, max_size=3), min_size=1, max_size=4),
    encoding=st.sampled_from(["cef", "leef", "json"]),
    policy=st.sampled_from(["replace", "reject", "keep"]),
    header=st.sampled_from(["rfc5424", "rfc3164", "none"]),
    header_time=st.sampled_from(["event", "now"]),
)
def test_orjson_changes_nothing_but_the_speed(
    bodies: list[list[bytes]], encoding: str, policy: str, header: str, header_time: str
) -> None:
    """Messages (headers included), rejections and repairs are the same with orjson and with
    json alone, for exporter events and for what orjson reads otherwise or refuses (big integers, NaN,
    invalid UTF-8 under each parser.invalid_utf8 policy, lone surrogates, NUL, broken JSON)."""
    records = [json_record(b"{" + b", ".join(parts) + b"}", i) for i, parts in enumerate(bodies)]
    settings = (
        f"  encoding: {encoding}\n  header: {header}\n  header_time: {header_time}\n",
        f"  invalid_utf8: {policy}\n",
    )
    fast = encoder(*settings).encode(records)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsonevents, "orjson", None)
        plain = encoder(*settings).encode(records)
    assert fast == plain


@pytest.mark.parametrize("encoding", ["cef", "leef", "json"])
def test_times_beyond_year_9999_do_not_stop_the_encoder(encoding: str) -> None:
    """rt or time values too large for any date: stamped "now", never an overflow."""
    records = [
        json_record({"time": 67767976233532800000, "a": 1}),
        cef_record("CEF:0|a|b|c|d|e|5|rt=67767976233532800000 x=1", 1),
    ]
    encoded = encoder(f"  encoding: {encoding}\n").encode(records)
    assert encoded.rejected == []
    assert all(m.startswith(b"<13") and b" 2025-11-28T07:25:12.500Z " in m for m in encoded.messages)


@pytest.mark.parametrize("encoding", ["cef", "leef"])
@pytest.mark.parametrize("escape", ["ud800", "udc80"])  # udc80: what surrogateescape would write as a byte
def test_a_lone_surrogate_escape_is_rejected_with_a_clear_reason(encoding: str, escape: str) -> None:
    """json reads "\\ud800" (or "\\udc80") as a lone surrogate that no UTF-8 line can carry:
    the record is rejected (dead-letter file) and says why, the others go on."""
    records = [json_record(b'{"a": "\\' + escape.encode() + b'"}'), json_record({"a": "ok"}, 1)]
    encoded = encoder(f"  encoding: {encoding}\n").encode(records)
    assert [r.ordinal for r in encoded.records] == [1]
    assert [reason for _, reason in encoded.rejected] == [
        f"JSON string holds '\\{escape}', a lone UTF-16 surrogate escape, which UTF-8 cannot carry"
    ]


@pytest.mark.parametrize("encoding", ["passthrough", "cef", "leef", "json"])
@pytest.mark.parametrize("validate", ["light", "full"])
def test_numbers_of_thousands_of_digits_never_stop_the_encoder(encoding: str, validate: str) -> None:
    """int() refuses over 4,300 digits: a time, severity or JSON number that long is no time
    (stamped now), no known severity, or a rejected record with its reason, never an exception."""
    big = "7" * 5000
    records = [
        json_record({"time": big, "severity": big, "a": 1}),
        json_record(f'{{"time": {big}}}'.encode(), 1),
        cef_record(f"CEF:0|a|b|c|d|e|{big}|rt={big} end={big}", 2),
    ]
    encoded = encoder(f"  encoding: {encoding}\n", f"  validate: {validate}\n").encode(records)
    assert len(encoded.messages) + len(encoded.rejected) == len(records)
    assert all(b" 2025-11-28T07:25:12.500Z " in m for m in encoded.messages)  # now, not the event's
    assert all("over 4,300 digits" in reason for _, reason in encoded.rejected)
