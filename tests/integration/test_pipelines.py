"""Many pipelines in one forwarder: three accounts (prefixes) to three real rsyslog collectors."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.backlog import BUCKET, PASSWORD, bodies, plain_backlog, wait_until

pytestmark = pytest.mark.integration

FILES, EVENTS = 8, 200  # per pipeline
NAMES = ("acme", "beta", "gamma")


def write_pipelines(path: Path, endpoint: str, ports: dict[str, int]) -> Path:
    """A config with one pipeline per name (prefix NAME/), each to its own collector."""
    config = {
        "defaults": {
            "source": {
                "bucket": BUCKET, "prefix": "{pipeline}/", "endpoint_url": endpoint,
                "access_key_id": "testing", "secret_access_key": "testing", "zip_password": PASSWORD,
                "poll_interval_secs": 0.3,
            },
            "output": {
                "protocol": "tcp", "hostname": "tenant-{pipeline}", "retry_initial_secs": 0.1,
                "retry_max_secs": 0.3, "max_events_per_sec": 1500,
            },
            "checkpoint": {"path": str(path.parent / "state" / "{pipeline}" / "checkpoint.json")},
            "batch": {"max_events": 100},
        },
        "pipelines": [{"name": name, "output": {"port": port}} for name, port in ports.items()],
        "log": {"format": "json"},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path


def test_three_pipelines_each_to_its_collector_one_down_then_a_fourth_added(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Every event of each account reaches its own collector in order with the tenant's hostname;
    while one collector is down the other two finish, and it catches up once back; SIGHUP adds
    a fourth pipeline, which starts, leaving the others running."""
    client = s3.client()
    backlogs = {name: plain_backlog(client, list(range(1, FILES + 1)), EVENTS, f"{name}/") for name in NAMES}
    collectors = {name: collector("tcp") for name in NAMES}
    config = write_pipelines(tmp_path / "f.yaml", s3.endpoint_url, {n: c.port for n, c in collectors.items()})
    process = background("run", "--config", str(config))
    total = FILES * EVENTS
    wait_until(lambda: len(collectors["gamma"].messages()) >= total // 4, "gamma to be mid-backlog", 60)
    collectors["gamma"].stop()  # down mid-backlog
    stopped_at = time.monotonic()
    for name in ("acme", "beta"):
        wait_until(lambda name=name: len(collectors[name].messages()) >= total, f"{name} to finish", 60)
    assert time.monotonic() - stopped_at < 30  # on time: not held by gamma's retries
    assert len(collectors["gamma"].messages()) < total
    collectors["gamma"].start()
    wait_until(lambda: len(set(collectors["gamma"].messages())) >= total, "gamma to catch up", 60)
    for name in NAMES:
        got = bodies(collectors[name].messages(), hostname=f"tenant-{name}".encode())
        first = list(dict.fromkeys(got))  # the first arrival of each (a batch cut by the stop may repeat)
        assert first == backlogs[name].events, name

    delta = plain_backlog(client, [1, 2], EVENTS, "delta/")
    fourth = collector("tcp")
    text = yaml.safe_load(config.read_text())
    text["pipelines"].append({"name": "delta", "output": {"port": fourth.port}})
    config.write_text(yaml.safe_dump(text), encoding="utf-8")
    before = {name: len(collectors[name].messages()) for name in NAMES}
    os.kill(process.pid, signal.SIGHUP)
    wait_until(lambda: len(fourth.messages()) >= len(delta.events), "the added pipeline to deliver", 60)
    assert bodies(fourth.messages(), hostname=b"tenant-delta") == delta.events
    assert {name: len(collectors[name].messages()) for name in NAMES} == before  # nothing sent twice
    log = (tmp_path / "forwarder.log").read_text()
    assert "SIGHUP: pipeline delta added" in log and "restarting" not in log
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
