"""RELP's wire format: frames written, and frames read back from a socket as they arrive.

The RELP specification (librelp doc/relp.html):

    RELP-FRAME = TXNR SP COMMAND SP DATALEN [SP DATA] TRAILER
    TXNR       = NUMBER   ; 1..999999999, one per command, then it wraps to 1
    DATALEN    = NUMBER   ; octets of DATA; 0 means no SP and no DATA follow
    TRAILER    = LF
    RSP DATA   = RSP-CODE [SP HUMANMSG] [LF CMDDATA]   ; "200 OK" on success
"""

from __future__ import annotations

import socket
import ssl

TXNR_MAX = 999_999_999
# The longest frame header we accept: TXNR (9 digits), a command (32), DATALEN (9), 3 separators.
MAX_HEADER = 64
_DIGITS = frozenset(b"0123456789")

Frame = tuple[int, bytes, bytes]  # (txnr, command, data)


def frame(txnr: int, command: bytes, data: bytes = b"") -> bytes:
    """One RELP frame: ``b"<txnr> <command> <len>[ <data>]\\n"``."""
    if data:
        return b"%d %b %d %b\n" % (txnr, command, len(data), data)
    return b"%d %b 0\n" % (txnr, command)


def syslog_frames(first_txnr: int, messages: list[bytes]) -> bytes:
    """``syslog`` frames for *messages*, numbered from *first_txnr* on (no wrap inside)."""
    return b"".join([b"%d syslog %d %b\n" % (txnr, len(m), m) for txnr, m in enumerate(messages, first_txnr)])


def parse_frames(buffer: bytes) -> tuple[list[Frame], int]:
    """The complete frames at the start of *buffer*, and how many bytes they take.

    ConnectionError for bytes that cannot be a RELP frame.
    """
    frames: list[Frame] = []
    pos, size = 0, len(buffer)
    while pos < size:
        first = buffer.find(b" ", pos, pos + MAX_HEADER)
        second = buffer.find(b" ", first + 1, pos + MAX_HEADER) if first != -1 else -1
        if second == -1:
            if size - pos >= MAX_HEADER:
                raise ConnectionError(f"bad RELP frame header {buffer[pos : pos + MAX_HEADER]!r}")
            break
        end = second + 1
        while end < size and buffer[end] in _DIGITS:
            end += 1
        if end == size:
            if end - pos >= MAX_HEADER:
                raise ConnectionError(f"bad RELP frame header {buffer[pos : pos + MAX_HEADER]!r}")
            break
        txnr, length_text = buffer[pos:first], buffer[second + 1 : end]
        if not (txnr.isdigit() and length_text):
            raise ConnectionError(f"bad RELP frame header {buffer[pos : end + 1]!r}")
        length = int(length_text)
        if length:
            if buffer[end] != 0x20:
                raise ConnectionError(f"bad RELP frame header {buffer[pos : end + 1]!r}")
            data_at, trailer = end + 1, end + 1 + length
        else:
            data_at = trailer = end
        if trailer >= size:
            break
        if buffer[trailer] != 0x0A:
            raise ConnectionError("RELP frame without its trailing LF")
        frames.append((int(txnr), buffer[first + 1 : second], buffer[data_at:trailer]))
        pos = trailer + 1
    return frames, pos


class FrameReader:
    """Reads RELP frames from a socket (buffered); asks for quick ACKs as it reads.

    A collector's answers are small writes; without TCP_QUICKACK our kernel holds its
    acknowledgement of them back for up to 40 ms when we have nothing to send, and a
    collector with Nagle's algorithm on waits for that before answering again.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._frames: list[Frame] = []
        self._quick = sock.family in (socket.AF_INET, socket.AF_INET6)

    def _fill(self) -> None:
        """Receive once (blocking as the socket's timeout says) and parse what came."""
        if self._quick:  # the kernel clears it after a while: set before every read
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = self._sock.recv(262144)
        if not chunk:
            raise ConnectionError("the collector closed the RELP session")
        self._buffer += chunk
        frames, used = parse_frames(self._buffer)
        if used:
            self._buffer = self._buffer[used:]
            self._frames += frames

    def read(self) -> Frame:
        """The next frame, waiting for it as long as the socket's timeout allows."""
        while not self._frames:
            self._fill()
        return self._frames.pop(0)

    def ready(self, wait_secs: float) -> list[Frame]:
        """The frames that arrived, waiting up to *wait_secs* for one when none has."""
        if not self._frames:
            timeout = self._sock.gettimeout()
            self._sock.settimeout(wait_secs)
            try:
                self._fill()
            except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
                pass
            finally:
                self._sock.settimeout(timeout)
        frames, self._frames = self._frames, []
        return frames

    def take(self) -> list[Frame]:
        """At least one frame, waiting as long as the socket's timeout allows."""
        while not self._frames:
            self._fill()
        frames, self._frames = self._frames, []
        return frames
