"""TCP and TLS: octet-counting or newline framing; a batch is acknowledged when the
collector's TCP stack has every byte of it.

Acknowledged means: every byte was written *and* the kernel reports no unacknowledged
bytes left in the socket's send queue (Linux ``SIOCOUTQ``). A batch not drained within
``ack_timeout_secs`` resets the connection and fails. This does not cover a collector that
dies before reading its receive buffer (only RELP's application-level acknowledgements can).
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
from collections.abc import Callable

from forwarder.errors import SendError
from forwarder.formats.syslog import BATCH_FRAMERS
from forwarder.transports.base import connect_error

# How long a closing connection waits for the collector to read what is left and hang up.
CLOSE_TIMEOUT_SECS = 2.0


def unacked_bytes(sock: socket.socket) -> int:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux SIOCOUTQ)."""
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)  # SIOCOUTQ == TIOCOUTQ on Linux
    return buf[0]


def _peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed (FIN, RST or TLS close_notify) an idle connection.

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
    """TCP or TLS, with octet-counting or newline framing; reconnects on the next send."""

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

    def _socket(self) -> socket.socket:
        if self._sock is not None and _peer_closed(self._sock):
            self.close()  # the collector went away while we were idle: do not write into a dead socket
        if self._sock is None:
            try:
                self._sock = self._connect()
            except (OSError, ssl.SSLError) as exc:
                raise connect_error(self.label, exc) from exc
        return self._sock

    def probe(self) -> None:
        """Connect (and handshake) now; raise SendError if that fails."""
        self._socket()

    def send(self, messages: list[bytes]) -> None:
        sock = self._socket()
        data = self._frames(messages)
        try:
            sock.sendall(data)
            self._wait_acknowledged(sock)
        except (OSError, ssl.SSLError) as exc:
            self._abort()
            raise SendError(f"{self.label}: send failed: {exc}") from exc

    def _abort(self) -> None:
        """Drop a connection whose batch was not acknowledged, with a reset.

        The reset makes the collector's kernel discard what the collector has not read of
        it: the batch is then sent again on a new connection as the only copy, in order,
        rather than arriving twice, the old copy late.
        """
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def _wait_acknowledged(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + self._ack_timeout
        # On loopback a batch is acknowledged ~0.2 ms after sendall returns; starting at
        # 0.5 ms took 4.7 s instead of 4.2-4.4 s for 1M events in batches of 1000.
        pause = 0.0001
        while unacked_bytes(sock):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the collector did not acknowledge the batch within {self._ack_timeout:g}s"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))

    def close(self) -> None:
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
