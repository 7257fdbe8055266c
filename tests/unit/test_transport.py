"""Unit tests for forwarder.transports.stream, against real loopback sockets made in each test."""

from __future__ import annotations

import io
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from forwarder.config import OutputConfig, parse_config
from forwarder.errors import ConfigError, SendError
from forwarder.transports import stream as transport_module
from forwarder.transports.base import Transport, connect_error
from forwarder.transports.datagram import UDP_MAX_PAYLOAD, DatagramTransport
from forwarder.transports.factory import make_transport
from forwarder.transports.local import FileTransport, StdoutTransport
from forwarder.transports.stream import StreamTransport
from forwarder.transports.tls import tls_context
from tests.support.sending import send_and_wait

TIMEOUT = 5.0


def output(protocol: str, port: int = 514, extra: str = "") -> OutputConfig:
    """The output settings of a config for *protocol* to 127.0.0.1:*port*."""
    text = (
        "source:\n  bucket: b\n"
        f"output:\n  protocol: {protocol}\n  host: 127.0.0.1\n  port: {port}\n"
        "  connect_timeout_secs: 2\n  ack_timeout_secs: 2\n" + extra
    )
    return parse_config(text, env={}).pipeline().output


def read_until(conn: socket.socket, size: int) -> bytes:
    """Read exactly *size* bytes (or less if the peer closes first)."""
    conn.settimeout(TIMEOUT)
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def read_to_eof(conn: socket.socket) -> bytes:
    """Read until the peer closes its side."""
    conn.settimeout(TIMEOUT)
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


TCP_ESTABLISHED = 1  # tcp_info.tcpi_state (linux/tcp_states.h)


class Connections:
    """A connect function for StreamTransport that keeps the sockets it made, to watch them."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        self._port = port
        self._context = context
        self.sockets: list[socket.socket] = []

    def __call__(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self._port), timeout=TIMEOUT)
        if self._context:
            sock = self._context.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sockets.append(sock)
        return sock

    def wait_hung_up(self, server_closed: threading.Event) -> None:
        """Wait until the server closed the connection and its FIN or RST reached our side."""
        assert server_closed.wait(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while self.sockets[-1].getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == TCP_ESTABLISHED:
            assert time.monotonic() < deadline, "the peer's close never arrived"
            time.sleep(0.002)


class StreamServer:
    """A loopback TCP (or TLS) collector in a thread; per connection, the bytes it received.

    Each connection is read until the sender closes it, then closed (as a collector does,
    so the transport's graceful close returns at once). With *close_first*, the server
    closes the first connection after that many bytes, while the sender is idle. With
    *greeting*, the server first sends those bytes to the client.
    """

    def __init__(
        self,
        context: ssl.SSLContext | None = None,
        close_first: int | None = None,
        greeting: bytes = b"",
        connections: int = 1,
        listen: bool = True,
    ) -> None:
        self._context = context
        self._close_first = close_first
        self._greeting = greeting
        self._connections = connections
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT)
        self.port: int = self._listener.getsockname()[1]
        self.received: list[bytes] = []
        self.errors: list[BaseException] = []
        self.first_closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        if listen:
            self.start()

    def start(self) -> None:
        """Listen and serve (until then, connections to the port are refused)."""
        self._listener.listen()
        self._thread.start()

    def __enter__(self) -> StreamServer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.ident is not None:
            self._thread.join(TIMEOUT)
        self._listener.close()

    def _serve(self) -> None:
        try:
            for number in range(self._connections):
                raw, _ = self._listener.accept()
                conn = self._context.wrap_socket(raw, server_side=True) if self._context else raw
                with conn:
                    if self._greeting:
                        conn.sendall(self._greeting)
                    if number == 0 and self._close_first is not None:
                        self.received.append(read_until(conn, self._close_first))
                        conn.close()  # as a collector that restarts or drops idle clients
                        self.first_closed.set()
                        continue
                    self.received.append(read_to_eof(conn))
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(exc)


# --- UDP -------------------------------------------------------------------------------


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(TIMEOUT)
    yield receiver
    receiver.close()


def test_udp_sends_one_datagram_per_message_unframed(udp_receiver: socket.socket) -> None:
    """Over UDP each message is exactly one datagram, with no framing added."""
    port = udp_receiver.getsockname()[1]
    transport = make_transport(output("udp", port))
    messages = [b"<134>1 2025-11-28T07:25:12.125Z h cato - - - CEF:0|a", b'{"b": 2}', "Zürich".encode()]
    try:
        send_and_wait(transport, messages)
        assert [udp_receiver.recv(65535) for _ in messages] == messages
    finally:
        transport.close()
    assert transport.label == f"udp://127.0.0.1:{port}"


def test_udp_carries_the_largest_payload(udp_receiver: socket.socket) -> None:
    """A message of exactly max_message_bytes (65,507) goes out whole in one datagram."""
    transport = DatagramTransport("127.0.0.1", udp_receiver.getsockname()[1])
    assert transport.max_message_bytes == UDP_MAX_PAYLOAD == 65507
    message = b"x" * UDP_MAX_PAYLOAD
    try:
        send_and_wait(transport, [message])
        assert udp_receiver.recv(70000) == message
    finally:
        transport.close()


def test_udp_message_too_large_is_a_send_error(udp_receiver: socket.socket) -> None:
    """A datagram over the UDP limit is a SendError naming the target, not an OSError."""
    transport = DatagramTransport("127.0.0.1", udp_receiver.getsockname()[1])
    try:
        with pytest.raises(SendError, match=r"^udp://127\.0\.0\.1:\d+: "):
            send_and_wait(transport, [b"x" * (UDP_MAX_PAYLOAD + 1)])
    finally:
        transport.close()


def test_udp_unresolvable_host_is_a_send_error() -> None:
    """A host name that does not resolve is a SendError saying so."""
    transport = DatagramTransport("no-such-host.invalid", 514)
    with pytest.raises(SendError, match="cannot resolve the host name"):
        transport.probe()


class FakeClock:
    """A monotonic clock that only sleeping moves; the sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, secs: float) -> None:
        self.sleeps.append(round(secs, 6))
        self.now += secs


