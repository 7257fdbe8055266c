"""Syslog wire formats as pure functions: headers (RFC 5424, RFC 3164) and framing (RFC 6587).

The header's PRI combines the configured facility with the event's severity
(``formats.severity``); ``formats.encoder`` puts headers and bodies together.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone


def pri(facility: int, severity: int) -> bytes:
    """PRI = "<" PRIVAL ">", PRIVAL = facility * 8 + severity (RFC 5424 6.2.1)."""
    return b"<%d>" % (facility * 8 + severity)


# RFC 5424 6.2: HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
#               SYSLOG-MSG = HEADER SP STRUCTURED-DATA [SP MSG]
# HOSTNAME 1*255PRINTUSASCII, APP-NAME 1*48PRINTUSASCII, NILVALUE "-" for PROCID, MSGID, SD.
def rfc5424_prefix(timestamp: str, hostname: str, app_name: str) -> bytes:
    """Everything after PRI: ``1 TIMESTAMP HOSTNAME APP-NAME - - - `` (MSG follows)."""
    return f"1 {timestamp} {printusascii(hostname, 255)} {printusascii(app_name, 48)} - - - ".encode("ascii")


def rfc5424_timestamp(epoch: float) -> str:
    """FULL-DATE "T" FULL-TIME in UTC with milliseconds: ``2026-11-28T07:25:12.123Z``."""
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# RFC 3164 4.1: PRI HEADER MSG, HEADER = TIMESTAMP SP HOSTNAME SP, TIMESTAMP = "Mmm dd hh:mm:ss"
# (day space-padded), MSG = TAG ":" SP CONTENT with TAG at most 32 alphanumeric characters.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc3164_prefix(timestamp: str, hostname: str, app_name: str) -> bytes:
    """Everything after PRI: ``Mmm dd hh:mm:ss HOSTNAME TAG: `` (CONTENT follows)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "", app_name)[:32] or "cato"
    return f"{timestamp} {printusascii(hostname, 255)} {tag}: ".encode("ascii")


def rfc3164_timestamp(epoch: float) -> str:
    """``Mmm dd hh:mm:ss`` in UTC (the format has no zone; UTC is stated in the README)."""
    t = time.gmtime(epoch)
    return f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def printusascii(value: str, limit: int) -> str:
    """Keep a header field within PRINTUSASCII (%d33-126), at most *limit* characters, or "-"."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


# RFC 6587 3.4.1: SYSLOG-FRAME = MSG-LEN SP SYSLOG-MSG, MSG-LEN = NONZERO-DIGIT *DIGIT (octets)
def frame_octet_counting(message: bytes) -> bytes:
    """Octet-counting frame: ``b"<length> <message>"``."""
    return b"%d %b" % (len(message), message)


# RFC 6587 3.4.2: non-transparent framing, the trailer being LF.
def frame_newline(message: bytes) -> bytes:
    """Newline-terminated frame (the message must hold no LF of its own)."""
    return message + b"\n"


FRAMERS: dict[str, Callable[[bytes], bytes]] = {
    "octet_counting": frame_octet_counting,
    "newline": frame_newline,
}


def frames_octet_counting(messages: list[bytes]) -> bytes:
    """The octet-counting frames of *messages*, back to back (one buffer to send)."""
    return b"".join([b"%d %b" % (len(m), m) for m in messages])


def frames_newline(messages: list[bytes]) -> bytes:
    """The newline frames of *messages*, back to back (one buffer to send)."""
    return b"\n".join(messages) + b"\n" if messages else b""


# A batch's frames in one buffer, without a Python call per message: same bytes as joining
# FRAMERS' frames, in about half the time.
BATCH_FRAMERS: dict[str, Callable[[list[bytes]], bytes]] = {
    "octet_counting": frames_octet_counting,
    "newline": frames_newline,
}


def default_hostname() -> str:
    """This machine's name, as syslog senders use it (short of the domain is not assumed)."""
    return socket.gethostname() or os.uname().nodename or "-"
