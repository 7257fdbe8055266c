"""The encoder step: records to syslog messages, per ``output.encoding``.

- ``passthrough`` (default): the body is the record's text unchanged. Only what the header
  needs is read, without parsing the event: CEF's Severity field (the header split the
  syslog severity always needed) and the time of ``rt=`` (else ``end=``), found by a scan;
  for JSON, the ``"severity"`` and ``"time"`` (else ``"time_str"``, ``"creationTime"``) members' raw values.
  Checked on the way (``parser.validate: light``), from the split the severity needs anyway:
  a CEF header has its seven fields and a numeric version and the extension starts with
  ``key=`` (with ``header: none`` nothing is split, so nothing of CEF is checked); JSON
  objects are whole (``forwarder.formats.jsonevents``). ``parser.validate: full`` parses every
  record as the other encodings do.

  The fast path takes Cato's events as the exporter writes them: CEF with ``rt=`` first in
  the extension (epoch ms or Java's date) and JSON with ``"time": <epoch ms>``; their
  header comes from ``formats.stamps`` at a fixed cost whatever their times. Any other
  event takes ``_cef_message``/``_json_head``: the same checks and times, a few µs more.
  Cost, measured (split_records + encode + octet-counting frames, benchmark CEF events, per
  record): the pass-through it replaced 1.45 µs; the header time from the event +0.6 µs,
  the UTF-8 check +0.03 µs for ASCII lines and ~0.15 µs for others (a decode).
- ``cef``, ``leef``, ``json``: every record is parsed and converted (``formats.converting``).

The header (``output.header``) takes its time from the event when it has one and
``output.header_time`` is ``event`` (else, and for events without a time, "now", taken
once per batch) and its severity from the event (CEF Severity, JSON ``severity``; notice
without one). A record that cannot be read (malformed CEF, invalid JSON) is *rejected*;
invalid UTF-8 is replaced (U+FFFD, the record *repaired*) or rejected per
``parser.invalid_utf8``. The pipeline reports both (log, counter, dead-letter file).

An encoder pickles as its settings (``__reduce__``): a worker process builds its own, with
its own caches (``core.workers``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from forwarder.config import FACILITIES, OutputConfig, ParserConfig
from forwarder.formats import catofields, cef, times
from forwarder.formats.cache import remember
from forwarder.formats.converting import Converter, checked_text
from forwarder.formats.jsonevents import raw_member
from forwarder.formats.records import Record
from forwarder.formats.severity import COMMON_FIELDS, SEVERITY_NOTICE, field_severity, syslog_severity
from forwarder.formats.stamps import Stamper
from forwarder.formats.syslog import default_hostname

_VERSION = re.compile(rb"CEF:\d+(?:\.\d+)?\Z")
_EXTENSION_START = re.compile(rb" *(?:\Z|" + cef.KEY_PATTERN.encode() + rb"=)")
_JSON_TIME_FIELDS = tuple(name.encode() for name in catofields.TIME_FIELDS)


class Encoded(NamedTuple):
    """A batch encoded: the records sent (one per message, in order) and the others."""

    records: list[Record]
    messages: list[bytes]
    rejected: list[tuple[Record, str]]  # not sent, and why
    repaired: list[tuple[Record, str]]  # sent with their text changed, and why


class EventEncoder:
    """Records to syslog messages per ``output`` and ``parser`` (see the module docstring)."""

    def __init__(
        self, output: OutputConfig, parser: ParserConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.output, self.parser, self._clock = output, parser, clock
        self.encoding = output.encoding
        self._utf8 = parser.invalid_utf8
        self._header = output.header
        self._event_time = output.header_time == "event"
        self._stamper = Stamper(
            output.header if output.header != "none" else "rfc5424",
            FACILITIES[output.facility],
            output.hostname or default_hostname(),
            output.app_name,
        )
        self._pri = self._stamper.pri
        self._field_severity = {f: field_severity(f) for f in COMMON_FIELDS}
        self._field_pri = {f: self._pri[severity] for f, severity in self._field_severity.items()}
        self._time_values: dict[bytes, int | None] = {}  # a raw time value of another form -> epoch ms
        parse_all = output.encoding != "passthrough" or parser.validate == "full"
        self._converter = Converter(self.encoding, self._utf8, self._stamp, clock) if parse_all else None

    def __reduce__(self) -> tuple[Any, ...]:
        return (EventEncoder, self.settings)

    @property
    def settings(self) -> tuple[OutputConfig, ParserConfig, Callable[[], float]]:
        """What the encoder is made of: equal settings, equal messages."""
        return (self.output, self.parser, self._clock)

    # --- the header ------------------------------------------------------------------------

    def _stamp(self, severity: int, epoch_ms: int | None, now: list[bytes]) -> bytes:
        """PRI and header for a message of *severity* at *epoch_ms* (None: now)."""
        if self._header == "none":
            return b""
        if epoch_ms is not None and self._event_time:
            head = self._stamper.at(severity, epoch_ms)
            if head is not None:  # else no time the header can write
                return head
        return now[severity]

    def _now_heads(self) -> list[bytes]:
        if self._header == "none":
            return [b""] * 8
        return self._stamper.now(self._clock())

    def _time_of(self, raw: bytes | None) -> int | None:
        """Epoch ms for a raw time value: Cato's forms at a fixed cost, others parsed (cached)."""
        if raw is None or not self._event_time:
            return None
        moment = times.fixed_time(raw)
        if moment is None:
            moment = self._time_values.get(raw, -1)
            if moment == -1:
                moment = times.parse_time(raw.decode("utf-8", "replace"), self._clock())
                remember(self._time_values, raw, moment)
        return moment

    # --- encoding --------------------------------------------------------------------------

    def encode(self, records: list[Record]) -> Encoded:
        """One message per record that can be sent; the others with their reasons."""
        rejected: list[tuple[Record, str]] = []
        repaired: list[tuple[Record, str]] = []
        now = self._now_heads()
        if self._converter is not None:
            messages = self._converter.encode(records, now, rejected, repaired)
        else:
            messages = self._passthrough(records, now, rejected, repaired)
        if not rejected:
            return Encoded(records, messages, rejected, repaired)  # type: ignore[arg-type]
        sent = [(r, m) for r, m in zip(records, messages, strict=True) if m is not None]
        return Encoded([r for r, _ in sent], [m for _, m in sent], rejected, repaired)

    def _passthrough(
        self, records: list[Record], now: list[bytes], rejected: list[Any], repaired: list[Any]
    ) -> list[bytes | None]:
        """The fast path: text unchanged, header from the Severity field and the raw time.

        One loop, everything it needs bound to locals. Tried and dropped: working a batch a
        column at a time with map() over C functions (split, slices, lookups, join) was ~10%
        slower than this loop.
        """
        messages: list[bytes | None] = []
        append = messages.append
        policy = self._utf8
        check_utf8 = policy != "keep"
        if self._header == "none":  # nothing to read: only the UTF-8 policy applies
            if not check_utf8:
                return [r.text for r in records]
            for record in records:
                text = record.text
                append(text if text.isascii() else checked_text(record, policy, rejected, repaired))
            return messages
        event_time = self._event_time
        rt, json_stamp, field_pri = self._stamper.rt, self._stamper.json, self._field_pri.get
        now_heads = {field: now[severity] for field, severity in self._field_severity.items()}.get
        notice = self._pri[SEVERITY_NOTICE]
        for record in records:
            text = record.text
            if check_utf8 and not text.isascii():
                checked = checked_text(record, policy, rejected, repaired)
                if checked is None:
                    append(None)
                    continue
                text = checked
            if record.kind != "cef":
                # JSON: "time": <13 digits> and no "severity" take a path like CEF's below.
                at = text.find(b'"time":') if event_time else -1
                if at >= 0 and text.find(b'"severity"') < 0:
                    message = json_stamp(notice, text, at + (8 if text[at + 7 : at + 8] == b" " else 7))
                    if message is not None:
                        append(message)
                        continue
                append(self._json_head(text, now) + text)
                continue
            # The header's severity and time from one split: ~0.3 µs for the split and the
            # severity's lookup, ~0.7 µs for the time (formats.stamps), whatever the second.
            parts = text.split(b"|", 7)
            if len(parts) > 7:
                ext = parts[7]
                field: bytes | None = parts[6]
                if text.find(b"\\", 0, len(text) - len(ext)) >= 0:
                    # Escapes in the header: cut where cef.split_fields cuts (escaped pairs
                    # masked, same length), for fields 6 and 7 only: 0.6 µs, not its 2.6.
                    cut = text.replace(b"\\\\", b"\0\0").replace(b"\\|", b"\0\0").split(b"|", 7)
                    if len(cut) > 7:
                        end = len(text) - len(cut[7])
                        field, ext = text[end - 1 - len(cut[6]) : end - 1], text[end:]
                    else:
                        field = None
                if field is not None and parts[0] == b"CEF:0":
                    if not event_time:
                        head = now_heads(field)
                        if head is not None:
                            append(head + text)
                            continue
                    else:
                        prival = field_pri(field)
                        if prival is not None:
                            message = rt(prival, ext, text)
                            if message is not None:
                                append(message)
                                continue
            append(self._cef_message(record, text, now, rejected))
        return messages

    def _cef_message(
        self, record: Record, text: bytes, now: list[bytes], rejected: list[Any]
    ) -> bytes | None:
        """A CEF message off the fast path: checked (light), its time found."""
        parts = text.split(b"|", 7)
        if len(parts) <= 7:
            rejected.append((record, f"CEF header has {len(parts) - 1} of its 7 '|'-separated fields"))
            return None
        cut = cef.split_fields(text, 7)
        if len(cut) <= 7:
            rejected.append((record, "CEF header has fewer than 7 unescaped '|'-separated fields"))
            return None
        field, ext = cut[6], cut[7]
        if not _VERSION.match(parts[0]):
            rejected.append((record, f"CEF version is not a number ({parts[0][4:24]!r})"))
            return None
        if not _EXTENSION_START.match(ext):
            rejected.append((record, f"CEF extension: text before the first key=value ({ext[:40]!r})"))
            return None
        moment = None
        if self._event_time:
            for raw in times.raw_time_values(ext):  # rt, else end
                moment = self._time_of(raw)
                if moment is not None:
                    break
        return self._stamp(field_severity(field), moment, now) + text

    def _json_head(self, text: bytes, now: list[bytes]) -> bytes:
        """The header of a JSON record: its ``severity`` and ``time`` members, read raw."""
        raw = raw_member(text, b"severity")
        severity = SEVERITY_NOTICE if raw is None else syslog_severity(raw.decode("utf-8", "replace"))
        moment = None
        if self._event_time:
            for name in _JSON_TIME_FIELDS:  # as catofields.json_event_time
                moment = self._time_of(raw_member(text, name))
                if moment is not None:
                    break
        return self._stamp(severity, moment, now)
