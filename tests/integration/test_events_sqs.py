"""kind events_integration, discovery: sqs, against moto's S3, SQS and SNS server and a real rsyslog:
competing forwarders on one queue, a kill -9 mid-object, notifications through SNS."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.backlog import bodies, forwarder, start_forwarder, wait_until
from tests.support.pushed import BUCKET, PREFIX, Notifications, put_object, uuid_key, write_events_config

pytestmark = pytest.mark.integration


def _config(tmp: Path, s3: Any, queue: Notifications, port: int, visibility: int, **output: Any) -> Path:
    tmp.mkdir(exist_ok=True)
    sqs = {"queue_url": queue.url, "wait_time_secs": 1, "visibility_timeout_secs": visibility}
    return write_events_config(
        tmp / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": port, **output},
        source={"discovery": "sqs", "sqs": sqs}, batch={"max_events": 50},
    )  # fmt: skip


def _ledger(config: Path) -> dict[str, Any]:
    state = json.loads((config.parent / "state" / "checkpoint.json").read_text())
    return dict(state["cursor"]["ledger"]["done"])


def test_two_forwarders_on_one_queue_deliver_200_objects_once_and_delete_every_message(
    s3: Any, collector: Any, tmp_path: Path
) -> None:
    """Competing consumers: 200 objects notified to one queue, two forwarders each with its own
    checkpoint; every event arrives exactly once, each object's events in order, every message
    is deleted, and both forwarders took a share."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    queue = Notifications(s3)
    queue.direct()
    rsyslog = collector("tcp")
    configs = [_config(tmp_path / name, s3, queue, rsyslog.port, 30) for name in ("a", "b")]
    processes = [start_forwarder(c.parent / "forwarder.log", "run", "--config", str(c)) for c in configs]
    try:
        expected: list[bytes] = []
        for n in range(200):
            expected += put_object(client, n, 5)
        received = bodies(rsyslog.wait_for(len(expected), timeout=120))
        wait_until(lambda: queue.counts() == (0, 0), "every message deleted", timeout=30)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
    assert [p.wait(30) for p in processes] == [0, 0]
    received = bodies(rsyslog.assert_quiet(len(expected)))
    assert Counter(received) == Counter(expected)  # each once
    for n in range(200):  # an object's events in order
        mine = [line for line in received if b'"obj":%d,' % n in line]
        assert mine == expected[n * 5 : n * 5 + 5]
    shares = [len(_ledger(c)) for c in configs]
    assert sum(shares) == 200 and min(shares) > 0, shares


def test_a_forwarder_killed_mid_object_leaves_it_to_the_other_after_the_visibility_timeout(
    s3: Any, collector: Any, tmp_path: Path
) -> None:
    """While A sends a long object it keeps the message invisible (B, reading the same queue,
    gets nothing although the object outlasts the visibility timeout); A is killed -9 mid-object;
    after the timeout B receives the message and delivers the whole object (at least once: the
    records A delivered arrive twice), and deletes it."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    queue = Notifications(s3)
    queue.direct()
    rsyslog = collector("tcp")
    config_a = _config(tmp_path / "a", s3, queue, rsyslog.port, 10, max_events_per_sec=150)
    config_b = _config(tmp_path / "b", s3, queue, rsyslog.port, 10)
    a = start_forwarder(tmp_path / "a" / "forwarder.log", "run", "--config", str(config_a))
    lines = put_object(client, 1, 3000)  # ~20 s at 150 events/s: twice the visibility timeout
    wait_until(lambda: len(rsyslog.messages()) >= 50, "A's first batch")
    b = start_forwarder(tmp_path / "b" / "forwarder.log", "run", "--config", str(config_b))
    try:
        wait_until(lambda: len(rsyslog.messages()) >= 1800, "A 12 s into the object", timeout=60)
        before = bodies(rsyslog.messages())
        assert before == lines[: len(before)]  # B took nothing while A renewed the message
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        killed_at = time.monotonic()
        at_kill = len(bodies(rsyslog.messages()))
        received = bodies(rsyslog.wait_for(at_kill + len(lines), timeout=60))
        took = time.monotonic() - killed_at
        wait_until(lambda: queue.counts() == (0, 0), "the message deleted by B", timeout=30)
    finally:
        b.send_signal(signal.SIGTERM)
        if a.poll() is None:
            a.kill()
    assert b.wait(30) == 0
    received = bodies(rsyslog.assert_quiet(at_kill + len(lines)))
    assert received[:at_kill] == lines[:at_kill] and received[at_kill:] == lines
    print(f"B delivered the object {took:.1f} s after the kill")
    assert took > 2, f"B received the message {took:.1f} s after the kill: before A's visibility lapsed?"
    assert list(_ledger(config_b)) == [uuid_key(1)[len(PREFIX) :]]


@pytest.mark.parametrize("raw", [False, True], ids=["sns-envelope", "sns-raw"])
def test_notifications_through_sns_are_read_and_test_events_and_other_prefixes_deleted(
    s3: Any, collector: Any, tmp_path: Path, raw: bool
) -> None:
    """Bucket -> SNS -> queue (with SNS's envelope, or raw delivery): the objects under the
    prefix are delivered; the s3:TestEvent and an object of another prefix are deleted and
    logged; the queue ends empty."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    queue = Notifications(s3)
    queue.through_sns(raw=raw)  # no prefix filter: every key of the bucket is notified
    expected = put_object(client, 1, 4) + put_object(client, 2, 3)
    client.put_object(Bucket=BUCKET, Key="other/elsewhere.gz", Body=b"{}\n")
    rsyslog = collector("tcp")
    config = _config(tmp_path / "c", s3, queue, rsyslog.port, 30)
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert Counter(bodies(rsyslog.assert_quiet(len(expected)))) == Counter(expected)
    messages = [json.loads(line)["message"] for line in result.stderr.splitlines() if line.startswith("{")]
    assert sum("deleted without delivering anything (test event)" in m for m in messages) == 1
    assert (
        sum("other/elsewhere.gz: deleted without delivering anything (other prefix)" in m for m in messages)
        == 1
    )
    assert queue.counts() == (0, 0)
