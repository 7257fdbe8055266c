"""Failover between two real rsyslog collectors: the primary stops mid-backlog, nothing is lost."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.backlog import bodies, plain_backlog, write_config

pytestmark = pytest.mark.integration


def test_primary_stopped_mid_backlog_then_back(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Events continue to the secondary when the primary stops, none lost; after failback_secs
    with the primary back, it takes the events again. Each switch is logged once."""
    per_file = 200
    backlog = plain_backlog(s3.client(), list(range(1, 16)), events=per_file)
    primary, secondary = collector("tcp"), collector("tcp")
    output = {
        "protocol": "tcp",
        "hosts": [f"127.0.0.1:{primary.port}", f"127.0.0.1:{secondary.port}"],
        "failback_secs": 1,
        "max_events_per_sec": 1000,
    }
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": 100})
    process = background("run", "--config", str(config))
    deadline = time.monotonic() + 30
    while len(primary.messages()) < 800 and time.monotonic() < deadline:
        time.sleep(0.02)
    primary.stop()  # maintenance
    while len(secondary.messages()) < 800 and time.monotonic() < deadline:
        time.sleep(0.02)
    primary.start()
    while time.monotonic() < deadline + 30:
        state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
        if (state["cursor"]["sequence"], state["cursor"].get("complete", False)) == (15, True):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    first, second = bodies(primary.messages()), bodies(secondary.messages())
    assert set(first) | set(second) == set(backlog.events), "events were lost"
    for received in (first, second):  # each collector got its share in bucket order
        order = [backlog.events.index(e) for e in dict.fromkeys(received)]
        assert order == sorted(order)
    after_failback = set(first[800:])
    assert after_failback, "the primary took no events after it came back"
    log = (tmp_path / "forwarder.log").read_text()
    switches = [json.loads(line)["message"] for line in log.splitlines() if "switching to" in line]
    assert len(switches) == 1 and f"127.0.0.1:{secondary.port}" in switches[0]
    assert sum("back on tcp://127.0.0.1:" in line for line in log.splitlines()) == 1
