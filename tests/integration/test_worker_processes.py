"""Worker processes end to end: moto S3, `forwarder run` with `workers: 2`, a real rsyslog."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.backlog import bodies, forwarder, plain_backlog, put_backlog, wait_until, write_config

pytestmark = pytest.mark.integration


def children(pid: int) -> list[int]:
    """The processes *pid* started (its workers), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def running(pid: int) -> bool:
    """True while *pid* runs (a zombie has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_two_workers_forward_a_backlog_byte_for_byte_in_order(
    s3: Any, collector: Any, tmp_path: Path
) -> None:
    """With workers: 2, password-protected multi-member zips (escapes, CRLF, BOM, non-ASCII,
    JSON) reach rsyslog byte for byte, once, in the bucket's order, in batches of 4."""
    backlog = put_backlog(s3.client(), list(range(9995, 10007)), events=20)
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "forwarder.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port},
        batch={"max_events": 4}, source={"prefetch_files": 3},
    )  # fmt: skip
    text = config.read_text()
    config.write_text("workers: 2\n" + text)

    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert "reading with 2 worker processes (workers: 2)" in result.stderr
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events
    state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    assert (state["cursor"]["sequence"], state["cursor"].get("complete", False)) == (10006, True)


def test_sigterm_ends_the_workers_with_the_forwarder(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """SIGTERM mid-backlog: the forwarder saves and exits 0, and its worker processes are gone;
    the next run delivers the rest, nothing twice."""
    backlog = plain_backlog(s3.client(), list(range(1, 9)), events=600)
    rsyslog = collector("tcp")
    output = {"protocol": "tcp", "port": rsyslog.port, "max_events_per_sec": 2000}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": 50})
    config.write_text("workers: 2\n" + config.read_text())
    process = background("run", "--config", str(config))
    wait_until(lambda: len(rsyslog.messages()) >= 1000, "the backlog to be under way", 30)
    workers = children(process.pid)
    assert workers and all(running(pid) for pid in workers)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, (tmp_path / "forwarder.log").read_text()
    assert not any(running(pid) for pid in workers), "a worker outlived the forwarder"
    time.sleep(0.2)
    assert len(rsyslog.messages()) < len(backlog.events), "the stop must land mid-backlog"

    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    rsyslog.wait_for(len(backlog.events))
    time.sleep(0.3)
    assert bodies(rsyslog.messages()) == backlog.events
