"""Unit tests: the Events Integration's typed NDJSON events through the encoder, byte for byte
(numbers, booleans, arrays, nested objects; the header time from time or time_str)."""

from __future__ import annotations

import json

import pytest

from forwarder.config import parse_config
from forwarder.formats import cef, leef
from forwarder.formats.encoder import EventEncoder
from forwarder.formats.records import Record

# Datadog's published example of the push feed, with the value types the feed also carries.
EVENT = {
    "event_type": "Connectivity",
    "event_sub_type": "ApiKey",
    "time": 1763478148991,
    "time_str": "2025-11-18T15:02:28Z",
    "account_id": 20000232,
    "src_ip": "10.10.10.10",
    "action": "Succeeded",
    "event_count": 3,
    "event_id": "c8d2456ef8b48123",
    "event_message": "ApiKey login successfully",
    "static_host": True,
    "app_stack": ["Office365", "Microsoft"],
    "categories": [],
    "custom_category_id": [12, 7],
    "device_posture": {"os": "Windows", "ok": False},
}
LINE = json.dumps(EVENT, separators=(",", ":")).encode()
HEAD = b"<133>1 2025-11-18T15:02:28.991Z h cato - - - "


def encode(encoding: str, line: bytes = LINE) -> bytes:
    config = parse_config(
        "source: {kind: events_integration, bucket: b}\n"
        f"output: {{header: rfc5424, hostname: h, encoding: {encoding}}}\n",
        env={},
    ).pipeline()
    encoded = EventEncoder(config.output, config.parser).encode([Record(0, "", 1, line, "json")])
    assert not encoded.rejected
    return encoded.messages[0]


def test_typed_push_event_as_cef() -> None:
    """time -> rt and the header, event_count -> cnt, event_id -> externalId; booleans true/false,
    arrays joined with ',', nested objects as compact JSON, the rest as custom keys."""
    assert encode("cef") == HEAD + (
        b"CEF:0|Cato Networks|Cato SASE Platform|1.0|Connectivity|ApiKey|Unknown|rt=1763478148991 "
        b"src=10.10.10.10 act=Succeeded cnt=3 externalId=c8d2456ef8b48123 msg=ApiKey login successfully "
        b"time_str=2025-11-18T15:02:28Z account_id=20000232 static_host=true app_stack=Office365,Microsoft "
        b'categories= custom_category_id=12,7 device_posture={"os":"Windows","ok":false}'
    )
    parsed = cef.parse(encode("cef")[len(HEAD) :].decode())
    assert parsed.extension["app_stack"] == "Office365,Microsoft"


def test_typed_push_event_as_leef() -> None:
    """devTime from time, cat from event_sub_type, the same value texts, tab-delimited."""
    body = encode("leef")[len(HEAD) :].decode()
    assert body.startswith("LEEF:2.0|Cato Networks|Cato SASE Platform|1.0|Connectivity|x09|")
    attributes = leef.parse(body).attributes
    assert attributes["devTime"] == "2025-11-18T15:02:28.991+0000" and attributes["cat"] == "ApiKey"
    assert (attributes["static_host"], attributes["app_stack"], attributes["event_count"]) == (
        "true", "Office365,Microsoft", "3"
    )  # fmt: skip
    assert attributes["device_posture"] == '{"os":"Windows","ok":false}'


@pytest.mark.parametrize("encoding", ["passthrough", "json"])
def test_passthrough_and_json_keep_the_line_as_it_is(encoding: str) -> None:
    """The typed line goes out unchanged, with the header time from its time member."""
    assert encode(encoding) == HEAD + LINE


@pytest.mark.parametrize("encoding", ["passthrough", "cef"])
def test_without_time_the_header_time_comes_from_time_str(encoding: str) -> None:
    """An event with time_str (ISO 8601) only is stamped with it, milliseconds included."""
    line = b'{"event_type": "Security", "time_str": "2025-11-18T15:02:28.5Z", "src_ip": "1.2.3.4"}'
    message = encode(encoding, line)
    assert message.startswith(b"<133>1 2025-11-18T15:02:28.500Z h cato - - - ")
    if encoding == "cef":
        assert message.endswith(b"|Security|Security|Unknown|rt=1763478148500 src=1.2.3.4")


def test_the_kind_reads_records_up_to_64_mib_by_default() -> None:
    """parser.max_record_bytes defaults to 64 MiB for events_integration (XDR raw_data), 1 MiB
    for the log exporter; a value given wins."""

    def record_bytes(text: str) -> int:
        return parse_config(text, env={}).pipeline().parser.max_record_bytes

    assert record_bytes("source: {kind: events_integration, bucket: b}\n") == 64 << 20
    assert record_bytes("source: {bucket: b}\n") == 1 << 20
    assert (
        record_bytes("source: {kind: events_integration, bucket: b}\nparser: {max_record_bytes: 4096}\n")
        == 4096
    )
