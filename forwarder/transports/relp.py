"""RELP: syslog with application-level acknowledgements (rsyslog's imrelp speaks it).

Plain TCP syslog has no receipt: bytes the collector's kernel acknowledged can still die
with the collector. RELP answers every message after the collector took it, so the
checkpoint can wait for those answers. No kept-up RELP client exists on PyPI; this is a
small one for the parts a sender needs: open, syslog, close, and the server's close (the
wire format: ``relpwire``).

A session opens with ``open`` (offering relp_version=0 and commands=syslog) and ends with
``close``; the server may end it with ``serverclose`` (TXNR 0). The window slides: up to
``window`` messages are unanswered at any time, and as answers arrive more messages go
out, across batches, so the link never waits on a round trip while there is more to send.
A batch is acknowledged once every one of its messages was answered with 200, in the
order batches were written. When a session is lost, the batches not acknowledged are
written again (``core.delivery``); the first of them resumes after its messages that were
answered, so what the collector answered is not sent twice.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable

from forwarder.config.model import DEFAULT_RELP_WINDOW
from forwarder.errors import SendError
from forwarder.transports.base import Held, connect_error
from forwarder.transports.relpwire import TXNR_MAX, Frame, FrameReader, frame, syslog_frames

log = logging.getLogger(__name__)

OFFER = b"relp_version=0\nrelp_software=forwarder\ncommands=syslog"


class _Written:
    """A batch written in this session, and which of its messages were answered."""

    __slots__ = ("messages", "answered", "left")

    def __init__(self, messages: list[bytes], start: int) -> None:
        self.messages = messages
        self.answered = bytearray(b"\x01" * start + b"\x00" * (len(messages) - start))
        self.left = len(messages) - start

    def prefix(self) -> int:
        """How many of its first messages were answered, in a row."""
        gap = self.answered.find(0)
        return len(self.answered) if gap == -1 else gap


class RelpTransport:
    """Sends batches over RELP in a sliding window; see the module docstring."""

    max_message_bytes: int | None = None
    paces_itself = False

    def __init__(
        self,
        connect: Callable[[], socket.socket],
        label: str,
        ack_timeout_secs: float = 30.0,
        window: int = DEFAULT_RELP_WINDOW,
    ) -> None:
        self._connect = connect
        self.label = label
        self._ack_timeout = ack_timeout_secs
        self._window = window
        self._sock: socket.socket | None = None
        self._reader: FrameReader | None = None
        self._txnr = 0
        self._written: deque[_Written] = deque()  # batches not acknowledged yet, in order
        self._waiting: dict[int, tuple[_Written, int]] = {}  # txnr -> (batch, message index)
        self._held = Held()  # for the next acknowledged()
        self._resume: tuple[list[bytes], int] | None = None  # after a loss: the first batch, answered
        self._progress_at = 0.0  # when an answer last came (or the window opened)

    def _session(self) -> tuple[socket.socket, FrameReader]:
        if self._sock is not None and self._reader is not None:
            return self._sock, self._reader
        try:
            sock = self._connect()
        except (OSError, ssl.SSLError) as exc:
            raise connect_error(self.label, exc) from exc
        sock.settimeout(self._ack_timeout)
        reader = FrameReader(sock)
        self._txnr = 1
        try:
            sock.sendall(frame(1, b"open", OFFER))
            answer = reader.read()
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise SendError(f"{self.label}: RELP session not opened: {exc}") from exc
        if answer[0] != 1 or answer[1] != b"rsp" or not answer[2].startswith(b"200"):
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

    def write(self, messages: list[bytes]) -> None:
        if self._held.failure is not None:
            return  # lost with the session: acknowledged() reports it, then all is sent again
        try:
            sock, reader = self._session()
        except SendError as exc:
            self._held.fail(exc)
            return
        start = 0
        if self._resume is not None:  # the first batch written again after a loss
            batch, answered = self._resume
            self._resume = None
            start = answered if messages is batch else 0
        written = _Written(messages, start)
        if not self._waiting:
            self._progress_at = time.monotonic()
        self._written.append(written)
        try:
            index = start
            while index < len(messages):
                room = self._window - len(self._waiting)
                if room <= 0:
                    self._answers(reader.take())  # blocks up to ack_timeout_secs
                    continue
                if self._txnr >= TXNR_MAX:
                    self._txnr = 0  # TXNR wraps to 1 (after TXNR_MAX itself)
                chunk = messages[index : index + min(room, TXNR_MAX - self._txnr)]
                first = self._txnr + 1
                for offset in range(len(chunk)):
                    self._waiting[first + offset] = (written, index + offset)
                self._txnr += len(chunk)
                sock.sendall(syslog_frames(first, chunk))
                index += len(chunk)
        except (OSError, ssl.SSLError) as exc:
            self._fail(exc)
            return
        self._release()

    def acknowledged(self, wait_secs: float) -> int:
        held = self._held
        if not held.acknowledged and held.failure is None and self._reader is not None and self._waiting:
            try:
                self._answers(self._reader.ready(wait_secs))
                if self._waiting and time.monotonic() - self._progress_at > self._ack_timeout:
                    raise TimeoutError(f"no RELP answer within {self._ack_timeout:g}s")
            except (OSError, ssl.SSLError) as exc:
                self._fail(exc)
        return held.report()

    def _answers(self, frames: list[Frame]) -> None:
        """Mark the messages these answers acknowledge; ConnectionError for anything else."""
        waiting = self._waiting
        for txnr, command, data in frames:
            if command == b"serverclose":
                raise ConnectionError("the collector closed the RELP session (serverclose)")
            if command != b"rsp" or txnr not in waiting:
                raise ConnectionError(f"unexpected RELP frame {txnr} {command!r}")
            written, index = waiting.pop(txnr)
            if not data.startswith(b"200"):
                raise ConnectionError(f"the collector refused message {index + 1}: {data[:80]!r}")
            written.answered[index] = 1
            written.left -= 1
        if frames:
            self._progress_at = time.monotonic()
            self._release()

    def _release(self) -> None:
        """Count the batches at the head whose every message was answered."""
        batches = self._written
        while batches and not batches[0].left:
            batches.popleft()
            self._held.acknowledged += 1

    def _fail(self, exc: BaseException) -> None:
        """Drop the session; remember how far the first unacknowledged batch was answered."""
        first = self._written[0] if self._written else None
        answered = first.prefix() if first is not None else 0
        self._resume = (first.messages, answered) if first is not None and answered else None
        size = len(first.messages) if first is not None else 0
        more = f" ({len(self._written) - 1} more batches in flight)" if len(self._written) > 1 else ""
        self._held.failure = SendError(
            f"{self.label}: RELP session lost after {answered} of {size} messages were acknowledged"
            f"{more}: {exc}"
        )
        self._written.clear()
        self._waiting.clear()
        self._abort()

    def _abort(self) -> None:
        sock, self._sock, self._reader = self._sock, None, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """End the session with ``close`` and wait (briefly) for its answer."""
        sock, reader = self._sock, self._reader
        self._sock, self._reader = None, None
        self._written.clear()
        self._waiting.clear()
        self._held, self._resume = Held(), None
        if sock is None or reader is None:
            return
        with contextlib.suppress(OSError, ssl.SSLError):
            sock.settimeout(2.0)
            txnr = 1 if self._txnr >= TXNR_MAX else self._txnr + 1  # as write() wraps
            sock.sendall(frame(txnr, b"close"))
            while reader.read()[0] != txnr:
                pass
        sock.close()
