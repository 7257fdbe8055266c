"""Stopping the forwarder mid-backlog and starting it again: nothing lost, at most a batch repeated."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.backlog import bodies, forwarder, plain_backlog, write_config

pytestmark = pytest.mark.integration

BATCH = 50
# Paced so that the backlog takes a few seconds and the stop lands in the middle of it.
RATE = 2000


def _wait_for_progress(rsyslog: Any, count: int, process: Any, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arrived = len(rsyslog.messages())
        if arrived >= count:
            return arrived
        assert process.poll() is None, "the forwarder exited early"
        time.sleep(0.02)
    raise AssertionError(f"only {len(rsyslog.messages())} events arrived")


def _setup(s3: Any, collector: Any, tmp_path: Path) -> tuple[Any, Any, Path]:
    backlog = plain_backlog(s3.client(), list(range(1, 11)), events=700)
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port,
                                               "max_events_per_sec": RATE},
        batch={"max_events": BATCH},
    )  # fmt: skip
    return backlog, rsyslog, config


def test_kill_9_mid_backlog_loses_nothing(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """SIGKILL mid-backlog, then restart: every event arrives, in order, at most one batch twice."""
    backlog, rsyslog, config = _setup(s3, collector, tmp_path)
    process = background("run", "--config", str(config))
    _wait_for_progress(rsyslog, 2000, process)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    time.sleep(0.2)
    at_kill = len(rsyslog.messages())
    assert at_kill < len(backlog.events), "the kill must land mid-backlog"

    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    received = bodies(rsyslog.wait_for(len(backlog.events)))
    time.sleep(0.3)
    received = bodies(rsyslog.messages())
    repeated = len(received) - len(backlog.events)
    assert 0 <= repeated <= BATCH
    # The repeated events are the batch in flight at the kill: drop them and the rest is exact.
    assert received[:at_kill] + received[at_kill + repeated :] == backlog.events
    assert received[at_kill : at_kill + repeated] == received[at_kill - repeated : at_kill]


def test_sigterm_finishes_the_batch_and_resumes_exactly(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """SIGTERM: the batch in flight is acknowledged and recorded, exit 0; the restart repeats nothing."""
    backlog, rsyslog, config = _setup(s3, collector, tmp_path)
    process = background("run", "--config", str(config))
    _wait_for_progress(rsyslog, 1500, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, (tmp_path / "forwarder.log").read_text()
    state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    time.sleep(0.2)
    at_stop = len(rsyslog.messages())
    assert at_stop < len(backlog.events), "the stop must land mid-backlog"
    cursor = state["cursor"]
    assert (
        cursor.get("complete", False) is False
        and at_stop == (cursor["sequence"] - 1) * 700 + state["records"]
    )

    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    rsyslog.wait_for(len(backlog.events))
    time.sleep(0.3)
    assert bodies(rsyslog.messages()) == backlog.events
