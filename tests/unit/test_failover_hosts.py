"""Unit tests for forwarder.failover: host lists, switching, failing back."""

from __future__ import annotations

import pytest

from forwarder.errors import ConfigError, SendError
from forwarder.failover import FailoverTransport, parse_hosts


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
        self.down = False
        self.batches: list[list[bytes]] = []
        self.closed = 0

    def send(self, messages: list[bytes]) -> None:
        if self.down:
            raise SendError(f"{self.label}: connection refused")
        self.batches.append(messages)

    def probe(self) -> None:
        self.send([])

    def close(self) -> None:
        self.closed += 1


def test_switches_to_the_next_and_fails_back_after_failback_secs(caplog: pytest.LogCaptureFixture) -> None:
    """A failing primary hands the same batch to the secondary; after failback_secs it is tried again."""
    now = [0.0]
    primary, secondary = Fake("p"), Fake("s")
    failover = FailoverTransport([primary, secondary], failback_secs=10, clock=lambda: now[0])
    failover.send([b"1"])
    primary.down = True
    failover.send([b"2"])
    assert (primary.batches, secondary.batches, failover.label) == ([[b"1"]], [[b"2"]], "s")
    primary.down = False
    now[0] = 5.0
    failover.send([b"3"])  # too early to fail back
    now[0] = 20.0
    failover.send([b"4"])
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
        FailoverTransport([primary, secondary], failback_secs=10).send([b"x"])
