"""Unit tests for forwarder.core.delivery: the window, receipts in order, resending from the
first unacknowledged batch, backoff, pacing and the waits the pipeline saves in."""

from __future__ import annotations

import threading

import pytest

from forwarder.core.delivery import ONCE_SEND_ATTEMPTS, Delivery, DeliverySettings, Stopped
from forwarder.core.observer import Observer
from forwarder.errors import SendError

FAST = DeliverySettings(retry_initial_secs=0.001, retry_max_secs=0.002)


class WindowTransport:
    """Acknowledges what the test releases (``release``), fails when told (``fail``): a
    transport with batches in flight, as tcp or relp has them."""

    label = "fake://window"
    max_message_bytes: int | None = None
    paces_itself = False

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []  # every write, resends included
        self.in_flight = 0  # written, not yet acknowledged (this connection)
        self.most_in_flight = 0
        self.releasable = 0  # batches the collector acknowledges on the next look
        self.failures: list[str] = []  # failures to report on the next looks, one each
        self.refuse_writes = 0  # writes to refuse (a collector that is down)

    def write(self, messages: list[bytes]) -> None:
        if self.refuse_writes:
            self.refuse_writes -= 1
            raise SendError("fake://window: connection refused")
        self.writes.append(messages)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def acknowledged(self, wait_secs: float) -> int:
        if self.failures:
            self.in_flight = self.releasable = 0
            raise SendError(self.failures.pop(0))
        count = min(self.releasable, self.in_flight)
        self.releasable -= count
        self.in_flight -= count
        return count

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None


class Recorder(Observer):
    def __init__(self) -> None:
        self.acked: list[tuple[int, int]] = []  # (messages, bytes)
        self.failed: list[int] = []  # events lost per failure

    def sent(self, collector: str, events: int, size: int, ack_secs: float) -> None:
        self.acked.append((events, size))

    def send_failed(self, collector: str, events: int, reason: str) -> None:
        self.failed.append(events)


def make(
    transport: WindowTransport, settings: DeliverySettings = FAST, once: bool = False
) -> tuple[Delivery[str], list[str], Recorder]:
    observer = Recorder()
    delivery: Delivery[str] = Delivery(transport, settings, observer, threading.Event(), once)
    receipts: list[str] = []
    delivery.on_acknowledged = receipts.append
    return delivery, receipts, observer


def test_batches_go_out_without_waiting_and_receipts_come_back_in_order() -> None:
    """Three batches are written before any is acknowledged; their receipts follow the
    acknowledgements in the order sent, an empty batch in its place."""
    transport = WindowTransport()
    delivery, receipts, observer = make(transport)
    delivery.send([b"a"], "first")
    delivery.send([], "nothing to send")  # every record of it was bad
    delivery.send([b"b", b"c"], "second")
    delivery.send([b"d"], "third")
    assert transport.writes == [[b"a"], [b"b", b"c"], [b"d"]] and receipts == []
    transport.releasable = 2
    delivery.send([], "after")
    assert receipts == ["first", "nothing to send", "second"]
    transport.releasable = 1
    delivery.flush()
    assert receipts == ["first", "nothing to send", "second", "third", "after"]
    assert observer.acked == [(1, 1), (2, 2), (1, 1)]


def test_the_window_holds_at_most_max_unacked_bytes() -> None:
    """A batch waits while the bytes in flight would go over max_unacked_bytes; one batch goes
    whatever its size."""
    transport = WindowTransport()
    delivery, receipts, _ = make(transport, DeliverySettings(0.001, 0.002, max_unacked_bytes=25))
    delivery.send([b"x" * 100], "big")  # alone in flight: it goes
    assert transport.writes == [[b"x" * 100]]
    waiting = threading.Thread(target=delivery.send, args=([b"y" * 10], "small"))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive() and len(transport.writes) == 1  # 110 > 25: it waits for room
    transport.releasable = 1
    waiting.join(5)
    assert receipts == ["big"] and transport.writes[1] == [b"y" * 10]
    for i in range(5):
        transport.releasable += 1
        delivery.send([b"z" * 10], f"z{i}")
    assert transport.most_in_flight == 2  # 10 + 10 <= 25 < 10 + 10 + 10


