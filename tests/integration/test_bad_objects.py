"""Objects that are not what their key says (a broken upload, a proxy's error page, a truncated
copy): a bad file under source.on_bad_file, never read as records. Files 7000..7004 of a prefix,
7002 the odd one; a real moto S3 server and a real rsyslog."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forwarder.samples import cef_event
from tests.support.backlog import (
    BUCKET,
    PREFIX,
    bodies,
    forwarder,
    plain_backlog,
    status_of,
    wait_holding,
    write_config,
)

pytestmark = pytest.mark.integration

SEQUENCES = [7000, 7001, 7002, 7003, 7004]
BAD = 7002
EVENTS = 300  # per file


def _without_bad(events: list[bytes]) -> list[bytes]:
    """*events* of a backlog of SEQUENCES with those of file BAD left out."""
    index = SEQUENCES.index(BAD)
    return events[: index * EVENTS] + events[(index + 1) * EVENTS :]


def _dead_lettered(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "state" / "dead_letter.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _lines(sequence: int) -> list[bytes]:
    return [cef_event(sequence * 1000 + i).encode() for i in range(EVENTS)]


def _quarantined_among(s3: Any, collector: Any, tmp_path: Path, suffix: str, files: dict[int, bytes]) -> str:
    """Put *files* (the events of _lines, BAD's excepted) at ``PREFIX + CATO<sequence>.<suffix>``,
    forward them under on_bad_file: quarantine and check that every event but BAD's arrived in
    order, that BAD alone is quarantined, and nothing dead-lettered; return its reason."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    for sequence, body in files.items():
        client.put_object(Bucket=BUCKET, Key=f"{PREFIX}CATO{sequence:020d}.{suffix}", Body=body)
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"on_bad_file": "quarantine", "max_attempts": 2, "key_pattern": rf"CATO(\d+)\.{suffix}$"},
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    expected = [line for sequence in SEQUENCES if sequence != BAD for line in _lines(sequence)]
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(expected))) == expected
    [entry] = status_of(config)["quarantined"]
    assert entry["key"] == f"{PREFIX}CATO{BAD:020d}.{suffix}"
    assert _dead_lettered(tmp_path) == []
    return str(entry["reason"])


def test_random_bytes_at_a_zip_key_are_held_under_stop_until_replaced(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """on_bad_file: stop: 4 KiB of random bytes at 7002's .zip key hold the position before it
    (7003 and 7004 wait, nothing dead-lettered); the real zip put back, every event arrives in order."""
    client = s3.client()
    backlog = plain_backlog(client, SEQUENCES, events=EVENTS)
    key = backlog.keys[SEQUENCES.index(BAD)]
    real = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(4096))
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"max_attempts": 2, "poll_interval_secs": 0.2},
    )
    process = background("run", "--config", str(config))

    wait_holding(config)
    # 7000 and 7001 only: 7003 and 7004 did not overtake 7002
    assert bodies(rsyslog.wait_for(2 * EVENTS)) == backlog.events[: 2 * EVENTS]
    status = status_of(config)
    assert status["position"]["sequence"] == 7001 and status["position"]["complete"]
    assert status["stuck_on"]["key"] == key
    assert status["stuck_on"]["reason"].startswith(f"s3://{BUCKET}/{key}: not a zip archive (starts with ")
    assert status["quarantined"] == [] and _dead_lettered(tmp_path) == []

    client.put_object(Bucket=BUCKET, Key=key, Body=real)
    rsyslog.wait_for(len(backlog.events))
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events
    status = status_of(config)
    assert status["stuck_on"] is None and status["position"]["sequence"] == 7004
    assert _dead_lettered(tmp_path) == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda real: os.urandom(4096), "not a zip archive (starts with "),
        (lambda real: real[: len(real) // 2], "not a readable zip file ("),
    ],
    ids=["random-bytes", "truncated-zip"],
)
def test_a_bad_zip_is_quarantined_with_its_reason_and_never_dead_lettered(
    s3: Any, collector: Any, tmp_path: Path, damage: Callable[[bytes], bytes], reason: str
) -> None:
    """on_bad_file: quarantine: random bytes at 7002's .zip key, or the real zip cut in half, are
    listed by status and status --json with the reason; the other files arrive; no record of it
    is dead-lettered."""
    client = s3.client()
    backlog = plain_backlog(client, SEQUENCES, events=EVENTS)
    key = backlog.keys[SEQUENCES.index(BAD)]
    real = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.put_object(Bucket=BUCKET, Key=key, Body=damage(real))
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"on_bad_file": "quarantine", "max_attempts": 2},
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    expected = _without_bad(backlog.events)
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(expected))) == expected
    [entry] = status_of(config)["quarantined"]
    assert entry["key"] == key and entry["reason"].startswith(f"s3://{BUCKET}/{key}: {reason}")
    text = forwarder("status", "--config", str(config))
    assert text.returncode == 0, text.stderr
    assert f"quarantined:  1\n    {key}: {entry['reason']} (" in text.stdout
    assert _dead_lettered(tmp_path) == []
    listed = (tmp_path / "state" / "quarantine.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in listed] == [key]


def test_bytes_neither_zip_gzip_nor_text_at_another_name_are_a_bad_file(
    s3: Any, collector: Any, tmp_path: Path
) -> None:
    """Plain .log objects (key_pattern accepts them): text ones are read, random bytes are
    quarantined as 'not a zip, gzip or text object', nothing of them dead-lettered."""
    files = {sequence: b"\n".join(_lines(sequence)) + b"\n" for sequence in SEQUENCES}
    files[BAD] = os.urandom(4096)
    reason = _quarantined_among(s3, collector, tmp_path, "log", files)
    head = files[BAD][:8].hex(" ")
    key = f"{PREFIX}CATO{BAD:020d}.log"
    assert reason == f"s3://{BUCKET}/{key}: not a zip, gzip or text object (starts with {head} ...)"


def test_gz_objects_the_signature_decides_text_is_read_and_a_corrupt_gzip_is_a_bad_file(
    s3: Any, collector: Any, tmp_path: Path
) -> None:
    """.gz keys: gzip objects and one holding plain text (unpacked by a client that kept the name)
    are all sent in order; one whose gzip header is damaged is quarantined as a damaged archive."""
    text = {sequence: b"\n".join(_lines(sequence)) + b"\n" for sequence in SEQUENCES}
    files = {sequence: gzip.compress(body) for sequence, body in text.items()}
    files[7001] = text[7001]  # plain text at a .gz key
    broken = bytearray(files[BAD])
    broken[2] = 7  # the compression method: only 8 (deflate) exists
    files[BAD] = bytes(broken)
    reason = _quarantined_among(s3, collector, tmp_path, "gz", files)
    key = f"{PREFIX}CATO{BAD:020d}.gz"
    assert reason == f"s3://{BUCKET}/{key}: damaged archive, cannot read it (Unknown compression method)"
