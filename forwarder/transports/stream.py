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
import dataclasses
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
from forwarder.formats.syslog import BATCH_FRAMERS

# How long a closing connection waits for the collector to read what is left and hang up.
CLOSE_TIMEOUT_SECS = 2.0
# The largest UDP payload IPv4 can carry (65535 - 8 UDP header - 20 IP header).
UDP_MAX_PAYLOAD = 65507
# A paced UDP transport sends this long's worth of datagrams back to back, then waits: at
# the default 2,000/s, bursts of 20 datagrams (~25 KB of 1.2 KB events), a tenth of
# Linux's default 208 KiB socket receive buffer.
PACE_SLICE_SECS = 0.01


class Transport(Protocol):
    """Sends batches of messages; see the module docstring for what a return means."""

    max_message_bytes: int | None

    @property
    def label(self) -> str:
        """Names the collector in messages."""
        ...

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


# OpenSSL verify codes (X509_V_ERR_*) that have a plain-words explanation.
_VERIFY_REASONS = {
    2: "the collector's certificate is signed by a CA we do not trust (check output.tls.ca_file)",
    18: "the collector's certificate is self-signed and not trusted (check output.tls.ca_file)",
    19: "the collector's certificate chain ends in a CA we do not trust (check output.tls.ca_file)",
    20: "the collector's certificate is signed by a CA we do not trust (check output.tls.ca_file)",
    21: "the collector's certificate is signed by a CA we do not trust (check output.tls.ca_file)",
    9: "the collector's certificate is not valid yet (check the clocks)",
    10: "the collector's certificate has expired (renew it on the collector)",
}


def connect_error(label: str, exc: BaseException, server_name: str = "") -> SendError:
    """A one-line SendError that says why connecting to *label* failed and what to check."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason
        if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH / IP_ADDRESS_MISMATCH
            reason = (
                f"TLS certificate rejected: it is not for the name {server_name or 'we connected to'!r} "
                "(check output.host, or set output.tls.server_name to the name in the certificate)"
            )
        elif exc.verify_code in _VERIFY_REASONS:
            reason = f"TLS certificate rejected: {_VERIFY_REASONS[exc.verify_code]} [{detail}]"
        else:
            reason = f"TLS certificate rejected: {detail} (check output.tls.ca_file and output.host)"
    elif isinstance(exc, ssl.SSLError):
        reason = (
            f"TLS handshake refused by the collector ({getattr(exc, 'reason', None) or exc}); "
            "does it need a client "
            "certificate (output.tls.cert_file) or another TLS version (output.tls.min_version)?"
        )
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


class DatagramTransport:
    """UDP: one message per datagram, no framing; paced to *max_datagrams_per_sec* (0: not).

    UDP loss is invisible to the sender, and a burst overruns a collector's receive buffer
    however fast the collector is on average: so datagrams go out in slices of
    PACE_SLICE_SECS at the rate, never faster, and time left idle is not made up for with
    a burst. A batch returns when its last datagram went out (a stop waits for that).
    """

    max_message_bytes: int | None = UDP_MAX_PAYLOAD

    def __init__(
        self,
        host: str,
        port: int,
        max_datagrams_per_sec: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.label = f"udp://{host}:{port}"
        self._address = (host, port)
        self._sock: socket.socket | None = None
        self._rate = max_datagrams_per_sec
        self._slice = max(1, int(max_datagrams_per_sec * PACE_SLICE_SECS))
        self._clock, self._sleep = clock, sleep
        self._due = 0.0  # when the next slice may go

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
        longest = max(map(len, messages), default=0)
        if longest > UDP_MAX_PAYLOAD:  # the pipeline fits messages first (output.oversize)
            raise SendError(f"{self.label}: a message of {longest} bytes is over UDP's {UDP_MAX_PAYLOAD}")
        send = self._socket().send
        try:
            if not self._rate:
                for message in messages:
                    send(message)
                return
            for start in range(0, len(messages), self._slice):
                chunk = messages[start : start + self._slice]
                self._wait_turn(len(chunk))
                for message in chunk:
                    send(message)
        except OSError as exc:
            self.close()
            raise connect_error(self.label, exc) from exc

    def _wait_turn(self, count: int) -> None:
        """Wait until *count* more datagrams keep to the rate."""
        now = self._clock()
        if self._due > now:
            self._sleep(self._due - now)
        else:
            self._due = now  # idle (or just started): no credit saved up, so no catch-up burst
        self._due += count / self._rate

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
    """A client context: certificate and name verification on unless tls.verify is false,
    TLS 1.2 at least (tls.min_version), CAs from a file or a directory (c_rehash'ed)."""
    tls = output.tls
    try:
        ca_dir = bool(tls.ca_file) and os.path.isdir(tls.ca_file)
        context = ssl.create_default_context(
            cafile=None if ca_dir else tls.ca_file or None, capath=tls.ca_file if ca_dir else None
        )
        context.minimum_version = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[
            tls.min_version
        ]
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"output.tls: cannot load certificates: {exc}") from None
    return context