def test_udp_paced_sends_slices_of_10ms_at_the_rate(udp_receiver: socket.socket) -> None:
    """At 1,000 datagrams/s: slices of 10 back to back, 10 ms apart; every datagram arrives, in order."""
    fake = FakeClock()
    port = udp_receiver.getsockname()[1]
    transport = DatagramTransport("127.0.0.1", port, 1000, clock=fake.clock, sleep=fake.sleep)
    messages = [b"event %d" % i for i in range(35)]
    try:
        send_and_wait(transport, messages)
        assert fake.sleeps == [0.01, 0.01, 0.01]  # 10 + 10 + 10 + 5 datagrams
        assert [udp_receiver.recv(100) for _ in messages] == messages
        send_and_wait(transport, messages[:5])  # right after: waits for the last slice's 5 ms
        assert fake.sleeps[3:] == [0.005]
        fake.now += 60  # idle: no credit is saved up, the next slice goes at once, then paced
        send_and_wait(transport, messages[:20])
        assert fake.sleeps[4:] == [0.01]
    finally:
        transport.close()


def test_udp_unpaced_sends_without_waiting(udp_receiver: socket.socket) -> None:
    """max_events_per_sec: 0 given explicitly: the batch goes out in one go."""
    fake = FakeClock()
    transport = DatagramTransport("127.0.0.1", udp_receiver.getsockname()[1], 0, fake.clock, fake.sleep)
    try:
        send_and_wait(transport, [b"x"] * 50)
        assert fake.sleeps == []
    finally:
        transport.close()


def test_udp_is_paced_by_default_and_holds_the_rate(udp_receiver: socket.socket) -> None:
    """protocol udp without max_events_per_sec is paced at 2,000/s: 100 datagrams take ~45 ms or more."""
    config = output("udp", udp_receiver.getsockname()[1])
    assert config.max_events_per_sec == 2000
    transport = make_transport(config)
    started = time.monotonic()
    try:
        send_and_wait(transport, [b"event %d" % i for i in range(100)])
        took = time.monotonic() - started
        assert [udp_receiver.recv(100) for _ in range(100)] == [b"event %d" % i for i in range(100)]
    finally:
        transport.close()
    assert 0.04 <= took < 1.0  # 5 slices of 20 at 10 ms intervals: 40 ms, the first at once


