"""Each output.encoding end to end: a real S3 endpoint -> `forwarder run --once` -> a real rsyslog.

What arrives is parsed back (CEF, LEEF 2.0, JSON) and compared with the source events field by
field, including escaped "=", "|", "\\" and line breaks and non-ASCII text; the syslog header
carries the event's own time and severity. A file mixing good and bad records delivers the
good ones and puts every bad one in the dead-letter file with its line number and reason.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from forwarder.formats import cef, leef, times
from forwarder.formats.jsonevents import cef_from_json
from forwarder.formats.severity import field_severity
from forwarder.samples import cef_event, exporter_key, json_event, make_zip
from tests.support.backlog import BUCKET, PREFIX, RFC5424, forwarder, write_config

pytestmark = pytest.mark.integration

CATO_CEF = (
    "CEF:0|Cato Networks||1.0|Security|Pipe \\| and backslash \\\\ in header|7|"
    "rt=Mon May 18 14:49:40 UTC 2020 msg=equals \\= backslash \\\\ newline \\n bare | pipe "
    "cs1Label=Site cs1=Ünïcödé 日本語 src=10.0.0.1 spt=1234 suser=jörg.müller@example.de"
)
CEF_EVENTS = [CATO_CEF, cef_event(10), cef_event(11)]
TRICKY_JSON: dict[str, Any] = {
    "event_type": "Security",
    "event_sub_type": "IPS",
    "severity": "High",
    "time": 1589813380123,
    "src_ip": "10.0.0.2",
    "src_port": 51000,
    "user_name": "tanaka@example.jp",
    "msg": 'equals = backslash \\ newline \n pipe | quote " Ünïcödé 日本語',
    "site name": "Zürich HQ",
}
JSON_EVENTS = [TRICKY_JSON, *(json.loads(json_event(i)) for i in range(20, 24))]
# The JSON member: an array on one line, one object per line, and objects back to back.
JSON_LINES = [
    "[" + ", ".join(json.dumps(e, ensure_ascii=False) for e in JSON_EVENTS[:2]) + "]",
    json.dumps(JSON_EVENTS[2], ensure_ascii=False),
    "".join(json.dumps(e, ensure_ascii=False) for e in JSON_EVENTS[3:]),
]
SEVERITY_WORDS = {"High": 3}  # JSON "severity" -> syslog severity
# The documented mappings (README "Encodings"), written out again to check the code's.
JSON_TO_CEF = {"src_ip": "src", "dest_ip": "dst", "src_port": "spt", "user_name": "suser", "action": "act"}
JSON_TO_LEEF = {"src_ip": "src", "dest_ip": "dst", "src_port": "srcPort", "user_name": "usrName"}
CEF_TO_LEEF = {"spt": "srcPort", "dpt": "dstPort", "suser": "usrName"}


def _upload(client: Any, members: list[tuple[str, bytes]], sequence: int = 7007) -> None:
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=exporter_key(PREFIX, sequence), Body=make_zip(members))


def _run(
    s3: Any, rsyslog: Any, tmp_path: Path, count: int, **sections: Any
) -> list[tuple[int, datetime, bytes]]:
    """Forward with --once; return (syslog severity, header time, body) of each message."""
    output = {"protocol": "tcp", "port": rsyslog.port, **sections.pop("output", {})}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, **sections)
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    messages = rsyslog.wait_for(count)
    time.sleep(0.3)
    assert len(rsyslog.messages()) == count
    found = []
    for message in messages:
        match = RFC5424.match(message)
        assert match, message[:120]
        stamp = datetime.strptime(match.group(2).decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=timezone.utc
        )
        found.append((int(match.group(1)) % 8, stamp, message[match.end() :]))
    return found


def _at(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)


def _check_header(severity: int, stamp: datetime, source: str | dict[str, Any]) -> None:
    """The header's severity and time are the source event's."""
    if isinstance(source, str):
        event = cef.parse(source)
        assert severity == field_severity(event.severity.encode())
        assert stamp == _at(times.event_time(event) or 0)
    else:
        assert severity == SEVERITY_WORDS.get(source.get("severity", ""), 5)
        assert stamp == _at(source["time"])


def _check_cef_from_json(body: bytes, source: dict[str, Any]) -> None:
    event = cef.parse(body.decode())
    assert (event.vendor, event.signature_id, event.name) == (
        "Cato Networks",
        source["event_type"],
        source["event_sub_type"],
    )
    assert event.severity == source.get("severity", "Unknown")
    ext = event.extension
    assert ext["rt"] == str(source["time"])
    for name, value in source.items():
        if name in ("event_type", "event_sub_type", "severity", "time"):
            continue
        key = JSON_TO_CEF.get(name, name.replace(" ", "_"))
        assert ext[key] == str(value), name


def _check_leef_from_cef(body: bytes, source: str) -> None:
    event, original = leef.parse(body.decode()), cef.parse(source)
    assert (event.vendor, event.product, event.product_version, event.event_id) == (
        original.vendor, original.product, original.device_version, original.signature_id
    )  # fmt: skip
    attributes = dict(event.attributes)
    assert attributes.pop("name") == original.name
    assert attributes.pop("sev") == str(min(max(int(original.severity), 1), 10))  # LEEF's 1-10
    devtime = datetime.strptime(attributes.pop("devTime"), "%Y-%m-%dT%H:%M:%S.%f%z")
    assert attributes.pop("devTimeFormat") == "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
    assert devtime == _at(times.event_time(original) or 0)
    expected = {CEF_TO_LEEF.get(k, k): v for k, v in original.extension.items() if k != "rt"}
    assert attributes == expected


def _check_leef_from_json(body: bytes, source: dict[str, Any]) -> None:
    event = leef.parse(body.decode())
    assert (event.vendor, event.event_id) == ("Cato Networks", source["event_type"])
    attributes = dict(event.attributes)
    assert attributes.pop("cat") == source["event_sub_type"]
    devtime = datetime.strptime(attributes.pop("devTime"), "%Y-%m-%dT%H:%M:%S.%f%z")
    assert devtime == _at(source["time"]) and attributes.pop("devTimeFormat")
    if "severity" in source:
        assert attributes.pop("sev") == {"High": "8"}[source["severity"]]
    for name, value in source.items():
        if name in ("event_type", "event_sub_type", "severity", "time"):
            continue
        assert attributes.pop(JSON_TO_LEEF.get(name, name.replace(" ", "_"))) == str(value), name
    assert attributes == {}


@pytest.mark.parametrize("encoding", ["passthrough", "cef", "leef", "json"])
def test_each_encoding_arrives_and_parses_back_to_the_source_fields(
    s3: Any, collector: Any, tmp_path: Path, encoding: str
) -> None:
    """Every event reaches rsyslog in the encoding asked for and reads back as its source."""
    cef_bytes = "\n".join(CEF_EVENTS).encode()
    json_bytes = "\n".join(JSON_LINES).encode()
    _upload(s3.client(), [("a-cef.log", cef_bytes), ("b-json.log", json_bytes)])
    rsyslog = collector("tcp")
    sources: list[str | dict[str, Any]] = [*CEF_EVENTS, *JSON_EVENTS]
    found = _run(s3, rsyslog, tmp_path, len(sources), output={"encoding": encoding})
    for (severity, stamp, body), source in zip(found, sources, strict=True):
        _check_header(severity, stamp, source)
        if isinstance(source, str):
            if encoding in ("passthrough", "cef"):
                assert body == source.encode()
            elif encoding == "leef":
                _check_leef_from_cef(body, source)
            else:
                assert cef_from_json(body.decode()) == cef.parse(source)
        elif encoding in ("passthrough", "json"):
            assert json.loads(body) == source
        elif encoding == "cef":
            _check_cef_from_json(body, source)
        else:
            _check_leef_from_json(body, source)


MIXED = [
    (b"good", CATO_CEF.encode()),
    (b"bad", b"CEF:0|Cato Networks|Cato SASE Platform|1.0|Security"),  # header cut short
    (b"good", json.dumps(TRICKY_JSON, ensure_ascii=False).encode()),
    (b"bad", b'{"event_type": "Security", "time": 15898'),  # JSON cut short
    (b"bad", b"CEF:0|Cato|SASE|1.0|x|y|5|garbage before the keys"),  # malformed extension
    (b"utf8", b"CEF:0|Cato|SASE|1.0|x|y|5|msg=Z\xfcrich \xff"),  # invalid UTF-8
    (b"bad", b'{"event_type": nope}'),  # invalid JSON inside {...}
    (b"good", cef_event(3).encode()),
]
REASONS = {
    2: "CEF header has 4 of its 7 '|'-separated fields",
    4: "JSON value not complete on its line",
    5: "CEF extension: text before the first key=value ('garbage before the keys')",
    6: "invalid UTF-8 at byte 31: forwarded with U+FFFD replacement characters",
    7: "invalid JSON: Expecting value (column 16)",
}


@pytest.mark.parametrize("encoding", ["passthrough", "cef", "leef", "json"])
def test_a_mixed_file_delivers_the_good_and_dead_letters_the_bad(
    s3: Any, collector: Any, tmp_path: Path, encoding: str
) -> None:
    """Good, malformed CEF, invalid JSON and invalid UTF-8 lines: every good event (and the
    repaired one) delivered in order; every bad one in the dead-letter file with line and reason."""
    _upload(s3.client(), [("events.log", b"\n".join(text for _, text in MIXED) + b"\n")])
    rsyslog = collector("tcp")
    sent = [text for kind, text in MIXED if kind != b"bad"]
    found = _run(s3, rsyslog, tmp_path, len(sent), output={"encoding": encoding}, parser={"validate": "full"})
    if encoding == "passthrough":
        assert [body for _, _, body in found] == [
            t.replace(b"\xfc", "\ufffd".encode()).replace(b"\xff", "\ufffd".encode()) for t in sent
        ]
    lines = (tmp_path / "state" / "dead_letter.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert {e["line"]: e["reason"] for e in entries} == REASONS
    for entry in entries:
        assert entry["object"] == f"s3://{BUCKET}/{exporter_key(PREFIX, 7007)}"
        assert entry["member"] == "events.log"
        assert entry["outcome"] == ("repaired" if entry["line"] == 6 else "skipped")
        assert entry["text"].encode("utf-8", "replace").startswith(MIXED[entry["line"] - 1][1][:10])


def test_cato_date_is_the_syslog_timestamp(s3: Any, collector: Any, tmp_path: Path) -> None:
    """rt=Mon May 18 14:49:40 UTC 2020 arrives stamped 2020-05-18T14:49:40Z (RFC 5424, .000)."""
    _upload(s3.client(), [("events.log", CATO_CEF.encode() + b"\n")])
    rsyslog = collector("tcp")
    [(severity, stamp, body)] = _run(s3, rsyslog, tmp_path, 1)
    assert stamp == datetime(2020, 5, 18, 14, 49, 40, tzinfo=timezone.utc)
    assert rsyslog.messages()[0].startswith(b"<131>1 2020-05-18T14:49:40.000Z fwd-test cato - - - ")
    assert (severity, body) == (3, CATO_CEF.encode())
