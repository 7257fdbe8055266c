"""Unit tests for forwarder.coordination.lease: the fence's deadline, expiry on S3's clock, bodies."""

from __future__ import annotations

import json
import time

import pytest

from forwarder.coordination.lease import Lease, expired, lease_clock, lease_key, pipeline_of, read_lease
from forwarder.errors import CheckpointError, LeaseLost
from tests.support.clock import Clock


def lease(clock: Clock) -> Lease:
    held = Lease("acme", "fwd-a", 3, '"e1"', 0.0, 30.0, clock=clock)
    held.renewed('"e1"', 1, clock.now)
    return held


def test_the_fence_is_open_until_lease_secs_after_the_renewal_was_sent() -> None:
    """check() passes before sent + lease_secs and raises LeaseLost, naming the pipeline, from then on."""
    clock = Clock()
    held = lease(clock)
    clock.now = 129.9
    held.check()
    clock.now = 130.0
    with pytest.raises(LeaseLost, match=r"pipeline acme: lease lost: not renewed in time"):
        held.check()
    assert isinstance(LeaseLost("x"), CheckpointError)  # stops the pipeline, as a checkpoint problem would


def test_a_renewal_moves_the_deadline_from_when_it_was_sent() -> None:
    """A renewal answered late counts from its sending: the deadline is sent + lease_secs."""
    clock = Clock()
    held = lease(clock)
    held.renewed('"e2"', 2, 120.0)
    clock.now = 149.0
    held.check()
    assert (held.etag, held.serial, held.deadline) == ('"e2"', 2, 150.0)


def test_a_lost_lease_stays_lost_and_renewals_do_not_revive_it() -> None:
    """lose() says whether it was news; after it, renewed() changes nothing and check() raises."""
    clock = Clock()
    held = lease(clock)
    assert held.lose("taken over by fwd-b (epoch 4)") is True
    assert held.lose("again") is False
    held.renewed('"e9"', 9, clock.now)
    assert held.etag == '"e1"'
    with pytest.raises(LeaseLost, match=r"taken over by fwd-b \(epoch 4\)"):
        held.check()


def test_an_adopted_write_keeps_the_deadline() -> None:
    """A renewal found written after a lost answer gives the ETag, not more time."""
    clock = Clock()
    held = lease(clock)
    held.adopt('"e5"', 5)
    assert (held.etag, held.serial, held.deadline) == ('"e5"', 5, 130.0)


def test_expiry_is_strictly_after_lease_plus_grace() -> None:
    """S3's Date minus Last-Modified over lease_secs + grace_secs means expired; equal does not."""
    assert not expired(1000.0, 1032.0, 30.0, 2.0)
    assert expired(1000.0, 1032.5, 30.0, 2.0)


def test_every_body_names_its_writer_and_tenure() -> None:
    """Two tenures of one owner never write the same bytes (ETags stay distinct); wrote() knows its own."""
    clock = Clock()
    first, second = lease(clock), lease(clock)
    assert first.tenure != second.tenure and first.body(1) != second.body(1)
    data = json.loads(first.body(7))
    assert {k: data[k] for k in ("pipeline", "owner", "epoch", "serial")} == {
        "pipeline": "acme", "owner": "fwd-a", "epoch": 3, "serial": 7,
    }  # fmt: skip
    assert first.wrote(first.body(8)) and not first.wrote(second.body(8))


def test_a_lease_object_that_is_not_one_reads_as_nothing() -> None:
    """Garbage, JSON of another shape or without an integer epoch: {} (never trusted)."""
    assert read_lease(b"{not json") == {} and read_lease(b"[1]") == {} and read_lease(b'{"epoch": "1"}') == {}
    assert read_lease(b'{"epoch": 2, "owner": "x"}')["owner"] == "x"
    assert lease_key("p-1.x") == "leases/p-1.x.json" and pipeline_of("leases/p-1.x.json") == "p-1.x"


def test_write_numbers_are_unique_within_a_tenure() -> None:
    """next_write() counts up: state objects of one tenure never share a name."""
    held = lease(Clock())
    assert [held.next_write() for _ in range(3)] == [1, 2, 3]


def test_the_owners_clock_counts_suspended_time() -> None:
    """On Linux the fence's clock is CLOCK_BOOTTIME: never behind CLOCK_MONOTONIC, never back."""
    first = lease_clock()
    assert time.CLOCK_BOOTTIME and first >= time.monotonic() - 0.001
    assert lease_clock() >= first