# --- TCP -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        ("octet_counting", b"5 hello8 CEF:0|\xc3\xbc3 a\nb"),
        ("newline", b"hello\nCEF:0|\xc3\xbc\na\nb\n"),
    ],
)
def test_tcp_frames_exact_bytes(framing: str, expected: bytes) -> None:
    """Over TCP the batch arrives as octet-counted ("<len> <msg>") or newline-terminated frames."""
    with StreamServer() as server:
        transport = make_transport(output("tcp", server.port, f"  framing: {framing}\n"))
        send_and_wait(transport, [b"hello", "CEF:0|ü".encode(), b"a\nb"])
        transport.close()
    assert server.errors == []
    assert server.received == [expected]
    assert transport.label == f"tcp://127.0.0.1:{server.port}"


def test_tcp_batches_share_one_connection() -> None:
    """Consecutive batches go over the same connection, in order."""
    with StreamServer() as server:
        transport = make_transport(output("tcp", server.port))
        send_and_wait(transport, [b"one"])
        send_and_wait(transport, [b"two", b"three"])
        transport.close()
    assert server.received == [b"3 one3 two5 three"]


def test_tcp_close_lets_the_collector_read_everything() -> None:
    """close() ends with a FIN once the collector has read all, even with unread bytes on our side."""
    # Unread bytes in our receive queue would make a plain close() send a reset, and a
    # reset discards whatever the collector has not read yet.
    with StreamServer(greeting=b"unsolicited bytes from the collector") as server:
        transport = make_transport(output("tcp", server.port))
        send_and_wait(transport, [b"x" * 100_000])
        time.sleep(0.05)  # the greeting is in our receive queue now
        transport.close()
    assert server.errors == []
    assert server.received == [b"100000 " + b"x" * 100_000]


def test_tcp_connection_refused_is_a_send_error() -> None:
    """Nobody listening: SendError saying the connection was refused and what to check."""
    with StreamServer(listen=False) as server:  # bound but not listening: connections are refused
        transport = make_transport(output("tcp", server.port))
        with pytest.raises(SendError) as info:
            send_and_wait(transport, [b"x"])
    assert str(info.value) == (
        f"tcp://127.0.0.1:{server.port}: connection refused "
        "(is the collector running and listening on this port?)"
    )


def test_tcp_reconnects_on_the_next_send_after_a_failure() -> None:
    """After a failed send, the next send connects again and delivers the batch."""
    with StreamServer(listen=False) as server:
        transport = make_transport(output("tcp", server.port))
        with pytest.raises(SendError):
            send_and_wait(transport, [b"lost"])
        server.start()  # the collector comes up
        send_and_wait(transport, [b"again"])
        transport.close()
    assert server.received == [b"5 again"]


def test_tcp_idle_connection_closed_by_the_peer_is_detected_before_writing() -> None:
    """A connection the collector closed while idle is replaced before the next batch is written."""
    with StreamServer(close_first=7, connections=2) as server:
        connections = Connections(server.port)
        transport = StreamTransport(connections, "octet_counting", "tcp://test", ack_timeout_secs=2)
        send_and_wait(transport, [b"first"])
        connections.wait_hung_up(server.first_closed)
        send_and_wait(transport, [b"second"])  # must not vanish into the dead connection
        transport.close()
    assert server.errors == []
    assert server.received == [b"5 first", b"6 second"]
    assert len(connections.sockets) == 2


