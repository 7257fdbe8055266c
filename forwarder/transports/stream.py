"""TCP and TLS: octet-counting or newline framing; batches written back to back, each
acknowledged when the collector's TCP stack has its last byte.

Each batch written remembers where it ends on the connection, in bytes handed to TCP
since the connection opened (with TLS: the encrypted bytes, records and all). The bytes
acknowledged so far are those handed to TCP minus what the kernel still holds
unacknowledged in the socket's send queue (Linux ``SIOCOUTQ``); a batch is acknowledged
when its end is. So the next batches are written while earlier ones are on their way: the
link stays busy, and a long round trip costs one round trip per window, not per batch.

A connection that fails, or on which nothing is acknowledged for ``ack_timeout_secs``
while batches are in flight, is reset: the reset makes the collector's kernel discard what
the collector has not read of it, so the batches not acknowledged are sent again on a new
connection as the only copy, in order. This does not cover a collector that dies before
reading its receive buffer (only RELP's application-level acknowledgements can).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import socket
import ssl
import struct
import termios
import time
from collections import deque
from collections.abc import Callable

from forwarder.errors import SendError
from forwarder.formats.syslog import BATCH_FRAMERS
from forwarder.transports.base import Held, connect_error

# How long a closing connection waits for the collector to read what is left and hang up.
CLOSE_TIMEOUT_SECS = 2.0
# struct tcp_info (linux/tcp.h): tcpi_bytes_acked, a u64 at byte 120 (Linux 4.1 and later).
_BYTES_ACKED = struct.Struct("=Q")
_BYTES_ACKED_AT = 120
_TCP_INFO_LEN = _BYTES_ACKED_AT + _BYTES_ACKED.size


def unacked_bytes(sock: socket.socket) -> int:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux SIOCOUTQ)."""
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)  # SIOCOUTQ == TIOCOUTQ on Linux
    return buf[0]


