"""Unit tests for forwarder.transports.relp: frames to the byte, and resuming a batch after a lost session."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from forwarder.errors import SendError
from forwarder.transports.relp import RelpTransport
from forwarder.transports.relpwire import TXNR_MAX, FrameReader, frame
from tests.support.sending import send_and_wait


@pytest.mark.parametrize(
    ("args", "wire"),
    [
        ((1, b"open", b"relp_version=0"), b"1 open 14 relp_version=0\n"),
        ((7, b"syslog", b"<134>1 - - - - - - \xc3\xbc"), b"7 syslog 21 <134>1 - - - - - - \xc3\xbc\n"),
        ((9, b"close"), b"9 close 0\n"),
    ],
)
def test_frame_bytes(args: tuple[int, bytes, bytes], wire: bytes) -> None:
    """TXNR SP COMMAND SP DATALEN [SP DATA] LF, with no SP and no data when DATALEN is 0."""
    assert frame(*args) == wire


def test_reader_handles_frames_split_anywhere() -> None:
    """Frames arriving a byte at a time, with LF inside data and empty data, parse exactly."""
    left, right = socket.socketpair()
    wire = b"1 rsp 93 200 OK\nrelp_version=0\nrelp_software=x,1,y\ncommands=syslog" + b"x" * 36 + b"\n"
    wire += b"0 serverclose 0\n2 rsp 6 200 OK\n"
    with left, right:
        for byte in wire:
            left.send(bytes([byte]))
        reader = FrameReader(right)
        first = reader.read()
        assert first[:2] == (1, b"rsp") and first[2].startswith(b"200 OK\nrelp_version=0")
        assert reader.read() == (0, b"serverclose", b"")
        assert reader.read() == (2, b"rsp", b"200 OK")


class FakeRelpServer:
    """Answers open, then 200 OK for each syslog frame; drops the session after *drop_after*;
    answers the message *refuse* with 500 once (storing nothing of it)."""

    def __init__(self, drop_after: int | None = None, refuse: bytes | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.received: list[bytes] = []
        self.drop_after = drop_after
        self.refuse = refuse
        self.txnrs: list[int] = []  # of every syslog and close frame, in order
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                reader = FrameReader(conn)
                try:
                    while True:
                        txnr, command, data = reader.read()
                        if command != b"open":
                            self.txnrs.append(txnr)
                        if command == b"open":
                            conn.sendall(frame(txnr, b"rsp", b"200 OK\n" + data))
                        elif command == b"close":
                            conn.sendall(frame(txnr, b"rsp"))
                            break
                        else:
                            if self.drop_after is not None and len(self.received) >= self.drop_after:
                                self.drop_after = None
                                break  # the session dies: this message and the rest unanswered
                            if data == self.refuse:
                                self.refuse = None
                                conn.sendall(frame(txnr, b"rsp", b"500 queue full"))
                                continue
                            self.received.append(data)
                            conn.sendall(frame(txnr, b"rsp", b"200 OK"))
                except ConnectionError:
                    pass


@pytest.fixture
def server() -> Iterator[FakeRelpServer]:
    fake = FakeRelpServer(drop_after=5)
    yield fake
    fake.listener.close()


def test_lost_session_resends_only_what_was_not_answered(server: FakeRelpServer) -> None:
    """The session dies after 5 answers: the failed send names them, the retry sends only the rest."""
    transport = RelpTransport(
        lambda: socket.create_connection(("127.0.0.1", server.port)), "relp://test", 5.0, window=3
    )
    messages = [b"m%d" % i for i in range(10)]
    with pytest.raises(SendError, match="after 5 of 10 messages were acknowledged"):
        send_and_wait(transport, messages)
    send_and_wait(transport, messages)  # the pipeline sends the same batch again
    transport.close()
    assert server.received == messages


def test_a_new_batch_starts_from_its_first_message(server: FakeRelpServer) -> None:
    """Answers counted for one batch do not carry over to the next."""
    server.drop_after = None
    transport = RelpTransport(lambda: socket.create_connection(("127.0.0.1", server.port)), "relp://t", 5.0)
    send_and_wait(transport, [b"a", b"b"])
    send_and_wait(transport, [b"c"])
    transport.close()
    assert server.received == [b"a", b"b", b"c"]


def test_a_refused_message_is_a_failed_send_and_goes_again_with_what_follows() -> None:
    """An answer other than 200 fails the send with the collector's words; the retry sends
    the refused message and every one after it again, none before it: nothing skipped."""
    server = FakeRelpServer(refuse=b"m4")
    try:
        transport = RelpTransport(
            lambda: socket.create_connection(("127.0.0.1", server.port)), "relp://test", 5.0, window=3
        )
        messages = [b"m%d" % i for i in range(8)]
        with pytest.raises(SendError, match=r"the collector refused message 5: b'500 queue full'"):
            send_and_wait(transport, messages)
        send_and_wait(transport, messages)  # the pipeline sends the same batch again
        transport.close()
        assert server.received[:4] == messages[:4]
        assert server.received[4:].count(b"m4") == 1 and server.received[-4:] == messages[4:]
    finally:
        server.listener.close()


def test_txnr_wraps_after_its_maximum_in_messages_and_in_close() -> None:
    """TXNR runs up to 999,999,999 inclusive, then 1 (librelp's rule), for the messages and
    for the close that follows them: every frame answered, the session closed."""
    server = FakeRelpServer()
    try:
        transport = RelpTransport(
            lambda: socket.create_connection(("127.0.0.1", server.port)), "relp://t", 5.0
        )
        send_and_wait(transport, [b"first"])  # opens the session (txnr 1 is open)
        transport._txnr = TXNR_MAX - 2
        send_and_wait(transport, [b"a", b"b"])  # TXNR_MAX - 1 and TXNR_MAX
        transport.close()  # its close is 1: answered, so close returns at once
        send_and_wait(transport, [b"c"])
        transport._txnr = TXNR_MAX - 2
        send_and_wait(transport, [b"d"])  # TXNR_MAX - 1: the close after it is TXNR_MAX
        transport.close()
        assert server.received == [b"first", b"a", b"b", b"c", b"d"]
        assert server.txnrs[-6:] == [TXNR_MAX - 1, TXNR_MAX, 1, 2, TXNR_MAX - 1, TXNR_MAX]
    finally:
        server.listener.close()
