"""RELP to a real rsyslog imrelp: application-level acknowledgements, and what they buy."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.backlog import bodies, forwarder, plain_backlog, put_backlog, write_config

pytestmark = pytest.mark.integration


def test_relp_delivers_every_event_once_in_order(s3: Any, collector: Any, tmp_path: Path) -> None:
    """protocol relp: every event of the backlog reaches imrelp byte for byte, once, in order."""
    backlog = put_backlog(s3.client(), [9999, 10000, 10001])
    rsyslog = collector("relp")
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "relp", "port": rsyslog.port},
                          batch={"max_events": 7})  # fmt: skip
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    time.sleep(0.3)
    assert len(rsyslog.messages()) == len(backlog.events)


def test_relp_collector_killed_mid_backlog_loses_nothing(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """kill -9 of the collector three times mid-backlog: every event arrives, and at each kill the
    checkpoint covers no more events than the collector had answered (and written)."""
    per_file = 200
    backlog = plain_backlog(s3.client(), list(range(1, 16)), events=per_file)
    rsyslog = collector("relp")
    output = {"protocol": "relp", "port": rsyslog.port, "max_events_per_sec": 1500}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": 100})
    process = background("run", "--config", str(config))
    for kill in range(3):
        deadline = time.monotonic() + 30
        while len(rsyslog.messages()) < (kill + 1) * 800 and time.monotonic() < deadline:
            time.sleep(0.02)
        rsyslog.kill()
        state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
        covered = (state["sequence"] - 1) * per_file + state["records"]
        assert covered <= len(set(rsyslog.messages())), "the checkpoint ran ahead of the answers"
        time.sleep(1.0)
        rsyslog.start()
    deadline = time.monotonic() + 60
    while len(set(rsyslog.messages())) < len(backlog.events) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    received = bodies(rsyslog.messages())
    assert set(received) == set(backlog.events), f"lost {len(set(backlog.events) - set(received))}"
    firsts = list(dict.fromkeys(received))
    assert firsts == backlog.events  # in order, repeats aside
