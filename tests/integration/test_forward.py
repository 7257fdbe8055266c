"""End to end: a real S3 endpoint (moto server) → `forwarder run --once` → a real rsyslog."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.backlog import (
    BUCKET,
    PREFIX,
    bodies,
    forwarder,
    put_backlog,
    write_config,
)

pytestmark = pytest.mark.integration

# Sequence numbers cross 9999 -> 10000: a string sort would send 10000 and 10001 first.
SEQUENCES = [9998, 9999, 10000, 10001]


@pytest.mark.parametrize(
    ("protocol", "framing"),
    [("udp", None), ("tcp", "octet_counting"), ("tcp", "newline"), ("tls", "octet_counting"),
     ("tls", "newline")],
)  # fmt: skip
def test_every_event_arrives_once_in_order(
    s3: Any, collector: Any, certs: Any, tmp_path: Path, protocol: str, framing: str | None
) -> None:
    """Password-protected multi-member zips reach rsyslog byte for byte, once, in order, per protocol."""
    backlog = put_backlog(s3.client(), SEQUENCES)
    rsyslog = collector(protocol)
    output: dict[str, Any] = {"protocol": protocol, "port": rsyslog.port}
    if framing:
        output["framing"] = framing
    if protocol == "tls":
        output["tls"] = {"ca_file": str(certs.ca_file)}
        output["host"] = "localhost"  # the name in the certificate: verification is on
    config = write_config(tmp_path / "forwarder.yaml", s3.endpoint_url, output, batch={"max_events": 4})

    first = forwarder("run", "--config", str(config), "--once")
    assert first.returncode == 0, first.stderr
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events

    second = forwarder("run", "--config", str(config), "--once")
    assert second.returncode == 0, second.stderr
    time.sleep(0.3)
    assert len(rsyslog.messages()) == len(backlog.events), "a second --once must send nothing"
    state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    assert (state["cursor"]["sequence"], state["cursor"].get("complete", False)) == (10001, True)


def test_rfc3164_header(s3: Any, collector: Any, tmp_path: Path) -> None:
    """With header rfc3164 each message is `<PRI>Mmm dd hh:mm:ss host tag: event`."""
    backlog = put_backlog(s3.client(), [7007])
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port, "header": "rfc3164"}
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert (
        bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events)), header="rfc3164")
        == backlog.events
    )


def test_new_files_are_picked_up_by_the_next_run(s3: Any, collector: Any, tmp_path: Path) -> None:
    """Files written after a run go out on the next one, and only they."""
    client = s3.client()
    first = put_backlog(client, [1, 2])
    rsyslog = collector("tcp")
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port})
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    rsyslog.wait_for(len(first.events))
    later = put_backlog(client, [3])
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    assert (
        bodies(rsyslog.assert_quiet(settle=0.3, count=len(first.events) + len(later.events)))
        == first.events + later.events
    )


def test_start_at_a_sequence_number(s3: Any, collector: Any, tmp_path: Path) -> None:
    """source.start: 10000 skips the files before 10000 on a fresh start."""
    backlog = put_backlog(s3.client(), SEQUENCES)
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"start": 10000},
    )
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    per_file = len(backlog.events) // len(SEQUENCES)
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=per_file * 2)) == backlog.events[per_file * 2 :]


def test_file_and_stdout_outputs(s3: Any, tmp_path: Path) -> None:
    """protocol file appends one event per line; stdout prints them: the vendor script's workflow."""
    backlog = put_backlog(s3.client(), [5, 6])
    out = tmp_path / "out" / "events.log"
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "file", "path": str(out)})
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    assert out.read_bytes() == b"".join(e + b"\n" for e in backlog.events)

    config = write_config(
        tmp_path / "g.yaml",
        s3.endpoint_url,
        {"protocol": "stdout"},
        checkpoint={"path": str(tmp_path / "other.json")},
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == b"".join(e + b"\n" for e in backlog.events)


def test_wrong_zip_password_stops_on_that_file(s3: Any, collector: Any, tmp_path: Path) -> None:
    """A wrong zip password: exit 4, one line naming the object and the setting; nothing skipped."""
    put_backlog(s3.client(), [1, 2])
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"zip_password": "not-the-password"},  # not "wrong": log lines mask the secret
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 4
    errors = [json.loads(line) for line in result.stderr.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1
    assert f"s3://{BUCKET}/{PREFIX}CATO00000000000000000001.zip" in errors[0]["message"]
    assert "wrong zip password" in errors[0]["message"] and "source.zip_password" in errors[0]["message"]
    assert "Traceback" not in result.stderr
    assert rsyslog.messages() == []


def test_corrupt_file_holds_the_position_until_replaced(s3: Any, collector: Any, tmp_path: Path) -> None:
    """A corrupt zip between good files: files before it delivered, none after, all once it is fixed."""
    client = s3.client()
    backlog = put_backlog(client, [1, 2, 3])
    good_second = client.get_object(Bucket=BUCKET, Key=backlog.keys[1])["Body"].read()
    client.put_object(Bucket=BUCKET, Key=backlog.keys[1], Body=good_second[: len(good_second) // 2])
    rsyslog = collector("tcp")
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port})

    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 4
    assert backlog.keys[1] in result.stderr and "Traceback" not in result.stderr
    per_file = len(backlog.events) // 3
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=per_file)) == backlog.events[:per_file]

    client.put_object(Bucket=BUCKET, Key=backlog.keys[1], Body=good_second)
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events