def test_tcp_idle_connection_reset_by_the_peer_is_replaced_and_its_last_batch_sent_again() -> None:
    """A connection reset (RST) while idle is replaced before the next batch is written, and
    what it acknowledged lately goes first (a reset may have thrown it away unread)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(TIMEOUT)
    received: list[bytes] = []
    closed = threading.Event()
    first_sent = threading.Event()

    def serve() -> None:
        conn1, _ = server.accept()
        received.append(read_until(conn1, 7))
        assert first_sent.wait(TIMEOUT)  # a reset before our send returned would fail that send
        conn1.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn1.close()  # linger 0: a reset instead of a FIN
        closed.set()
        conn2, _ = server.accept()
        with conn2:
            received.append(read_to_eof(conn2))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        connections = Connections(server.getsockname()[1])
        transport = StreamTransport(connections, "octet_counting", "tcp://test", ack_timeout_secs=2)
        send_and_wait(transport, [b"first"])
        first_sent.set()
        connections.wait_hung_up(closed)
        send_and_wait(transport, [b"second"])
        transport.close()
        thread.join(TIMEOUT)
    finally:
        server.close()
    assert received == [b"5 first", b"5 first6 second"]


def test_tcp_batch_not_acknowledged_in_time_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch the collector's TCP stack does not take within ack_timeout_secs is a SendError."""
    monkeypatch.setattr(transport_module, "CLOSE_TIMEOUT_SECS", 0.1)  # the peer never hangs up
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def connect() -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
        return sock

    transport = StreamTransport(connect, "octet_counting", "tcp://test", ack_timeout_secs=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(SendError) as info:
            send_and_wait(transport, [b"x" * 150_000])  # stays in our send queue: the peer never reads
        assert time.monotonic() - started < TIMEOUT
        assert str(info.value) == (
            "tcp://test: send failed: the collector did not acknowledge the batch within 0.2s"
        )
    finally:
        transport.close()
        server.close()


def test_probe_connects_without_sending() -> None:
    """probe() opens the connection (so `check` can report it) and sends nothing."""
    with StreamServer() as server:
        transport = make_transport(output("tcp", server.port))
        transport.probe()
        transport.close()
    assert server.received == [b""]


# --- TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def tls_output(port: int, tls: str) -> OutputConfig:
    return output("tls", port, "  tls:\n" + tls)


def test_tls_verifies_the_server_by_default(server_context: ssl.SSLContext) -> None:
    """With no ca_file the system CAs are used: a server signed by an unknown CA is refused."""
    with StreamServer(server_context) as server:
        transport = make_transport(output("tls", server.port))
        with pytest.raises(SendError) as info:
            send_and_wait(transport, [b"secret event"])
        transport.close()
    message = str(info.value)
    assert message.startswith(f"tls://127.0.0.1:{server.port}: TLS certificate rejected: ")
    assert "certificate" in message.split("rejected: ", 1)[1]
    assert "signed by a CA we do not trust (check output.tls.ca_file)" in message
    assert server.received == []


def test_tls_with_ca_file_delivers_exact_frames(server_context: ssl.SSLContext, ca_file: Path) -> None:
    """With tls.ca_file naming the collector's CA, the batches arrive as octet-counted frames."""
    with StreamServer(server_context) as server:
        transport = make_transport(tls_output(server.port, f"    ca_file: {ca_file}\n"))
        send_and_wait(transport, [b"hello", b"CEF:0|x"])
        send_and_wait(transport, [b"again"])
        transport.close()
    assert server.errors == []
    assert server.received == [b"5 hello7 CEF:0|x5 again"]
    assert transport.label == f"tls://127.0.0.1:{server.port}"


def test_tls_newline_framing(server_context: ssl.SSLContext, ca_file: Path) -> None:
    """TLS takes newline framing as well."""
    with StreamServer(server_context) as server:
        extra = f"  framing: newline\n  tls:\n    ca_file: {ca_file}\n"
        transport = make_transport(output("tls", server.port, extra))
        send_and_wait(transport, [b"hello", b"CEF:0|x"])
        transport.close()
    assert server.received == [b"hello\nCEF:0|x\n"]


def test_tls_checks_the_host_name(ca: trustme.CA, ca_file: Path) -> None:
    """A trusted certificate issued for another name is refused (hostname checking is on)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("collector.example.com").configure_cert(context)
    with StreamServer(context) as server:
        transport = make_transport(tls_output(server.port, f"    ca_file: {ca_file}\n"))
        with pytest.raises(SendError, match="TLS certificate rejected: .*mismatch"):
            transport.probe()
        transport.close()


def test_tls_verify_false_accepts_an_untrusted_server(server_context: ssl.SSLContext) -> None:
    """tls.verify: false turns verification off (and the batch still arrives)."""
    with StreamServer(server_context) as server:
        transport = make_transport(tls_output(server.port, "    verify: false\n"))
        send_and_wait(transport, [b"event"])
        transport.close()
    assert server.received == [b"5 event"]


def test_tls_idle_connection_closed_by_the_peer_is_replaced(
    server_context: ssl.SSLContext, ca_file: Path
) -> None:
    """A TLS connection the collector closed while idle is replaced before the next batch."""
    with StreamServer(server_context, close_first=7, connections=2) as server:
        context = tls_context(tls_output(server.port, f"    ca_file: {ca_file}\n"))
        connections = Connections(server.port, context)
        transport = StreamTransport(connections, "octet_counting", "tls://test", ack_timeout_secs=2)
        send_and_wait(transport, [b"first"])
        connections.wait_hung_up(server.first_closed)
        send_and_wait(transport, [b"second"])
        transport.close()
    assert server.errors == []
    assert server.received == [b"5 first", b"6 second"]
    assert len(connections.sockets) == 2


def test_tls_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    """A tls.ca_file that cannot be loaded is a ConfigError when the transport is built."""
    with pytest.raises(ConfigError, match="^output.tls: cannot load certificates: "):
        make_transport(tls_output(6514, f"    ca_file: {tmp_path / 'missing.pem'}\n"))


# --- file and stdout -------------------------------------------------------------------


def output_file(path: Path) -> OutputConfig:
    text = f"source: {{bucket: b}}\noutput:\n  protocol: file\n  path: {path}\n"
    return parse_config(text, env={}).pipeline().output


def test_file_transport_appends_one_event_per_line(tmp_path: Path) -> None:
    """protocol file appends each message and a LF, creating directories, across restarts."""
    path = tmp_path / "out" / "events.log"
    transport = make_transport(output_file(path))
    send_and_wait(transport, [b"CEF:0|a", b'{"b": 2}'])
    transport.close()
    again = make_transport(output_file(path))
    send_and_wait(again, [b"CEF:0|c"])
    again.close()
    assert path.read_bytes() == b'CEF:0|a\n{"b": 2}\nCEF:0|c\n'
    assert isinstance(transport, FileTransport)
    assert transport.label == f"file {path}"


def test_file_transport_that_cannot_open_is_a_send_error(tmp_path: Path) -> None:
    """A file path that cannot be opened (parent is a file) is a SendError naming the file."""
    (tmp_path / "plain").write_text("x")
    transport = FileTransport(str(tmp_path / "plain" / "events.log"))
    with pytest.raises(SendError, match=r"^file .*events\.log: cannot open for appending: "):
        send_and_wait(transport, [b"x"])


def test_stdout_transport_writes_lines() -> None:
    """protocol stdout writes each message and a LF, and flushes."""
    stream = io.BytesIO()
    transport = StdoutTransport(stream)
    send_and_wait(transport, [b"one", b"two"])
    assert stream.getvalue() == b"one\ntwo\n"


@pytest.mark.parametrize(
    ("protocol", "kind"),
    [("udp", DatagramTransport), ("tcp", StreamTransport), ("tls", StreamTransport),
     ("stdout", StdoutTransport)],
)  # fmt: skip
def test_make_transport_builds_the_configured_protocol(protocol: str, kind: type) -> None:
    """make_transport returns the transport that output.protocol names; nothing connects yet."""
    transport: Transport = make_transport(
        parse_config(f"source: {{bucket: b}}\noutput:\n  protocol: {protocol}\n", env={}).pipeline().output
    )
    assert isinstance(transport, kind)
    transport.close()


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionRefusedError(111, "refused"),
         "connection refused (is the collector running and listening on this port?)"),
        (socket.gaierror(-2, "Name or service not known"),
         "cannot resolve the host name (Name or service not known)"),
        (TimeoutError("timed out"), "timed out"),
        (OSError(113, "No route to host"), "[Errno 113] No route to host"),
        (OSError(), "OSError"),
    ],
)  # fmt: skip
def test_connect_error_says_what_to_check(exc: BaseException, reason: str) -> None:
    """connect_error turns a socket error into one line: the target and the reason."""
    assert str(connect_error("tcp://h:1", exc)) == f"tcp://h:1: {reason}"


def test_relp_tls_is_relp_over_a_tls_connection() -> None:
    """protocol relp-tls: the RELP client on the TLS connection the tls protocol makes."""
    from forwarder.transports.relp import RelpTransport

    config = parse_config(
        "source: {bucket: b}\n"
        "output: {protocol: relp-tls, host: siem.example.com, tls: {min_version: '1.3'}}\n",
        env={},
    )
    transport = make_transport(config.pipeline().output)
    assert isinstance(transport, RelpTransport)
    assert transport.label == "relp-tls://siem.example.com:20514"