def test_a_failure_resends_every_unacknowledged_batch_from_the_first_in_order() -> None:
    """When the connection fails, the batches not acknowledged are written again, oldest first;
    those acknowledged before the failure are not."""
    transport = WindowTransport()
    delivery, receipts, observer = make(transport)
    for name in ("a", "b", "c", "d"):
        delivery.send([name.encode()], name)
    transport.releasable = 1
    delivery.send([], "-")
    assert receipts == ["a"]
    transport.failures = ["fake://window: connection reset"]
    transport.releasable = 0
    delivery.send([b"e"], "e")  # the failure is seen after this write: e goes again too
    assert transport.writes[4:] == [[b"e"], [b"b"], [b"c"], [b"d"], [b"e"]]
    assert observer.failed == [4]  # the events of the batches lost with the connection
    transport.releasable = 4
    delivery.flush()
    assert receipts == ["a", "b", "c", "d", "-", "e"]


def test_once_gives_up_after_the_attempts() -> None:
    """With once, the failure comes back after ONCE_SEND_ATTEMPTS failures in a row."""
    transport = WindowTransport()
    delivery, receipts, _ = make(transport, once=True)
    transport.refuse_writes = 100
    gave_up = rf"connection refused \(gave up after {ONCE_SEND_ATTEMPTS} attempts\)"
    with pytest.raises(SendError, match=gave_up):
        delivery.send([b"a"], "a")
    assert receipts == []


def test_an_acknowledgement_resets_the_count_of_failures() -> None:
    """Failures with progress in between are not "in a row": once does not give up on them."""
    transport = WindowTransport()
    delivery, receipts, _ = make(transport, once=True)
    for i in range(ONCE_SEND_ATTEMPTS + 2):
        delivery.send([b"%d" % i], str(i))
        transport.refuse_writes = ONCE_SEND_ATTEMPTS - 2  # with the reset: one failure short
        transport.failures = ["fake://window: reset"]
        transport.releasable = 0
        delivery.send([], "poke")  # fails, is retried until the refusals run out, then goes
        transport.releasable = 1
        delivery.flush()
    assert receipts.count("poke") == ONCE_SEND_ATTEMPTS + 2


def test_a_stop_during_the_backoff_raises_stopped_after_letting_the_pipeline_save() -> None:
    """A stop while waiting to resend ends delivery with Stopped; on_idle ran before the wait."""
    transport = WindowTransport()
    observer = Recorder()
    stop = threading.Event()
    delivery: Delivery[str] = Delivery(transport, DeliverySettings(5, 5), observer, stop)
    idle: list[str] = []
    delivery.on_idle = lambda: (idle.append("saved"), stop.set())  # type: ignore[func-returns-value]
    transport.refuse_writes = 1
    with pytest.raises(Stopped):
        delivery.send([b"a"], "a")
    assert idle == ["saved"]


def test_pacing_takes_the_acknowledgements_and_lets_the_pipeline_save_before_waiting() -> None:
    """Before a pause that keeps the pace, the batches in flight are acknowledged and on_idle
    runs: a crash during the pause repeats nothing."""
    transport = WindowTransport()
    delivery, receipts, _ = make(transport, DeliverySettings(0.001, 0.002, max_events_per_sec=100))
    order: list[str] = []
    delivery.on_acknowledged = lambda receipt: order.append(receipt)
    delivery.on_idle = lambda: order.append("idle")
    delivery.send([b"a"] * 10, "batch")
    assert order == []
    transport.releasable = 1  # acknowledged while delivery paces
    delivery.pace(10)  # 10 events at 100/s: a pause of ~0.1 s
    assert order == ["batch", "idle"]
