"""A real rsyslog stopped or killed while thousands of events are in flight (no pacing, the
default windows): RELP loses nothing; TCP sends its unacknowledged batches again, and the
ones its kernel acknowledged unread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.backlog import bodies, plain_backlog, wait_until, write_config
from tests.support.rsyslog import Rsyslog, parse_records

pytestmark = pytest.mark.integration

Background = Callable[..., "subprocess.Popen[bytes]"]
PER_FILE = 2000
FILES = 20


def _covered(tmp_path: Path) -> int:
    """Events the checkpoint says are delivered (files of PER_FILE events); 0 before it is written."""
    path = tmp_path / "state" / "checkpoint.json"
    if not path.exists():
        return 0
    state = json.loads(path.read_text())
    cursor = state["cursor"]
    return (cursor["sequence"] - (0 if cursor.get("complete") else 1)) * PER_FILE + (
        0 if cursor.get("complete") else state["records"]
    )


def _killed(rsyslog: Rsyslog) -> int:
    """kill -9 *rsyslog*; cut a message it was writing short off its file (it died with it,
    unanswered); the messages it wrote."""
    rsyslog.kill()
    if not rsyslog.messages_file.exists():
        return 0
    messages, complete = parse_records(rsyslog.messages_file.read_bytes())
    with rsyslog.messages_file.open("r+b") as handle:
        handle.truncate(complete)
    return len(messages)


def _firsts(received: list[bytes]) -> list[bytes]:
    return list(dict.fromkeys(received))


def test_relp_collector_killed_mid_window_loses_nothing(
    s3: Any, collector: Any, tmp_path: Path, background: Background
) -> None:
    """kill -9 of imrelp twice with up to relp_window messages unanswered: every event arrives,
    in order (repeats aside), and the checkpoint never covers more than rsyslog wrote."""
    backlog = plain_backlog(s3.client(), list(range(1, FILES + 1)), events=PER_FILE)
    rsyslog = collector("relp")
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "relp", "port": rsyslog.port},
                          batch={"max_events": 500})  # fmt: skip
    process = background("run", "--config", str(config))
    for kill in range(2):
        wait_until(lambda n=kill: len(rsyslog.messages()) >= (n + 1) * 10_000, "progress before the kill")
        _killed(rsyslog)
        written = len(set(rsyslog.messages()))
        assert written < len(backlog.events), "the backlog was through before the kill"
        assert _covered(tmp_path) <= written, "the checkpoint ran ahead of the answers"
        time.sleep(0.5)
        rsyslog.start()
    wait_until(lambda: len(set(rsyslog.messages())) >= len(backlog.events), "every event", 60)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    received = bodies(rsyslog.messages())
    assert set(received) == set(backlog.events)
    assert _firsts(received) == backlog.events
    repeats = len(received) - len(backlog.events)
    assert repeats <= 2 * 4096  # at most a window per kill: answered messages are not sent again


def test_tcp_collector_killed_mid_window_loses_nothing(
    s3: Any, collector: Any, tmp_path: Path, background: Background
) -> None:
    """rsyslog frozen (SIGSTOP) with the forwarder's window full, then killed and restarted:
    its kernel took the first batches unread and threw them away with a reset; they are sent
    again first, then every batch it had not acknowledged: every event arrives, in order."""
    backlog = plain_backlog(s3.client(), list(range(1, FILES + 1)), events=PER_FILE)
    rsyslog = collector("tcp")
    assert rsyslog.pid is not None
    os.kill(rsyslog.pid, signal.SIGSTOP)  # it reads nothing: its kernel takes what fits its buffer
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port},
                          batch={"max_events": 100}, checkpoint={"interval_secs": 0})  # fmt: skip
    process = background("run", "--config", str(config))
    wait_until(lambda: _covered(tmp_path) > 0, "its kernel to acknowledge batches it never read")
    time.sleep(1.0)  # the receive buffer full, our window full: nothing more is acknowledged
    log = tmp_path / "forwarder.log"
    assert "retrying" not in log.read_text()  # still the first connection, which rsyslog never read
    assert _killed(rsyslog) == 0  # its kernel resets the connection: what it took unread is gone
    rsyslog.start()
    wait_until(lambda: _covered(tmp_path) == len(backlog.events), "the backlog to finish", 60)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    received = bodies(rsyslog.messages())
    assert _firsts(received) == backlog.events  # nothing lost, in order
    assert len(received) - len(backlog.events) <= 1000  # the batches sent again: ~128 KiB, unread
    assert "batch not delivered, retrying" in log.read_text()
