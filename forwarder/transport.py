"""Transports: deliver a batch of syslog messages and return only once it is acknowledged.

The whole interface is ``send(messages)``, ``probe()`` and ``close()``; ``send`` raises
SendError when the batch may not have arrived, and the pipeline then sends it again.

What "acknowledged" means here:
- tcp/tls: every byte was written *and* the kernel reports no unacknowledged bytes left in
  the socket's send queue (Linux ``SIOCOUTQ``), i.e. the collector's TCP stack has them.
  A batch not drained within ``ack_timeout_secs`` resets the connection and fails. This
  does not cover a collector that dies before reading its receive buffer (only RELP's
  application-level acknowledgements can).
- udp: handed to the kernel. UDP has no acknowledgement; loss is invisible to a sender.
- file: written and fsynced. stdout: written and flushed.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import socket
import ssl
import struct
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from forwarder.config import OutputConfig
from forwarder.errors import ConfigError, SendError
from forwarder.syslog import FRAMERS

# How long a closing connection waits for the collector to read what is left and hang up.
CLOSE_TIMEOUT_SECS = 2.0
# The largest UDP payload IPv4 can carry (65535 - 8 UDP header - 20 IP header).
UDP_MAX_PAYLOAD = 65507


class Transport(Protocol):
    """Sends batches of messages; see the module docstring for what a return means."""

    label: str
    max_message_bytes: int | None

    def send(self, messages: list[bytes]) -> None: ...

    def probe(self) -> None: ...

    def close(self) -> None: ...


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


def connect_error(label: str, exc: BaseException) -> SendError:
    """A one-line SendError that says why connecting to *label* failed and what to check."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason
        reason = f"TLS certificate rejected: {detail} (check output.tls.ca_file and output.host)"
    elif isinstance(exc, ssl.SSLError):
        reason = f"TLS handshake failed: {exc.reason or exc}"
    elif isinstance(exc, ConnectionRefusedError):
        reason = "connection refused (is the collector running and listening on this port?)"
    elif isinstance(exc, socket.gaierror):
        reason = f"cannot resolve the host name ({exc.strerror})"
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        reason = "timed out"
    else:
        reason = str(exc) or type(exc).__name__
    return SendError(f"{label}: {reason}")


class StreamTransport:
    """TCP or TLS, with octet-counting or newline framing; reconnects on the next send."""

    max_message_bytes: int | None = None

    def __init__(
        self,
        connect: Callable[[], socket.socket],
        framing: str,
        label: str,
        ack_timeout_secs: float = 30.0,
    ) -> None:
        self._connect = connect
        self._frame = FRAMERS[framing]
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
        frame = self._frame
        data = b"".join([frame(m) for m in messages])
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
        pause = 0.0005
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


class DatagramTransport:
    """UDP: one message per datagram, no framing."""

    max_message_bytes: int | None = UDP_MAX_PAYLOAD

    def __init__(self, host: str, port: int) -> None:
        self.label = f"udp://{host}:{port}"
        self._address = (host, port)
        self._sock: socket.socket | None = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            try:
                info = socket.getaddrinfo(*self._address, type=socket.SOCK_DGRAM)[0]
                sock = socket.socket(info[0], socket.SOCK_DGRAM)
                sock.connect(info[4])
            except OSError as exc:
                raise connect_error(self.label, exc) from exc
            self._sock = sock
        return self._sock

    def probe(self) -> None:
        self._socket()

    def send(self, messages: list[bytes]) -> None:
        send = self._socket().send
        try:
            for message in messages:
                send(message)
        except OSError as exc:
            self.close()
            raise connect_error(self.label, exc) from exc

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class FileTransport:
    """Append one event per line to a file, fsynced before the batch counts as delivered."""

    max_message_bytes: int | None = None

    def __init__(self, path: str) -> None:
        self.label = f"file {path}"
        self._path = Path(path)
        self._handle: IO[bytes] | None = None

    def _file(self) -> IO[bytes]:
        if self._handle is None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self._path, "ab")
            except OSError as exc:
                raise SendError(f"{self.label}: cannot open for appending: {exc.strerror}") from exc
        return self._handle

    def probe(self) -> None:
        self._file()

    def send(self, messages: list[bytes]) -> None:
        handle = self._file()
        try:
            handle.write(b"".join([m + b"\n" for m in messages]))
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            self.close()
            raise SendError(f"{self.label}: write failed: {exc.strerror}") from exc

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None


class StdoutTransport:
    """Write one event per line to standard output."""

    label = "stdout"
    max_message_bytes: int | None = None

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer

    def probe(self) -> None:
        return None

    def send(self, messages: list[bytes]) -> None:
        try:
            self._stream.write(b"".join([m + b"\n" for m in messages]))
            self._stream.flush()
        except OSError as exc:
            raise SendError(f"stdout: write failed: {exc}") from exc

    def close(self) -> None:
        return None


def tls_context(output: OutputConfig) -> ssl.SSLContext:
    """A client context: verification on unless tls.verify is false, TLS 1.2 at least."""
    tls = output.tls
    try:
        context = ssl.create_default_context(cafile=tls.ca_file or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"output.tls: cannot load certificates: {exc}") from None
    return context


def make_transport(output: OutputConfig) -> Transport:
    """The transport that output.protocol names, built from the output settings."""
    host, port, timeout = output.host, output.port, output.connect_timeout_secs
    if output.protocol == "udp":
        return DatagramTransport(host, port)
    if output.protocol == "file":
        return FileTransport(output.path)
    if output.protocol == "stdout":
        return StdoutTransport()

    def connect_tcp() -> socket.socket:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    if output.protocol == "tcp":
        return StreamTransport(connect_tcp, output.framing, f"tcp://{host}:{port}", output.ack_timeout_secs)

    context = tls_context(output)

    def connect_tls() -> socket.socket:
        raw = connect_tcp()
        try:
            return context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise

    return StreamTransport(connect_tls, output.framing, f"tls://{host}:{port}", output.ack_timeout_secs)