# How long a new TLS 1.3 connection waits for a refusal the server sends after the handshake.
TLS13_ACCEPT_WAIT_SECS = 0.2


def _check_tls13_acceptance(sock: ssl.SSLSocket) -> None:
    """Raise if the collector refuses a TLS 1.3 connection right after the handshake.

    In TLS 1.3 the client's handshake ends before the server has checked the client
    certificate; a server that wants one (mutual TLS) then answers with an alert, or just
    hangs up. Without this wait the first batch would go into a connection already refused,
    its bytes acknowledged by the kernel and dropped by the collector.
    """
    if sock.version() != "TLSv1.3":
        return
    timeout = sock.gettimeout()
    sock.settimeout(TLS13_ACCEPT_WAIT_SECS)
    try:
        if sock.recv(1) == b"":
            raise ssl.SSLError("the collector closed the connection right after the handshake")
    except (TimeoutError, ssl.SSLWantReadError):
        pass  # nothing said: accepted (session tickets are consumed by the ssl layer)
    finally:
        sock.settimeout(timeout)


def make_transport(output: OutputConfig) -> Transport:
    """The transport that output.protocol names, built from the output settings."""
    if output.hosts:
        from forwarder.transports.failover import (  # failover builds on this module
            FailoverTransport,
            parse_hosts,
        )

        pairs = parse_hosts(output.hosts, output.port)
        each = [make_transport(dataclasses.replace(output, host=h, port=p, hosts=())) for h, p in pairs]
        return FailoverTransport(each, output.failback_secs)
    host, port, timeout = output.host, output.port, output.connect_timeout_secs
    label = f"{output.protocol}://{host}:{port}"
    if output.protocol == "udp":
        return DatagramTransport(host, port, output.max_events_per_sec)
    if output.protocol == "file":
        return FileTransport(output.path)
    if output.protocol == "stdout":
        return StdoutTransport()

    def connect_tcp() -> socket.socket:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    from forwarder.transports.relp import RelpTransport  # relp builds on this module

    if output.protocol == "relp":
        return RelpTransport(connect_tcp, label, output.ack_timeout_secs)

    if output.protocol == "tcp":
        return StreamTransport(connect_tcp, output.framing, label, output.ack_timeout_secs)

    context = tls_context(output)

    server_name = output.tls.server_name or host

    def connect_tls() -> socket.socket:
        raw = connect_tcp()
        try:
            sock = context.wrap_socket(raw, server_hostname=server_name)
            _check_tls13_acceptance(sock)
            return sock
        except ssl.SSLError as exc:
            raw.close()
            raise connect_error(label, exc, server_name) from exc
        except BaseException:
            raw.close()
            raise

    if output.protocol == "relp-tls":  # imrelp with tls="on"
        return RelpTransport(connect_tls, label, output.ack_timeout_secs)
    return StreamTransport(connect_tls, output.framing, label, output.ack_timeout_secs)
