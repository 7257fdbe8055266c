"""Unit tests for forwarder.coordination.steering: the runner runs what the leases say, and every
forwarder runs the pipelines that read a shared queue."""

from __future__ import annotations

from typing import Any

from forwarder.config import Config, parse_config
from forwarder.coordination.steering import Steering

CONFIG = """\
defaults:
  source: {bucket: b}
pipelines:
  - name: listed
  - name: queued
    source: {kind: events_integration, discovery: sqs, sqs: {queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/q"}}
"""


class Coordinator:
    """What steering asks of the coordinator: the leases held, and which pipelines stopped."""

    def __init__(self, wanted: dict[str, Any]) -> None:
        self._wanted = wanted
        self.pipelines: list[str] = []
        self.released: list[Any] = []

    def wanted(self) -> dict[str, Any]:
        return dict(self._wanted)

    def stopped(self, leases: list[Any]) -> None:
        self.released += leases


class Runner:
    """Remembers what it was told to run."""

    def __init__(self) -> None:
        self.running: list[list[str]] = []

    def reload(self, config: Config, reason: str = "") -> None:
        self.running.append([p.name for p in config.pipelines])


def test_queue_pipelines_run_on_every_forwarder_leased_ones_where_held() -> None:
    """Holding no lease, a forwarder still runs the pipeline that reads an SQS queue; once it
    holds the other's lease it runs both."""
    config = parse_config(CONFIG, env={})
    assert [p.shared_by_queue for p in config.pipelines] == [False, True]
    coordinator, runner = Coordinator({}), Runner()
    steering = Steering(coordinator, runner, lambda name: None)  # type: ignore[arg-type]
    steering.step(config)
    assert runner.running == [["queued"]]
    steering.step(config)  # nothing changed: the runner is left alone
    assert runner.running == [["queued"]]
    coordinator._wanted = {"listed": object()}
    steering.step(config)
    assert runner.running[-1] == ["listed", "queued"]
