"""TCP and TLS: octet-counting or newline framing; batches written back to back, each
acknowledged when the collector's TCP stack has its last byte.

Each batch written remembers where it ends on the connection, in bytes handed to TCP
since the connection opened (with TLS: the encrypted bytes, records and all). The bytes
acknowledged so far are those handed to TCP minus what the kernel still holds
unacknowledged in the socket's send queue (Linux ``SIOCOUTQ``); a batch is acknowledged
when its end is. So the next batches are written while earlier ones are on their way: the
link stays busy, and a long round trip costs one round trip per window, not per batch.

A connection that fails, or on which nothing is acknowledged for ``ack_timeout_secs``
while batches are in flight, is reset, and the batches not acknowledged are sent again on
a new connection, in order (a collector that was only slow may still read its old copy:
repeats). A collector's TCP stack acknowledging a batch does not mean the collector read
it: when a connection ends other than by the collector's clean close, the batches it
acknowledged lately are sent again first (see :mod:`forwarder.transports.replay`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence

from forwarder.errors import SendError
from forwarder.formats.syslog import BATCH_FRAMERS
from forwarder.transports.base import Held, connect_error
from forwarder.transports.replay import Tail
from forwarder.transports.tcpstate import CLOSED, OPEN, handed_to_tcp, peer_state, unacked_bytes

# How long a closing connection waits for the collector to read what is left and hang up.
CLOSE_TIMEOUT_SECS = 2.0


class Flight:
    """A batch written on the connection: where it ends, its bytes, and whether it is one
    the pipeline counts (not a batch sent again from the tail)."""

    __slots__ = ("counted", "end", "payload")

    def __init__(self, end: int, payload: bytes, counted: bool) -> None:
        self.end, self.payload, self.counted = end, payload, counted


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
        tail: Tail | None = None,
    ) -> None:
        self._connect = connect
        self._frames = BATCH_FRAMERS[framing]
        self.label = label
        self._ack_timeout = ack_timeout_secs
        self._sock: socket.socket | None = None
        self._flight: deque[Flight] = deque()  # the batches written, not yet acknowledged
        # The batches acknowledged lately, and those to send again: shared by the members of
        # a failover, so that the next collector gets them; the owner says what is left.
        self._tail = tail or Tail()
        self._owns_tail = tail is None
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
        if self._sock is not None and not self._flight:
            self._check_peer()
        self._socket()

    def write(self, messages: list[bytes]) -> None:
        if self._held.failure is not None:
            return  # lost with the connection: acknowledged() reports it, then all is sent again
        if self._sock is not None:
            self._check_peer()
            if self._held.failure is not None:
                return
        try:
            sock = self._socket()
        except SendError as exc:
            self._held.fail(exc)
            return
        again = self._tail.take()  # what a connection that ended may have lost goes first
        try:
            while again:
                self._send(sock, again[0], counted=False)
                del again[0]
            self._send(sock, self._frames(messages), counted=True)
        except (OSError, ssl.SSLError) as exc:
            self._fail(exc, unsent=again)

    def _send(self, sock: socket.socket, payload: bytes, counted: bool) -> None:
        sock.sendall(payload)
        if not self._flight:
            self._progress_at = time.monotonic()
        self._flight.append(Flight(handed_to_tcp(sock), payload, counted))

    def _check_peer(self) -> None:
        """Before writing: if the collector hung up, end the connection (failing the batches
        in flight, which then go again) rather than write into a dead socket."""
        assert self._sock is not None
        state = peer_state(self._sock)
        if state == OPEN:
            return
        self._count_acknowledged()
        if self._held.failure is not None:
            return  # _count_acknowledged met the error and ended the connection
        if self._flight:
            self._fail(ConnectionError("the collector closed the connection"), clean=state == CLOSED)
        elif state == CLOSED:
            self._tail.read()
            self._hang_up()  # the collector went away while we were idle
        else:
            self._tail.lost([])  # reset: what it acknowledged last may be unread and gone
            self._abort()

    def acknowledged(self, wait_secs: float) -> int:
        deadline = time.monotonic() + wait_secs
        # On loopback a batch is acknowledged ~0.2 ms after sendall returns; starting at
        # 0.5 ms took 4.7 s instead of 4.2-4.4 s for 1M events in batches of 1000.
        pause = 0.0001
        while True:
            self._count_acknowledged()
            held = self._held
            left = deadline - time.monotonic()
            if held.acknowledged or held.failure is not None or not self._flight or left <= 0:
                return held.report()
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)

    def _count_acknowledged(self) -> None:
        """Move the batches whose last byte the collector's TCP stack took to the reported
        count; fail the connection on an error or after ack_timeout_secs without progress."""
        sock, flight = self._sock, self._flight
        if sock is None or not flight:
            return
        try:
            acked = flight[-1].end - unacked_bytes(sock)  # the last end is what was handed over
            count = 0
            while flight and flight[0].end <= acked:
                batch = flight.popleft()
                count += batch.counted
                self._tail.acknowledged(batch.payload)
            self._held.acknowledged += count
            now = time.monotonic()
            if acked != self._acked:  # progress, if only part of a batch
                self._acked, self._progress_at = acked, now
            if not flight:
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

    def _fail(self, exc: BaseException, clean: bool = False, unsent: Sequence[bytes] = ()) -> None:
        """The connection failed: reset it. Its batches not acknowledged are reported lost
        (the pipeline sends them again); unless the collector closed it cleanly, those it
        acknowledged lately go again too, first (see :mod:`forwarder.transports.replay`),
        and so do the ones to send again that were not written yet (*unsent*)."""
        unconfirmed = [batch.payload for batch in self._flight if not batch.counted] + list(unsent)
        if clean:
            self._tail.read()
        self._tail.lost(unconfirmed)
        self._abort()
        self._flight.clear()
        self._held.failure = SendError(f"{self.label}: send failed: {exc}")

    def _abort(self) -> None:
        """Drop a connection whose batches were not all acknowledged, with a reset (the
        collector is not left waiting for the rest of a batch cut short); the batches not
        acknowledged go again, in order, on a new connection."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def close(self) -> None:
        """Close (see _hang_up) and forget what was in flight."""
        clean = self._hang_up()
        if clean:
            self._tail.read()
        elif clean is not None:  # a reset, or no FIN in time: what it acknowledged may be gone
            self._tail.lost([])
        if self._owns_tail:
            self._tail.abandon(self.label)
        self._flight.clear()
        self._held = Held()

    def _hang_up(self) -> bool | None:
        """Close so that the collector reads all we sent, then hangs up itself; whether it
        did (its FIN), None without a connection.

        Closing a socket whose receive queue holds unread bytes (a TLS session ticket, say)
        makes the kernel send a reset, and a reset can make the collector's side discard
        what the collector has not read yet: acknowledged events would be lost. So: TLS
        close_notify, our FIN, then read until the collector closes (bounded).
        """
        sock, self._sock = self._sock, None
        if sock is None:
            return None
        clean = False
        try:
            sock.settimeout(CLOSE_TIMEOUT_SECS)
            if isinstance(sock, ssl.SSLSocket):
                sock = sock.unwrap()
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + CLOSE_TIMEOUT_SECS
            data = b"."
            while data and time.monotonic() < deadline:
                data = sock.recv(65536)
            clean = not data  # it hung up after reading all we sent
        except (OSError, ssl.SSLError):
            clean = peer_state(sock) == CLOSED  # it had hung up already (its FIN), or reset
        finally:
            sock.close()
        return clean
