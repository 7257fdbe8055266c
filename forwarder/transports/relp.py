"""RELP: syslog with application-level acknowledgements (rsyslog's imrelp speaks it).

Plain TCP syslog has no receipt: bytes the collector's kernel acknowledged can still die
with the collector. RELP answers every message after the collector took it, so the
checkpoint can wait for those answers. No kept-up RELP client exists on PyPI; this is a
small one for the parts a sender needs: open, syslog, close, and the server's close.

Wire format (the RELP specification, librelp doc/relp.html):

    RELP-FRAME = TXNR SP COMMAND SP DATALEN [SP DATA] TRAILER
    TXNR       = NUMBER   ; 1..999999999, one per command, then it wraps to 1
    DATALEN    = NUMBER   ; octets of DATA; 0 means no SP and no DATA follow
    TRAILER    = LF
    RSP DATA   = RSP-CODE [SP HUMANMSG] [LF CMDDATA]   ; "200 OK" on success

A session opens with ``open`` (offering relp_version=0 and commands=syslog) and ends with
``close``; the server may end it with ``serverclose`` (TXNR 0). Up to ``window`` messages
are in flight unanswered. When a session is lost, the messages of the batch that were not
answered are sent again on a new session (a repeat of the same batch resumes after the
answered ones), so the batch returns only once every message was answered with 200.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable

from forwarder.errors import SendError
from forwarder.transports.base import connect_error

log = logging.getLogger(__name__)

TXNR_MAX = 999_999_999
DEFAULT_WINDOW = 128  # librelp's default window
OFFER = b"relp_version=0\nrelp_software=forwarder\ncommands=syslog"


def frame(txnr: int, command: bytes, data: bytes = b"") -> bytes:
    """One RELP frame: ``b"<txnr> <command> <len>[ <data>]\\n"``."""
    if data:
        return b"%d %b %d %b\n" % (txnr, command, len(data), data)
    return b"%d %b 0\n" % (txnr, command)


class FrameReader:
    """Reads RELP frames from a socket (buffered)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the collector closed the RELP session")
        self._buffer += chunk

    def _token(self) -> bytes:
        while True:
            end = self._buffer.find(b" ")
            newline = self._buffer.find(b"\n")
            if newline != -1 and (end == -1 or newline < end):
                end = newline
            if end != -1:
                token, self._buffer = self._buffer[:end], self._buffer[end:]
                return token
            if len(self._buffer) > 64:
                raise ConnectionError(f"bad RELP frame header {self._buffer[:64]!r}")
            self._fill()

    def read(self) -> tuple[int, bytes, bytes]:
        """The next frame as (txnr, command, data)."""
        txnr = self._token()
        self._buffer = self._buffer[1:]
        command = self._token()
        self._buffer = self._buffer[1:]
        length_text = self._token()
        if not (txnr.isdigit() and length_text.isdigit()):
            raise ConnectionError(f"bad RELP frame header {txnr!r} {command!r} {length_text!r}")
        length = int(length_text)
        need = (1 + length if length else 0) + 1  # [SP DATA] LF
        while len(self._buffer) < need:
            self._fill()
        data = self._buffer[1 : 1 + length] if length else b""
        if self._buffer[need - 1 : need] != b"\n":
            raise ConnectionError("RELP frame without its trailing LF")
        self._buffer = self._buffer[need:]
        return int(txnr), command, data


class RelpTransport:
    """Sends batches over RELP and returns when the collector answered every message."""

    max_message_bytes: int | None = None
    paces_itself = False

    def __init__(
        self,
        connect: Callable[[], socket.socket],
        label: str,
        ack_timeout_secs: float = 30.0,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self._connect = connect
        self.label = label
        self._ack_timeout = ack_timeout_secs
        self._window = window
        self._sock: socket.socket | None = None
        self._reader: FrameReader | None = None
        self._txnr = 0
        self._batch: list[bytes] | None = None  # the batch being delivered ...
        self._answered = 0  # ... and how many of its messages (a prefix) were answered

    def _next_txnr(self) -> int:
        self._txnr = 1 if self._txnr >= TXNR_MAX else self._txnr + 1
        return self._txnr

    def _session(self) -> tuple[socket.socket, FrameReader]:
        if self._sock is not None and self._reader is not None:
            return self._sock, self._reader
        try:
            sock = self._connect()
        except (OSError, ssl.SSLError) as exc:
            raise connect_error(self.label, exc) from exc
        sock.settimeout(self._ack_timeout)
        reader = FrameReader(sock)
        self._txnr = 0
        try:
            txnr = self._next_txnr()
            sock.sendall(frame(txnr, b"open", OFFER))
            answer = reader.read()
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise SendError(f"{self.label}: RELP session not opened: {exc}") from exc
        if answer[0] != txnr or answer[1] != b"rsp" or not answer[2].startswith(b"200"):
            sock.close()
            raise SendError(f"{self.label}: the collector refused the RELP session: {answer[2][:80]!r}")
        if b"commands=syslog" not in answer[2]:
            sock.close()
            raise SendError(f"{self.label}: the collector does not accept the RELP syslog command")
        self._sock, self._reader = sock, reader
        return sock, reader

    def probe(self) -> None:
        """Open a session now; raise SendError if that fails."""
        self._session()

    def send(self, messages: list[bytes]) -> None:
        if messages is not self._batch:  # a new batch; the same one again resumes after its answers
            self._batch, self._answered = messages, 0
        try:
            sock, reader = self._session()
            while self._answered < len(messages):
                self._send_window(sock, reader, messages)
        except (OSError, ssl.SSLError) as exc:
            self._abort()
            raise SendError(
                f"{self.label}: RELP session lost after {self._answered} of {len(messages)} messages "
                f"were acknowledged: {exc}"
            ) from exc
        self._batch, self._answered = None, 0

    def _send_window(self, sock: socket.socket, reader: FrameReader, messages: list[bytes]) -> None:
        """Send the next window of messages and wait until each was answered."""
        first = self._answered
        chunk = messages[first : first + self._window]
        waiting: dict[int, int] = {}
        frames = []
        for index, message in enumerate(chunk, first):
            txnr = self._next_txnr()
            waiting[txnr] = index
            frames.append(frame(txnr, b"syslog", message))
        sock.sendall(b"".join(frames))
        deadline = time.monotonic() + self._ack_timeout
        answered: set[int] = set()
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no RELP answer within {self._ack_timeout:g}s")
            txnr, command, data = reader.read()
            if command == b"serverclose":
                raise ConnectionError("the collector closed the RELP session (serverclose)")
            if command != b"rsp" or txnr not in waiting:
                raise ConnectionError(f"unexpected RELP frame {txnr} {command!r}")
            index = waiting.pop(txnr)
            if not data.startswith(b"200"):
                raise ConnectionError(f"the collector refused message {index + 1}: {data[:80]!r}")
            answered.add(index)
            while self._answered in answered:  # the answered prefix grows
                self._answered += 1

    def _abort(self) -> None:
        sock, self._sock, self._reader = self._sock, None, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """End the session with ``close`` and wait (briefly) for its answer."""
        sock, reader = self._sock, self._reader
        self._sock, self._reader = None, None
        if sock is None or reader is None:
            return
        with contextlib.suppress(OSError, ssl.SSLError):
            sock.settimeout(2.0)
            txnr = self._next_txnr()
            sock.sendall(frame(txnr, b"close"))
            while reader.read()[0] != txnr:
                pass
        sock.close()
