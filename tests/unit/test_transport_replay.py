"""TCP/TLS: what the collector's kernel acknowledged and the collector never read is sent
again when the connection ends other than cleanly (forwarder/transports/replay.py)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest

from forwarder.config import parse_config
from forwarder.errors import SendError
from forwarder.transports.factory import make_transport
from forwarder.transports.replay import Tail
from forwarder.transports.stream import StreamTransport
from tests.support.certs import context_pair
from tests.support.clock import Clock
from tests.support.sending import send_and_wait
from tests.unit.test_transport import TIMEOUT, Connections, StreamServer


def test_the_tail_keeps_what_was_acknowledged_within_the_bounds_and_gives_it_back_in_order() -> None:
    clock = Clock()
    tail = Tail(max_bytes=10, max_secs=30, clock=clock)
    for payload in (b"aaaa", b"bbbb", b"cccc"):  # 12 bytes: the oldest goes
        tail.acknowledged(payload)
    tail.lost([b"sent-again"])
    assert tail.pending == 3
    assert tail.take() == [b"bbbb", b"cccc", b"sent-again"]
    assert tail.take() == [] and tail.pending == 0


def test_the_tail_counts_age_back_from_the_newest_acknowledgement() -> None:
    """A collector frozen for an hour acknowledged nothing since: its last batches still go."""
    clock = Clock()
    tail = Tail(max_bytes=1000, max_secs=30, clock=clock)
    tail.acknowledged(b"old")
    clock.now += 31
    tail.acknowledged(b"recent")
    tail.acknowledged(b"newest")
    clock.now += 3600
    tail.lost([])
    assert tail.take() == [b"recent", b"newest"]


def test_the_tail_keeps_the_newest_batch_whatever_its_size_and_forgets_on_a_clean_end() -> None:
    tail = Tail(max_bytes=4, max_secs=30, clock=Clock())
    tail.acknowledged(b"x" * 100)
    tail.lost([])
    assert tail.take() == [b"x" * 100]
    tail.acknowledged(b"read")
    tail.read()  # the collector closed cleanly: it read everything
    tail.lost([])
    assert tail.take() == []


def test_lost_twice_before_a_connection_keeps_everything_in_order() -> None:
    tail = Tail(clock=Clock())
    tail.acknowledged(b"one")
    tail.lost([])
    tail.lost([])  # the collector still down: nothing new, nothing dropped
    tail.acknowledged(b"two")
    tail.lost([b"three"])
    assert tail.take() == [b"one", b"two", b"three"]


def _read_until_closed(conn: socket.socket) -> bytes:
    """What arrives until the sender closes or resets the connection."""
    conn.settimeout(TIMEOUT)
    chunks = []
    try:
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


class ClosingUnread:
    """A collector that accepts, reads nothing, and closes with the bytes unread once told
    (its kernel then resets the connection and discards them: a restart or kill -9 at the
    wrong moment); then reads every later connection to its end. With *context*, over TLS."""

    def __init__(self, context: ssl.SSLContext | None = None, later: int = 1) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.context = context
        self.later = later
        self.close_now = threading.Event()
        self.closed = threading.Event()
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _accept(self) -> socket.socket:
        raw, _ = self.listener.accept()
        return self.context.wrap_socket(raw, server_side=True) if self.context else raw

    def _serve(self) -> None:
        first = self._accept()
        assert self.close_now.wait(TIMEOUT)
        first.close()  # unread bytes in its receive queue: the kernel sends a reset
        self.closed.set()
        for _ in range(self.later):
            with self._accept() as conn:
                self.received.append(_read_until_closed(conn))

    def join(self) -> None:
        self.thread.join(TIMEOUT)
        self.listener.close()


def _acknowledged_then_closed_unread(server: ClosingUnread, transport: StreamTransport) -> None:
    send_and_wait(transport, [b"first"])  # acknowledged by the kernel, never read
    server.close_now.set()
    assert server.closed.wait(TIMEOUT)
    time.sleep(0.1)  # the reset reaches us


@pytest.mark.parametrize("protocol", ["tcp", "tls"])
def test_a_batch_acknowledged_and_thrown_away_unread_is_sent_again_first(protocol: str) -> None:
    """The collector closes with our first batch unread (its kernel resets the connection):
    on the next connection that batch goes again, before the next one. Over TLS the ssl
    layer reads the reset as an end of file; the kernel's TCP state still tells."""
    server_context, client_context = context_pair() if protocol == "tls" else (None, None)
    server = ClosingUnread(server_context)
    connections = Connections(server.port, client_context)
    transport = StreamTransport(connections, "octet_counting", f"{protocol}://test", ack_timeout_secs=2)
    try:
        _acknowledged_then_closed_unread(server, transport)
        send_and_wait(transport, [b"second"])
        transport.close()
    finally:
        server.join()
    assert server.received == [b"5 first6 second"]
    assert len(connections.sockets) == 2


