"""Unit tests for forwarder.transports.failover: host lists, switching, failing back."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from forwarder.compose import build_pipeline
from forwarder.config import parse_config
from forwarder.core.observer import Fanout
from forwarder.errors import ConfigError, SendError
from forwarder.observe.health import Check, Health
from forwarder.observe.metrics import Metrics
from forwarder.observe.progress import Backlog
from forwarder.sources.base import Unpack
from forwarder.transports.failover import FailoverTransport, parse_hosts
from tests.support.sending import send_and_wait


@pytest.mark.parametrize(
    ("hosts", "pairs"),
    [
        (["a:1", "b"], [("a", 1), ("b", 514)]),
        (["[::1]:6514", "10.0.0.1:20514"], [("::1", 6514), ("10.0.0.1", 20514)]),
    ],
)
def test_parse_hosts(hosts: list[str], pairs: list[tuple[str, int]]) -> None:
    """host:port pairs, a missing port taken from output.port, IPv6 in brackets."""
    assert parse_hosts(hosts, 514) == pairs


@pytest.mark.parametrize("bad", ["a:99999", "a:b", "a b", ""])
def test_parse_hosts_rejects(bad: str) -> None:
    """A malformed entry is a ConfigError naming its index."""
    with pytest.raises(ConfigError, match=r"output.hosts\[1\]: expected \"host:port\""):
        parse_hosts(["ok:1", bad], 514)


class Fake:
    def __init__(self, label: str) -> None:
        self.label = label
        self.max_message_bytes: int | None = None
        self.paces_itself = False
        self.down = False
        self.batches: list[list[bytes]] = []
        self.unreported = 0
        self.closed = 0

    def write(self, messages: list[bytes]) -> None:
        if self.down:
            raise SendError(f"{self.label}: connection refused")
        self.batches.append(messages)
        self.unreported += 1

    def acknowledged(self, wait_secs: float) -> int:
        count, self.unreported = self.unreported, 0
        return count

    def probe(self) -> None:
        if self.down:
            raise SendError(f"{self.label}: connection refused")

    def close(self) -> None:
        self.closed += 1


def test_switches_to_the_next_and_fails_back_after_failback_secs(caplog: pytest.LogCaptureFixture) -> None:
    """A failing primary hands the same batch to the secondary; after failback_secs it is tried again."""
    now = [0.0]
    primary, secondary = Fake("p"), Fake("s")
    failover = FailoverTransport([primary, secondary], failback_secs=10, clock=lambda: now[0])
    send_and_wait(failover, [b"1"])
    primary.down = True
    send_and_wait(failover, [b"2"])
    assert (primary.batches, secondary.batches, failover.label) == ([[b"1"]], [[b"2"]], "s")
    primary.down = False
    now[0] = 5.0
    send_and_wait(failover, [b"3"])  # too early to fail back
    now[0] = 20.0
    send_and_wait(failover, [b"4"])
    assert primary.batches == [[b"1"], [b"4"]] and secondary.batches == [[b"2"], [b"3"]]
    assert [r.getMessage() for r in caplog.records] == [
        "p: connection refused; switching to s",
        "back on p after s",
    ]


def test_all_down_fails_the_batch() -> None:
    """When no collector takes the batch, SendError names each failure (the pipeline retries)."""
    primary, secondary = Fake("p"), Fake("s")
    primary.down = secondary.down = True
    with pytest.raises(SendError, match="no collector took the batch: p: connection refused; s: connection"):
        send_and_wait(FailoverTransport([primary, secondary], failback_secs=10), [b"x"])


def test_every_collectors_state_reaches_health_and_metrics(tmp_path: Path) -> None:
    """collector_up shows each collector of the list: the failed primary 0 while the fallback
    carries the events (1), and 1 again once failback finds it back."""
    now = [0.0]
    primary, secondary = Fake("tcp://p:514"), Fake("tcp://s:514")
    failover = FailoverTransport([primary, secondary], failback_secs=10, clock=lambda: now[0])
    health = Health(600, 5)
    metrics = Metrics()
    config = parse_config(f"source: {{bucket: b}}\ncheckpoint: {{path: {tmp_path / 'cp.json'}}}\n", env={})
    source = cast(Any, SimpleNamespace(id="s3://b/", unpack=Unpack()))
    observer = Fanout([health, metrics.pipeline("default", Backlog(), health)])
    build_pipeline(config.pipeline(), source=source, transport=failover, observer=observer)  # wires it

    def up(label: str) -> float:
        labels = {"pipeline": "default", "collector": label}
        value = metrics.registry.get_sample_value("forwarder_collector_up", labels)
        return math.nan if value is None else value

    primary.down = True
    send_and_wait(failover, [b"1"])
    assert (up("tcp://p:514"), up("tcp://s:514")) == (0, 1)
    assert health.checks()["collector"] == Check(True, "tcp://s:514 acknowledges")  # the active one
    primary.down = False
    now[0] = 11.0
    send_and_wait(failover, [b"2"])
    assert (up("tcp://p:514"), up("tcp://s:514")) == (1, 1)
    assert failover.label == "tcp://p:514"

    # A reload (SIGHUP) with another list: the same observers, a new pipeline; the collectors
    # no longer configured leave the metric instead of showing their last value forever.
    other = FailoverTransport([Fake("tcp://p:514"), Fake("tcp://t:514")], failback_secs=10)
    build_pipeline(config.pipeline(), source=source, transport=other, observer=observer)
    assert math.isnan(up("tcp://s:514")) and up("tcp://p:514") == 1 and math.isnan(up("tcp://t:514"))