def _bytes_acked(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    if len(info) < _TCP_INFO_LEN:
        raise OSError("the kernel does not report tcpi_bytes_acked (Linux 4.1 or later needed)")
    return int(_BYTES_ACKED.unpack_from(info, _BYTES_ACKED_AT)[0])


def handed_to_tcp(sock: socket.socket) -> int:
    """Bytes written to *sock* since it connected (acknowledged plus still queued), in the
    units both kernel counters share: with TLS, the encrypted bytes.

    Read between two readings of the acknowledged count that agree, so that no
    acknowledgement slipped in between (only the caller writes, so nothing else moves).
    """
    while True:
        before = _bytes_acked(sock)
        queued = unacked_bytes(sock)
        if _bytes_acked(sock) == before:
            return before + queued


def _peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed (FIN, RST or TLS close_notify) the connection.

    Writing into such a socket "succeeds" and the bytes then vanish with the reset, so a
    stream is checked before every batch. Collectors never send data of their own; a TLS
    session ticket read here is consumed by the ssl layer and means "alive".
    """
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        data = sock.recv(1) if isinstance(sock, ssl.SSLSocket) else sock.recv(1, socket.MSG_PEEK)
        return data == b""
    except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    except (OSError, ssl.SSLError):
        return True
    finally:
        sock.settimeout(timeout)


class StreamTransport:
    """TCP or TLS, with octet-counting or newline framing; see the module docstring."""

    max_message_bytes: int | None = None
    paces_itself = False

    def __init__(
        self,
        connect: Callable[[], socket.socket],
        framing: str,
        label: str,
        ack_timeout_secs: float = 30.0,
    ) -> None:
        self._connect = connect
        self._frames = BATCH_FRAMERS[framing]
        self.label = label
        self._ack_timeout = ack_timeout_secs
        self._sock: socket.socket | None = None
        self._ends: deque[int] = deque()  # where each batch in flight ends, oldest first
        self._held = Held()  # for the next acknowledged()
        self._acked = 0  # bytes acknowledged, as handed_to_tcp counts, when last looked
        self._progress_at = 0.0  # when more bytes were acknowledged (or the window filled)

    def _socket(self) -> socket.socket:
        if self._sock is None:
            try:
                sock = self._connect()
                sock.settimeout(self._ack_timeout)  # a write blocked this long: the collector stalls
                self._acked = handed_to_tcp(sock)
            except (OSError, ssl.SSLError) as exc:
                raise connect_error(self.label, exc) from exc
            self._sock = sock
        return self._sock

    def probe(self) -> None:
        """Connect (and handshake) now; raise SendError if that fails."""
        if self._sock is not None and not self._ends and _peer_closed(self._sock):
            self._hang_up()
        self._socket()

    def write(self, messages: list[bytes]) -> None:
        if self._held.failure is not None:
            return  # lost with the connection: acknowledged() reports it, then all is sent again
        if self._sock is not None and _peer_closed(self._sock):
            self._count_acknowledged()
            if self._held.failure is not None:
                return
            if self._ends:  # gone with batches unacknowledged: they go again on a new connection
                self._fail(ConnectionError("the collector closed the connection"))
                return
            self._hang_up()  # the collector went away while we were idle: do not write into a dead socket
        try:
            sock = self._socket()
        except SendError as exc:
            self._held.fail(exc)
            return
        try:
            sock.sendall(self._frames(messages))
            handed = handed_to_tcp(sock)
        except (OSError, ssl.SSLError) as exc:
            self._fail(exc)
            return
        if not self._ends:
            self._progress_at = time.monotonic()
        self._ends.append(handed)

    def acknowledged(self, wait_secs: float) -> int:
        deadline = time.monotonic() + wait_secs
        # On loopback a batch is acknowledged ~0.2 ms after sendall returns; starting at
        # 0.5 ms took 4.7 s instead of 4.2-4.4 s for 1M events in batches of 1000.
        pause = 0.0001
        while True:
            self._count_acknowledged()
            held = self._held
            left = deadline - time.monotonic()
            if held.acknowledged or held.failure is not None or not self._ends or left <= 0:
                return held.report()
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)

    def _count_acknowledged(self) -> None:
        """Move the batches whose last byte the collector's TCP stack took to the reported
        count; fail the connection on an error or after ack_timeout_secs without progress."""
        sock = self._sock
        if sock is None or not self._ends:
            return
        try:
            acked = self._ends[-1] - unacked_bytes(sock)  # the last end is what was handed over
            ends, count = self._ends, 0
            while ends and ends[0] <= acked:
                ends.popleft()
                count += 1
            self._held.acknowledged += count
            now = time.monotonic()
            if acked != self._acked:  # progress, if only part of a batch
                self._acked, self._progress_at = acked, now
            if not ends:
                return
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error))
            if now - self._progress_at > self._ack_timeout:
                raise TimeoutError(
                    f"the collector did not acknowledge the batch within {self._ack_timeout:g}s"
                )
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """The connection failed: reset it; its batches in flight are lost (reported next)."""
        self._abort()
        self._ends.clear()
        self._held.failure = SendError(f"{self.label}: send failed: {exc}")

    def _abort(self) -> None:
        """Drop a connection whose batches were not all acknowledged, with a reset.

        The reset makes the collector's kernel discard what the collector has not read of
        it: those batches are then sent again on a new connection as the only copy, in
        order, rather than arriving twice, the old copy late.
        """
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def close(self) -> None:
        """Close (see _hang_up) and forget what was in flight."""
        self._hang_up()
        self._ends.clear()
        self._held = Held()

    def _hang_up(self) -> None:
        """Close so that the collector reads all we sent, then hangs up itself.

        Closing a socket whose receive queue holds unread bytes (a TLS session ticket, say)
        makes the kernel send a reset, and a reset makes the collector's kernel discard
        what the collector has not read yet: acknowledged events would be lost. So: TLS
        close_notify, our FIN, then read until the collector closes (bounded).
        """
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.settimeout(CLOSE_TIMEOUT_SECS)
            if isinstance(sock, ssl.SSLSocket):
                sock = sock.unwrap()
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + CLOSE_TIMEOUT_SECS
            while sock.recv(65536) and time.monotonic() < deadline:
                pass
        except (OSError, ssl.SSLError):
            pass  # the collector is gone already: nothing more to save
        finally:
            sock.close()


def connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection with Nagle off (a batch is one write) and keepalive on."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock
