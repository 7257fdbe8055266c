"""Syslog wire formats as pure functions: headers (RFC 5424, RFC 3164) and framing (RFC 6587).

The message body is the event's text unchanged (pass-through). The header's PRI combines
the configured facility with a severity taken from the event: CEF's Severity field mapped
as below, JSON events "notice".
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone

from forwarder.config import FACILITIES, OutputConfig
from forwarder.formats.records import Record

SEVERITY_NOTICE = 5
# CEF Severity (0-10, or Low/Medium/High/Very-High) to syslog severity (RFC 5424 table 2).
# ArcSight's bands: 0-3 low, 4-6 medium, 7-8 high, 9-10 very high.
_CEF_BANDS = ((3, 6), (6, 4), (8, 3), (10, 2))  # (highest CEF value in band, syslog severity)
_CEF_WORDS = {b"low": 6, b"medium": 4, b"high": 3, b"very-high": 2, b"very high": 2}
_CEF_SEVERITY_FIELD = 7  # CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Ext


def cef_severity(text: bytes) -> int:
    """Syslog severity for a CEF record; notice when the Severity field is missing or odd."""
    field = _split_cef_header(text)
    return SEVERITY_NOTICE if field is None else severity_of_field(field)


def severity_of_field(field: bytes) -> int:
    """Syslog severity for the value of CEF's Severity field (a number or a word)."""
    value = field.strip().lower()
    if value.isdigit():
        number = int(value) if len(value.lstrip(b"0")) <= 3 else 1000  # no int() of 5,000 digits
        for highest, severity in _CEF_BANDS:
            if number <= highest:
                return severity
        return SEVERITY_NOTICE
    return _CEF_WORDS.get(value, SEVERITY_NOTICE)


# The Severity values met in practice, looked up as they are (no strip, lower or int()).
_FIELD_SEVERITY = {
    **{str(n).encode(): severity_of_field(str(n).encode()) for n in range(11)},
    **{w: severity_of_field(w) for w in (b"Low", b"Medium", b"High", b"Very-High", b"Very High")},
}


def _split_cef_header(text: bytes) -> bytes | None:
    """The Severity field (7th) of a CEF header, honouring ``\\|`` and ``\\\\`` escapes."""
    parts = text.split(b"|", _CEF_SEVERITY_FIELD)
    if len(parts) <= _CEF_SEVERITY_FIELD:
        return None  # fewer than 7 "|" at all, so fewer than 7 unescaped ones
    if text.find(b"\\", 0, len(text) - len(parts[_CEF_SEVERITY_FIELD])) < 0:
        return parts[_CEF_SEVERITY_FIELD - 1]
    return _escaped_severity_field(text)


def _escaped_severity_field(text: bytes) -> bytes | None:
    """_split_cef_header for a header holding backslashes."""
    # A backslash takes the next byte literally. Masking every escaped pair ("\\\\" first, then
    # "\\|") with two other bytes keeps the offsets and leaves only the real separators.
    masked = text.replace(b"\\\\", b"\0\0").replace(b"\\|", b"\0\0")
    parts = masked.split(b"|", _CEF_SEVERITY_FIELD)
    if len(parts) <= _CEF_SEVERITY_FIELD:
        return None
    end = len(text) - len(parts[_CEF_SEVERITY_FIELD]) - 1
    return text[end - len(parts[_CEF_SEVERITY_FIELD - 1]) : end]


def severity_of(record: Record) -> int:
    """Syslog severity for *record*: from CEF's Severity, notice for JSON."""
    return cef_severity(record.text) if record.kind == "cef" else SEVERITY_NOTICE


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
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc3164_prefix(timestamp: str, hostname: str, app_name: str) -> bytes:
    """Everything after PRI: ``Mmm dd hh:mm:ss HOSTNAME TAG: `` (CONTENT follows)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "", app_name)[:32] or "cato"
    return f"{timestamp} {printusascii(hostname, 255)} {tag}: ".encode("ascii")


def rfc3164_timestamp(epoch: float) -> str:
    """``Mmm dd hh:mm:ss`` in UTC (the format has no zone; UTC is stated in the README)."""
    t = time.gmtime(epoch)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


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


class SyslogEncoder:
    """Turn records into syslog messages (no framing) per the output settings.

    The header's time is "now", taken once per batch: formatting a timestamp per event
    would cost more than the rest of the header. So the whole header before MSG is one of
    eight byte strings per batch (one per severity), and a message is one concatenation.
    """

    def __init__(self, output: OutputConfig, clock: Callable[[], float] = time.time) -> None:
        self._facility = FACILITIES[output.facility]
        self._header = output.header
        self._hostname = output.hostname or default_hostname()
        self._app_name = output.app_name
        self._clock = clock
        self._pri = [pri(self._facility, s) for s in range(8)]

    def _current_prefix(self) -> bytes:
        now = self._clock()
        if self._header == "rfc5424":
            return rfc5424_prefix(rfc5424_timestamp(now), self._hostname, self._app_name)
        return rfc3164_prefix(rfc3164_timestamp(now), self._hostname, self._app_name)

    def encode_batch(self, records: list[Record]) -> list[bytes]:
        """One message per record, all stamped with the same time."""
        if self._header == "none":
            return [r.text for r in records]
        prefix = self._current_prefix()
        heads = [p + prefix for p in self._pri]  # by syslog severity
        by_field = {field: heads[severity] for field, severity in _FIELD_SEVERITY.items()}
        notice = heads[SEVERITY_NOTICE]
        messages: list[bytes] = []
        append = messages.append
        # cef_severity inlined: ~0.3 µs of the ~1.5 µs a record costs end to end.
        for record in records:
            text = record.text
            if record.kind != "cef":
                append(notice + text)
                continue
            parts = text.split(b"|", _CEF_SEVERITY_FIELD)
            if len(parts) <= _CEF_SEVERITY_FIELD:
                append(notice + text)
                continue
            if text.find(b"\\", 0, len(text) - len(parts[_CEF_SEVERITY_FIELD])) < 0:
                field: bytes | None = parts[_CEF_SEVERITY_FIELD - 1]
            else:
                field = _escaped_severity_field(text)
            head = by_field.get(field) if field is not None else notice
            if head is None:
                head = heads[severity_of_field(field)] if field is not None else notice
            append(head + text)
        return messages


def default_hostname() -> str:
    """This machine's name, as syslog senders use it (short of the domain is not assumed)."""
    return socket.gethostname() or os.uname().nodename or "-"