def _failures_then_delivered(
    server: ClosingUnread, connect: Callable[[], socket.socket], failures: int, match: str
) -> None:
    """Over connections from *connect*: "first" acknowledged and thrown away unread, then
    *failures* sends of "second" that fail (SendError matching *match*), then one that
    goes through; the transport and *server* are closed after."""
    transport = StreamTransport(connect, "octet_counting", "tcp://test", ack_timeout_secs=2)
    try:
        _acknowledged_then_closed_unread(server, transport)
        for _ in range(failures):
            with pytest.raises(SendError, match=match):
                send_and_wait(transport, [b"second"])
        send_and_wait(transport, [b"second"])
        transport.close()
    finally:
        server.join()


def test_what_is_to_go_again_waits_while_the_collector_is_down() -> None:
    """The collector resets, then refuses connections for a while: the batch it may have
    thrown away is kept through the failed attempts and goes first once it is back."""
    server = ClosingUnread()
    port = server.port
    attempts: list[int] = []

    def connect() -> socket.socket:
        attempts.append(1)
        if len(attempts) in (2, 3):  # the first reconnections are refused
            raise ConnectionRefusedError(111, "Connection refused")
        return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)

    _failures_then_delivered(server, connect, 2, "connection refused")
    assert server.received == [b"5 first6 second"]


class FailingSend(socket.socket):
    """A TCP socket whose *fail_at*-th sendall fails, as a connection reset mid-write would."""

    fail_at = 1
    sends = 0

    def sendall(self, data: bytes, flags: int = 0) -> None:  # type: ignore[override]
        self.sends += 1
        if self.sends == self.fail_at:
            raise BrokenPipeError(32, "Broken pipe")
        super().sendall(data, flags)


@pytest.mark.parametrize(
    ("fail_at", "second_connection_got"),
    [(1, b""), (2, b"5 first")],
    ids=["writing-the-batch-to-send-again", "writing-the-pipelines-batch"],
)
def test_a_connection_that_fails_while_sending_again_keeps_the_batches_to_send_again(
    fail_at: int, second_connection_got: bytes
) -> None:
    """The next connection fails while the batch to send again is written, or after it, on
    the pipeline's batch: the batch to send again goes once more, first, on the one after."""
    server = ClosingUnread(later=2)
    made: list[socket.socket] = []

    def connect() -> socket.socket:
        sock = FailingSend() if len(made) == 1 else socket.socket()
        if isinstance(sock, FailingSend):
            sock.fail_at = fail_at
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", server.port))
        made.append(sock)
        return sock

    _failures_then_delivered(server, connect, 1, "Broken pipe")
    assert server.received == [second_connection_got, b"5 first6 second"]


def test_closing_with_batches_still_to_go_again_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """The collector reset the connection and does not come back before the stop: the
    warning says how many acknowledged batches were not sent again."""
    server = ClosingUnread(later=0)
    transport = StreamTransport(Connections(server.port), "octet_counting", "tcp://test", ack_timeout_secs=2)
    try:
        _acknowledged_then_closed_unread(server, transport)
        server.listener.close()  # it does not come back
        with pytest.raises(SendError):
            send_and_wait(transport, [b"second"])
        transport.close()
    finally:
        server.join()
    assert "tcp://test: closing with 1 batches to send again" in caplog.text


def test_a_reset_not_noticed_before_the_stop_is_found_by_the_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reset while idle, then the forwarder stops before writing again: the close finds the
    reset (no FIN) and says so, rather than forgetting the batch in silence."""
    server = ClosingUnread(later=0)
    transport = StreamTransport(Connections(server.port), "octet_counting", "tcp://test", ack_timeout_secs=2)
    try:
        _acknowledged_then_closed_unread(server, transport)
        transport.close()
    finally:
        server.join()
    assert "tcp://test: closing with 1 batches to send again" in caplog.text


def test_a_clean_close_forgets_what_was_acknowledged(caplog: pytest.LogCaptureFixture) -> None:
    """The collector read everything and hung up after our FIN: nothing to send again."""
    with StreamServer() as server:
        transport = StreamTransport(Connections(server.port), "octet_counting", "tcp://t", ack_timeout_secs=2)
        send_and_wait(transport, [b"first"])
        transport.close()
    assert server.received == [b"5 first"]
    assert "closing with" not in caplog.text


def test_failover_sends_what_the_failed_collector_threw_away_to_the_next_one_first() -> None:
    """The first collector resets with a batch unread and is gone: the second collector gets
    that batch, then the next one (the members share what is to go again)."""
    first = ClosingUnread(later=0)
    with StreamServer() as second:
        text = (
            "source:\n  bucket: b\noutput:\n  protocol: tcp\n"
            "  connect_timeout_secs: 2\n  ack_timeout_secs: 2\n"
            f'  hosts: ["127.0.0.1:{first.port}", "127.0.0.1:{second.port}"]\n'
        )
        transport = make_transport(parse_config(text, env={}).pipeline().output)
        try:
            send_and_wait(transport, [b"first"])  # acknowledged by the first's kernel, never read
            first.close_now.set()
            assert first.closed.wait(TIMEOUT)
            first.listener.close()
            time.sleep(0.1)  # the reset reaches us
            send_and_wait(transport, [b"second"])
            transport.close()
        finally:
            first.join()
    assert second.received == [b"5 first6 second"]
