"""A 100 KB event between normal ones, to a real rsyslog: truncated, split or dropped as configured;
and UDP paced so that a backlog does not overrun the collector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from forwarder.formats.oversize import split
from forwarder.samples import cef_event, exporter_key, make_zip
from tests.support.backlog import (
    BUCKET,
    PREFIX,
    RFC5424,
    bodies,
    expected_pri,
    forwarder,
    plain_backlog,
    write_config,
)

pytestmark = pytest.mark.integration

# ~100 KB of 1- to 4-byte characters (ü 2, € 3, 😀 4 bytes), CEF severity 7 (syslog 3: error).
BIG = (
    b"CEF:0|Cato Networks|Cato SASE Platform|1.0|Big|Event of 100 KB|7|msg="
    + "Zürich €😀 ".encode() * 5880
    + b" n=end"
)
SEQUENCE = 7007
KEY = exporter_key(PREFIX, SEQUENCE)
BEFORE = [cef_event(i).encode() for i in range(5)]
AFTER = [cef_event(i).encode() for i in range(5, 10)]
LIMIT = {"udp": 65507, "tcp": 16384, "relp": 16384}  # udp: its default; tcp/relp: set
# The header the forwarder puts on BIG (its length: the time differs, not its width).
HEADER = b"<131>1 2026-11-28T07:25:12.123Z fwd-test cato - - - "


def _put(client: Any) -> None:
    client.create_bucket(Bucket=BUCKET)
    lines = b"\n".join([*BEFORE, BIG, *AFTER]) + b"\n"
    client.put_object(Bucket=BUCKET, Key=KEY, Body=make_zip([("events.log", lines)]))


def _split(message: bytes) -> tuple[bytes, bytes]:
    """(header, body) of an RFC 5424 message."""
    match = RFC5424.match(message)
    assert match, message[:120]
    return message[: match.end()], message[match.end() :]


def _run(s3: Any, rsyslog: Any, tmp_path: Path, output: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Forward the backlog with --once; return the forwarder's log (JSON lines) and its last line."""
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"port": rsyslog.port, **output})
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines[-1]["message"].startswith("done: ")
    return lines, lines[-1]["message"]


@pytest.mark.parametrize("protocol", ["udp", "tcp", "relp"])
@pytest.mark.parametrize("policy", ["truncate", "split", "drop"])
def test_a_100kb_event_is_truncated_split_or_dropped_as_configured(
    s3: Any, collector: Any, tmp_path: Path, protocol: str, policy: str
) -> None:
    """Over max_message_bytes, the 100 KB event arrives truncated, in pieces or not at all, counted
    and logged once with its place; the events around it arrive unchanged, once, in order."""
    _put(s3.client())
    rsyslog = collector(protocol)
    output: dict[str, Any] = {"protocol": protocol, "oversize": policy}
    if protocol != "udp":
        output["max_message_bytes"] = LIMIT[protocol]
    log, done = _run(s3, rsyslog, tmp_path, output)
    limit = LIMIT[protocol]

    pieces = {"truncate": 1, "split": len(split(HEADER + BIG, len(HEADER), limit)), "drop": 0}[policy]
    messages = rsyslog.assert_quiet(settle=0.3, count=10 + pieces)
    assert bodies(messages[:5]) == BEFORE and bodies(messages[5 + pieces :]) == AFTER
    middle = [_split(m) for m in messages[5 : 5 + pieces]]
    assert all(len(header + body) <= limit for header, body in middle)
    assert all(header.startswith(b"<%d>1 " % expected_pri(BIG)) for header, _ in middle)
    assert all(len(header) == len(HEADER) for header, _ in middle)
    assert len({header for header, _ in middle}) <= 1  # every piece carries the event's header
    for _, body in middle:
        body.decode("utf-8")  # never cut inside a character
    if policy == "truncate":
        assert BIG.startswith(middle[0][1]) and len(b"".join(middle[0])) > limit - 4
    elif policy == "split":
        assert b"".join(body for _, body in middle) == BIG

    what = "what udp://127.0.0.1" if protocol == "udp" else "output.max_message_bytes"
    warnings = [line for line in log if line["level"] == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0]["message"].startswith(
        f"s3://{BUCKET}/{KEY} member events.log line 6: message of {len(HEADER + BIG)} bytes exceeds "
    )
    assert (warnings[0]["key"], warnings[0]["member"], warnings[0]["line"]) == (KEY, "events.log", 6)
    assert what in warnings[0]["message"] and f"(output.oversize: {policy})" in warnings[0]["message"]
    counted = {"truncate": "1 truncated", "split": f"1 split into {pieces} messages", "drop": "1 dropped"}
    assert done.startswith(f"done: {10 if policy == 'drop' else 11} events from 1 files in ")
    assert done.endswith(f"; over output.max_message_bytes: {counted[policy]}")


def test_a_100kb_event_passes_whole_over_tcp_by_default(s3: Any, collector: Any, tmp_path: Path) -> None:
    """tcp's default limit (1 MiB) lets the 100 KB event through as it is: nothing truncated."""
    _put(s3.client())
    rsyslog = collector("tcp")
    log, done = _run(s3, rsyslog, tmp_path, {"protocol": "tcp"})
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=11)) == [*BEFORE, BIG, *AFTER]
    assert "over output.max_message_bytes" not in done
    assert not [line for line in log if line["level"] == "WARNING"]


def test_udp_backlog_is_paced_so_a_small_receive_buffer_loses_nothing(
    s3: Any, collector: Any, tmp_path: Path
) -> None:
    """udp's default pacing (2,000/s in 10 ms slices): 300 events into a 16 KiB receive buffer all arrive.

    Unpaced (max_events_per_sec: 0) the same run lost 106 and 117 of the 300 (2 cores)."""
    backlog = plain_backlog(s3.client(), [1, 2, 3], events=100)
    rsyslog = collector("udp", udp_rcvbuf="16k")  # the kernel doubles it: 32 KiB
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "udp", "port": rsyslog.port},
                          batch={"max_events": 300})  # fmt: skip
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events
