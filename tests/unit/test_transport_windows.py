"""Unit tests of the windowed transports against real loopback sockets: batches in flight
arrive back to back and byte for byte, are acknowledged in order and never more than were
written; a reset sends the unacknowledged ones again in order; RELP keeps its window full
and never overfull, and resumes after what was answered."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from forwarder.core.delivery import Delivery, DeliverySettings
from forwarder.core.observer import Observer
from forwarder.errors import SendError
from forwarder.transports.base import Transport
from forwarder.transports.relp import RelpTransport
from forwarder.transports.relpwire import FrameReader, frame
from forwarder.transports.stream import StreamTransport
from tests.support.certs import context_pair
from tests.unit.test_relp_protocol import FakeRelpServer
from tests.unit.test_transport import TIMEOUT, StreamServer, read_to_eof, read_until

BATCHES = [[b"one", b"two"], [b"three"], [b"x" * 70_000, b"four"]]
WIRE = b"3 one3 two5 three70000 " + b"x" * 70_000 + b"4 four"


def drain(transport: Transport, expected: int) -> int:
    """Poll acknowledged() until *expected* batches were reported (and a little longer, to
    catch one too many); the total reported."""
    total = 0
    deadline = time.monotonic() + TIMEOUT
    while total < expected and time.monotonic() < deadline:
        total += transport.acknowledged(0.05)
    total += transport.acknowledged(0.05)
    return total


def until_failure(transport: Transport) -> tuple[int, SendError]:
    """Poll acknowledged() until it raises; (batches reported before, the failure)."""
    total = 0
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            total += transport.acknowledged(0.05)
        except SendError as exc:
            return total, exc
    raise AssertionError("no failure was reported")


def connector(port: int, context: ssl.SSLContext | None = None) -> Callable[[], socket.socket]:
    """Connects to 127.0.0.1:*port* (in TLS with *context*) with a large send buffer, so a
    batch the peer does not take stays in our queue instead of blocking the write."""

    def connect() -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
        return context.wrap_socket(sock, server_hostname="localhost") if context else sock

    return connect


def test_tcp_batches_in_flight_arrive_back_to_back_and_are_acknowledged_in_order() -> None:
    """Three batches written before any acknowledgement arrive as one stream of exact frames;
    exactly three are reported acknowledged."""
    with StreamServer() as server:
        transport = StreamTransport(connector(server.port), "octet_counting", "tcp://test", 2)
        for batch in BATCHES:
            transport.write(batch)
        assert drain(transport, 3) == 3
        transport.close()
    assert server.errors == [] and server.received == [WIRE]


@pytest.fixture(scope="module")
def tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) from a CA made for this module."""
    return context_pair()