def test_collector_down_once_exits_4_and_keeps_position(s3: Any, collector: Any, tmp_path: Path) -> None:
    """No collector listening: --once gives up after its attempts with exit 4; the checkpoint waits."""
    backlog = put_backlog(s3.client(), [1])
    rsyslog = collector("tcp")
    rsyslog.stop()
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port})
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 4
    assert "connection refused" in result.stderr and "Traceback" not in result.stderr
    state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    assert (state["records"], state["cursor"].get("complete", False)) == (0, False)

    rsyslog.start()
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events


def test_check_reports_each_part(s3: Any, collector: Any, tmp_path: Path) -> None:
    """`check` prints an ok line per part, and FAIL with exit 4 when the collector is down."""
    put_backlog(s3.client(), [1, 2])
    rsyslog = collector("tcp")
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port})
    result = forwarder("check", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.split("\n\n")[0].splitlines()  # the checks; then the effective config
    assert [line.split()[:2] for line in lines] == [
        ["ok", "config:"],
        ["ok", "bucket:"],
        ["ok", "checkpoint:"],
        ["ok", "dead"],
        ["ok", "collector:"],
    ]
    assert "2 files" in lines[1]
    rsyslog.stop()
    result = forwarder("check", "--config", str(config))
    assert result.returncode == 4
    assert result.stdout.splitlines()[4].startswith("FAIL collector:")
    assert "testing" not in result.stdout  # the secret access key is never printed


def test_misspelt_key_is_one_line(tmp_path: Path) -> None:
    """A misspelt key fails with exit 2 and one line naming the key path, no traceback."""
    config = tmp_path / "f.yaml"
    config.write_text("source:\n  bucket: b\noutput:\n  protcol: tcp\n")
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        'forwarder: error: output.protcol: unknown key (did you mean "protocol"?); output takes: '
        "protocol, host, port, "
    )
    assert "max_events_per_sec" in lines[0]  # every key of the section is listed


def test_secrets_never_reach_the_log(s3: Any, collector: Any, tmp_path: Path) -> None:
    """The secret access key and zip password appear in no log line and no `check` output."""
    put_backlog(s3.client(), [1])
    rsyslog = collector("tcp")
    rsyslog.stop()  # failures make the forwarder talk the most
    secret_key, secret_zip = "S3cr3t-Acc3ss-K3y-XYZ", "Z1p-P4ssw0rd-QQQ"
    config = write_config(
        tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port},
        source={"secret_access_key": secret_key, "zip_password": secret_zip},
        log={"level": "debug"},
    )  # fmt: skip
    outputs = [
        forwarder("run", "--config", str(config), "--once"),
        forwarder("check", "--config", str(config)),
    ]
    assert [r.returncode for r in outputs] == [4, 4]  # wrong key for moto is fine; collector down
    for result in outputs:
        assert secret_key not in result.stdout + result.stderr
        assert secret_zip not in result.stdout + result.stderr
