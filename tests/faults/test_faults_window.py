"""Fault injection with the window open: kill -9 of a forwarder sending as fast as it can (no
pacing), where the checkpoint is written every checkpoint.interval_secs, not per batch. What
a restart sends again is bounded by what was acknowledged since the last write plus what was
in flight; the scenario measures it per kill and adds its row to the report."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path
from typing import Any

from tests.faults.conftest import Report, Row, compare
from tests.faults.test_faults import SEED, Background, _settle
from tests.support.backlog import forwarder, plain_backlog, wait_until, write_config

KILLS = 10
PER_FILE = 2000
INTERVAL_SECS = 1.0
# What one kill may repeat at most: a checkpoint interval of events at 200,000 a second (more
# than this machine sends) plus a full window (4 MiB of ~340-byte messages).
BOUND_PER_KILL = int(INTERVAL_SECS * 200_000) + (4 << 20) // 340


def _size(rsyslog: Any) -> int:
    """Bytes the collector wrote (cheaper to poll than parsing its messages)."""
    return int(rsyslog.messages_file.stat().st_size) if rsyslog.messages_file.exists() else 0


def _covered(tmp_path: Path) -> int:
    """Events before the checkpoint's position (files of PER_FILE events)."""
    try:
        state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return 0
    cursor = state["cursor"]
    if cursor.get("complete"):
        return int(cursor["sequence"]) * PER_FILE
    return (int(cursor["sequence"]) - 1) * PER_FILE + int(state["records"])


def test_kill_9_with_the_window_open(
    s3: Any, collector: Any, tmp_path: Path, background: Background, report: Report
) -> None:
    """10 kill -9 of an unpaced forwarder: nothing lost, in order; each kill repeats what
    arrived after the checkpoint it left, within the documented bound."""
    rng = random.Random(SEED)
    backlog = plain_backlog(s3.client(), list(range(1, 151)), events=PER_FILE)
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        checkpoint={"interval_secs": INTERVAL_SECS},
    )
    repeats: list[int] = []
    while len(repeats) < KILLS:
        process = background("run", "--config", str(config))
        before = _size(rsyslog)
        started = lambda p=process, n=before: _size(rsyslog) > n or p.poll() is not None  # noqa: E731
        wait_until(started, "the restart to send")
        time.sleep(rng.uniform(0.1, 0.6))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        arrived = len(set(_settle(rsyslog, 0.2)))  # in bucket order: the first `arrived` events
        repeats.append(max(0, arrived - _covered(tmp_path)))
    assert len(repeats) == KILLS, f"the backlog ran out after {len(repeats)} kills"
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    lost, duplicated, in_order = compare(backlog.events, _settle(rsyslog))
    report.add(
        Row(
            "forwarder crash, no pacing",
            f"{KILLS} × kill -9 at random moments; repeated per kill: {min(repeats)}-{max(repeats)}",
            len(backlog.events),
            lost,
            duplicated,
            "0 lost; per kill ≤ what was acknowledged in the last checkpoint.interval_secs (1 s) "
            "+ what was in flight (output.max_unacked_bytes)",
            in_order,
        )
    )
    assert lost == 0 and in_order
    assert max(repeats) <= BOUND_PER_KILL
    assert duplicated <= sum(repeats) + KILLS * (4 << 20) // 340  # the window in flight at each kill