def test_tls_batches_in_flight_are_counted_in_encrypted_bytes(
    tls_pair: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """Over TLS the batches' ends are where their records end on the wire: all three are
    acknowledged, not one more, and arrive as exact frames."""
    server_context, client_context = tls_pair
    with StreamServer(server_context) as server:
        transport = StreamTransport(connector(server.port, client_context), "octet_counting", "tls://t", 2)
        for batch in BATCHES:
            transport.write(batch)
        assert drain(transport, 3) == 3
        transport.write([b"again"])
        assert drain(transport, 1) == 1
        transport.close()
    assert server.errors == [] and server.received == [WIRE + b"5 again"]


class StallingServer:
    """Takes the first connection with a tiny receive buffer and reads *first* bytes of it,
    then nothing, until told to reset it; reads the next connection to its end."""

    def __init__(self, first: int) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # accepted sockets inherit it
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.first = first
        self.reset = threading.Event()
        self.was_reset = threading.Event()
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        self.received.append(read_until(conn, self.first))
        assert self.reset.wait(TIMEOUT)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # a reset: what it had not read is gone
        self.was_reset.set()
        again, _ = self.listener.accept()
        with again:
            self.received.append(read_to_eof(again))

    def join(self) -> None:
        self._thread.join(TIMEOUT)
        self.listener.close()


def test_tcp_reset_sends_the_unacknowledged_batches_again_in_order() -> None:
    """A reset with one batch read and two not acknowledged: the acknowledged one is reported
    first, then the failure; written again, the other two arrive whole, in order, once, after
    the acknowledged one again (a reset may have thrown it away unread: replay.py)."""
    first, big, last = [b"first"], [b"b" * 300_000], [b"last"]
    server = StallingServer(first=len(b"5 first"))
    transport = StreamTransport(connector(server.port), "octet_counting", "tcp://test", 5)
    try:
        for batch in (first, big, last):
            transport.write(batch)
        time.sleep(0.2)  # the first batch is read; 300 KB do not fit the 4 KB window
        server.reset.set()
        assert server.was_reset.wait(TIMEOUT)
        time.sleep(0.1)  # the reset reaches us
        acknowledged, failure = until_failure(transport)
        assert acknowledged == 1  # the first batch, reported before the failure
        assert str(failure).startswith("tcp://test: send failed: ") and "reset" in str(failure)
        transport.write(big)  # what the pipeline's delivery does: from the first unacknowledged on
        transport.write(last)
        assert drain(transport, 2) == 2
        transport.close()
    finally:
        server.reset.set()
        server.join()
    assert server.received == [b"5 first", b"5 first300000 " + big[0] + b"4 last"]


class HoldingRelpServer:
    """A RELP server that answers syslog frames only once *hold* are unanswered (or when no
    more came for 0.05 s), and records the most it ever had unanswered."""

    def __init__(self, hold: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.hold = hold
        self.received: list[bytes] = []
        self.most_unanswered = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            reader = FrameReader(conn)
            pending: list[int] = []
            while True:
                conn.settimeout(0.05 if pending else TIMEOUT)
                try:
                    txnr, command, data = reader.read()
                except TimeoutError:
                    txnr, command, data = 0, b"", b""
                if command == b"open":
                    conn.sendall(frame(txnr, b"rsp", b"200 OK\n" + data))
                    continue
                if command == b"syslog":
                    self.received.append(data)
                    pending.append(txnr)
                    self.most_unanswered = max(self.most_unanswered, len(pending))
                if pending and (len(pending) >= self.hold or not command):
                    conn.sendall(b"".join(frame(t, b"rsp", b"200 OK") for t in pending))
                    pending = []
                if command == b"close":
                    conn.sendall(frame(txnr, b"rsp"))
                    return


@pytest.mark.parametrize("window", [2, 8])
def test_relp_keeps_its_window_full_and_never_overfull(window: int) -> None:
    """With relp_window messages unanswered the sender waits for answers, across batches; a
    collector that holds its answers sees exactly the window in flight, never more."""
    server = HoldingRelpServer(hold=1000)
    connect = lambda: socket.create_connection(("127.0.0.1", server.port))  # noqa: E731
    transport = RelpTransport(connect, "relp://test", 5.0, window=window)
    batches = [[b"m%d-%d" % (b, i) for i in range(5)] for b in range(4)]
    for batch in batches:
        transport.write(batch)
    assert drain(transport, 4) == 4
    transport.close()
    server.listener.close()
    assert server.received == [m for batch in batches for m in batch]
    assert server.most_unanswered == window


@pytest.fixture
def dropping() -> Iterator[FakeRelpServer]:
    server = FakeRelpServer(drop_after=6)
    yield server
    server.listener.close()


def test_relp_lost_session_with_batches_in_flight_resends_only_what_was_not_answered(
    dropping: FakeRelpServer,
) -> None:
    """The session dies after 6 answers with two batches of 4 in flight: the first batch is
    acknowledged, then the failure; written again, the second resumes after its 2 answered."""
    connect = lambda: socket.create_connection(("127.0.0.1", dropping.port))  # noqa: E731
    transport = RelpTransport(connect, "relp://test", 5.0, window=3)
    first, second = [b"a0", b"a1", b"a2", b"a3"], [b"b0", b"b1", b"b2", b"b3"]
    transport.write(first)
    transport.write(second)
    acknowledged, failure = until_failure(transport)
    assert acknowledged == 1 and "after 2 of 4 messages were acknowledged" in str(failure)
    transport.write(second)  # the pipeline's delivery writes the unacknowledged batch again
    assert drain(transport, 1) == 1
    transport.close()
    assert dropping.received == first + second


def test_tcp_window_holds_at_most_max_unacked_bytes_against_a_collector_that_stalls() -> None:
    """Against a collector that stops reading, delivery keeps writing until max_unacked_bytes
    are in flight, then waits; once it reads again, every batch arrives whole and in order."""
    server = StallingServer(first=0)
    transport = StreamTransport(connector(server.port), "octet_counting", "tcp://test", 30)
    delivery: Delivery[int] = Delivery(
        transport, DeliverySettings(0.01, 0.02, max_unacked_bytes=50_000), Observer(), threading.Event()
    )
    receipts: list[int] = []
    delivery.on_acknowledged = receipts.append
    batches = [[b"%d" % i * 20_000] for i in range(6)]
    sending = threading.Thread(target=lambda: [delivery.send(b, i) for i, b in enumerate(batches)])
    sending.start()
    sending.join(0.5)
    assert sending.is_alive() and delivery.in_flight == 2  # 40,000 bytes; a third would be 60,000
    server.reset.set()  # the first connection is reset: both go again on the second, with the rest
    sending.join(TIMEOUT)
    delivery.flush()
    delivery.close()
    server.join()
    assert receipts == list(range(6))
    assert server.received[1] == b"".join(b"20000 " + b[0] for b in batches)
