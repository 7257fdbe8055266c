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

  Cost, measured (split_records + encode + octet-counting frames, benchmark CEF events, per
  record): the pass-through it replaced 1.45 µs; this, header time from the event +0.4 µs
  (the two cache lookups above, per record), the UTF-8 check +0.03 µs for ASCII lines and
  ~0.15 µs for others (a decode); ``header_time: now`` with ``invalid_utf8: keep`` +1-4%.
- ``cef``, ``leef``, ``json``: every record is parsed (``forwarder.formats.cef``,
  ``forwarder.formats.jsonevents``); CEF events become LEEF or JSON, JSON events CEF or LEEF (the
  mapping: ``forwarder.formats.catofields``); an event already in the wanted format goes out as it is.
  JSON to CEF or LEEF is the fast path of that (``benchmarks/encode.py``: ~6 µs an event):
  orjson reads the object where it reads what json reads (``jsonevents.read_object``), and
  ``renderers.JsonRenderer`` fills in a template made once per field list.

One module for one class: its pass-through loop binds the header caches it shares with the
other paths to locals, per batch (measured above); splitting them would cost a lookup per
event.

The header (``output.header``) takes its time from the event when it has one and
``output.header_time`` is ``event`` (else, and for events without a time, "now", taken
once per batch) and its severity from the event (CEF Severity, JSON ``severity``; notice
without one). A record that cannot be read (malformed CEF, invalid JSON) is *rejected*;
invalid UTF-8 is replaced (U+FFFD, the record *repaired*) or rejected per
``parser.invalid_utf8``. The pipeline reports both (log, counter, dead-letter file).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from forwarder.config import FACILITIES, OutputConfig, ParserConfig
from forwarder.formats import catofields, cef, leef, renderers, times
from forwarder.formats.cache import remember
from forwarder.formats.jsonevents import cef_as_json, load_object, raw_member, read_object
from forwarder.formats.records import Record
from forwarder.formats.severity import COMMON_FIELDS, SEVERITY_NOTICE, field_severity, syslog_severity
from forwarder.formats.syslog import (
    default_hostname,
    pri,
    rfc3164_prefix,
    rfc3164_timestamp,
    rfc5424_prefix,
    rfc5424_timestamp,
)

# RFC 5424's FULL-DATE has a 4-digit year: times outside 1970-9999 are stamped "now".
_LAST_SECOND = times.END_MS // 1000
_VERSION = re.compile(rb"CEF:\d+(?:\.\d+)?\Z")
_EXTENSION_START = re.compile(rb" *(?:\Z|" + cef.KEY_PATTERN.encode() + rb"=)")
_JSON_TIME_FIELDS = tuple(name.encode() for name in catofields.TIME_FIELDS)
# What may follow a CEF value: the end of the extension, or the next key.
_AFTER_VALUE = re.compile(rb"\Z| " + cef.KEY_PATTERN.encode() + rb"=")


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
        self.encoding = output.encoding
        self._parse_all = output.encoding != "passthrough" or parser.validate == "full"
        self._utf8 = parser.invalid_utf8
        # Writing a parsed event back: only bytes kept as they were (invalid_utf8: keep) come
        # back as surrogates; otherwise a surrogate came from a JSON \u escape and no UTF-8
        # line can carry it (the record is rejected, and says so).
        self._errors = "surrogateescape" if parser.invalid_utf8 == "keep" else "strict"
        self._header = output.header
        self._event_time = output.header_time == "event"
        self._clock = clock
        self._facility = FACILITIES[output.facility]
        self._hostname = output.hostname or default_hostname()
        self._app_name = output.app_name
        self._pri = [pri(self._facility, s) for s in range(8)]
        self._field_severity = {f: field_severity(f) for f in COMMON_FIELDS}
        self._field_pri = {f: self._pri[severity] for f, severity in self._field_severity.items()}
        # The header is <PRI> + a part fixed for the second + a part for the millisecond: 1000
        # tails made once, the part for a second once per second of event time.
        tail = self._prefix(0)[26:] if output.header == "rfc5424" else b""
        self._ms_tails = {b"%03d" % ms: (b"%03dZ" % ms if tail else b"") + tail for ms in range(1000)}
        # The same by the milliseconds and the byte after them: the end of a CEF value, or of a JSON number.
        self._boundary_tails = {**self._ms_tails, **{ms + b" ": t for ms, t in self._ms_tails.items()}}
        self._json_tails = {ms + end: t for ms, t in self._ms_tails.items() for end in (b",", b"}", b" ")}
        self._ms_list = [self._ms_tails[b"%03d" % ms] for ms in range(1000)]
        self._second_stamps: dict[bytes, bytes] = {}  # epoch seconds -> header after PRI
        self._int_stamps: dict[int, bytes] = {}  # the same by the number
        self._minutes: dict[int, bytes] = {}  # epoch minute -> its start, "1 2026-11-28T07:25:"
        # The same by the start of an extension: b"rt=1764314712" (epoch ms, without the
        # milliseconds) and b"rt=Mon May 18 14:49:40 UTC 2020" (Java's Date, whole seconds).
        self._epoch_stamps: dict[bytes, bytes] = {}
        self._date_stamps: dict[bytes, bytes] = {}
        self._time_values: dict[bytes, int | None] = {}  # a raw time value -> epoch ms
        self._json_renderer = (
            renderers.JsonRenderer(self.encoding, clock) if self.encoding in ("cef", "leef") else None
        )
        self._cef_leef = renderers.CefLeefRenderer(clock) if self.encoding == "leef" else None

    # --- the header ------------------------------------------------------------------------

    def _prefix(self, seconds: float) -> bytes:
        """Everything after PRI, for *seconds* (RFC 5424's with milliseconds .000)."""
        if self._header == "rfc5424":
            return rfc5424_prefix(rfc5424_timestamp(seconds), self._hostname, self._app_name)
        return rfc3164_prefix(rfc3164_timestamp(seconds), self._hostname, self._app_name)

    def _after_pri(self, seconds: bytes) -> bytes | None:
        """The header after PRI up to the milliseconds for epoch *seconds* (digits), cached:
        ``1 2026-11-28T07:25:12.`` (RFC 5424) or ``Nov 28 07:25:12 HOSTNAME TAG: `` (RFC 3164);
        None when that is no time RFC 5424 can write."""
        stamp = self._second_stamps.get(seconds)
        if stamp is not None:
            return stamp
        number = int(seconds) if seconds.isdigit() else -1
        if not 0 <= number < _LAST_SECOND:
            return None
        if self._header == "rfc5424":  # as syslog.rfc5424_timestamp writes it, without the .SSSZ
            minute, second = divmod(number, 60)
            start = self._minutes.get(minute)
            if start is None:
                start = self._minutes[minute] = b"1 %04d-%02d-%02dT%02d:%02d:" % time.gmtime(number)[:5]
            stamp = b"%b%02d." % (start, second)
        else:
            stamp = self._prefix(number)
        if len(self._minutes) >= 1024:
            self._minutes.clear()
        return remember(self._second_stamps, seconds, stamp)

    def _stamp(self, severity: int, epoch_ms: int | None, now: list[bytes]) -> bytes:
        """The header for a message of *severity* at *epoch_ms* (None: now)."""
        if self._header == "none":
            return b""
        if epoch_ms is not None and self._event_time:
            seconds, millis = divmod(epoch_ms, 1000)
            stamp = self._int_stamps.get(seconds)  # by the number: no b"%d" per event
            if stamp is None:
                stamp = self._after_pri(b"%d" % seconds)
                if stamp is None:  # no time RFC 5424 can write
                    return now[severity]
                remember(self._int_stamps, seconds, stamp)
            return self._pri[severity] + stamp + self._ms_list[millis]
        return now[severity]

    def _now_heads(self) -> list[bytes]:
        if self._header == "none":
            return [b""] * 8
        prefix = self._prefix(self._clock())
        return [p + prefix for p in self._pri]

    def _time_of(self, raw: bytes | None) -> int | None:
        """Epoch ms for a raw time value (epoch ms or a CEF/ISO date), cached."""
        if raw is None or not self._event_time:
            return None
        if raw.isdigit():
            return times.epoch_digits(raw)
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
        if self._json_renderer is not None:
            messages = self._converted(records, now, rejected, repaired)
        elif self._parse_all:
            messages = [self._parsed(r, now, rejected, repaired) for r in records]
        else:
            messages = self._passthrough(records, now, rejected, repaired)
        if not rejected:
            return Encoded(records, messages, rejected, repaired)  # type: ignore[arg-type]
        sent = [(r, m) for r, m in zip(records, messages, strict=True) if m is not None]
        return Encoded([r for r, _ in sent], [m for _, m in sent], rejected, repaired)

    def _text(self, record: Record, rejected: list[Any], repaired: list[Any]) -> bytes | None:
        """The record's text when it is not ASCII: checked as UTF-8, replaced or rejected."""
        if self._utf8 == "keep":
            return record.text
        try:
            record.text.decode()
        except UnicodeDecodeError as exc:
            return self._invalid_utf8(record, exc, rejected, repaired)
        return record.text

    def _invalid_utf8(
        self, record: Record, exc: UnicodeDecodeError, rejected: list[Any], repaired: list[Any]
    ) -> bytes | None:
        reason = f"invalid UTF-8 at byte {exc.start}"
        if self._utf8 == "reject":
            rejected.append((record, f"{reason} (parser.invalid_utf8: reject)"))
            return None
        repaired.append((record, f"{reason}: forwarded with U+FFFD replacement characters"))
        return record.text.decode("utf-8", "replace").encode()

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
        check_utf8 = self._utf8 != "keep"
        if self._header == "none":  # nothing to read: only the UTF-8 policy applies
            if not check_utf8:
                return [r.text for r in records]
            for record in records:
                text = record.text
                append(text if text.isascii() else self._text(record, rejected, repaired))
            return messages
        event_time = self._event_time
        epoch_stamps, date_stamps = self._epoch_stamps.get, self._date_stamps.get
        tails, field_pri, zero_tail = self._boundary_tails.get, self._field_pri.get, self._ms_tails[b"000"]
        now_heads = {field: now[severity] for field, severity in self._field_severity.items()}.get
        seconds, json_tails, notice = (
            self._second_stamps.get,
            self._json_tails.get,
            self._pri[SEVERITY_NOTICE],
        )
        for record in records:
            text = record.text
            if check_utf8 and not text.isascii():
                try:
                    text.decode()
                except UnicodeDecodeError as exc:
                    checked = self._invalid_utf8(record, exc, rejected, repaired)
                    if checked is None:
                        append(None)
                        continue
                    text = checked
            if record.kind != "cef":
                # JSON: "time": <13 digits> and no "severity" take a path like CEF's below.
                at = text.find(b'"time":') if event_time else -1
                if at >= 0 and text.find(b'"severity"') < 0:
                    at += 8 if text[at + 7 : at + 8] == b" " else 7
                    tail = json_tails(text[at + 10 : at + 14])
                    stamp = seconds(text[at : at + 10]) or self._after_pri(text[at : at + 10])
                    if tail is not None and stamp is not None:
                        append(b"".join((notice, stamp, tail, text)))
                        continue
                append(self._json_head(text, now) + text)
                continue
            # The time costs ~0.25 µs a record: two slices looked up in caches that hold only
            # values already checked (the rt= key and its digits, the byte after them).
            parts = text.split(b"|", 7)
            if len(parts) > 7:
                ext = parts[7]
                field: bytes | None = parts[6]
                if text.find(b"\\", 0, len(text) - len(ext)) >= 0:
                    cut = cef.split_fields(text, 7)
                    field, ext = (cut[6], cut[7]) if len(cut) > 7 else (None, b"")
                if field is not None and parts[0] == b"CEF:0":
                    if not event_time:
                        head = now_heads(field)
                        append(
                            head + text
                            if head is not None
                            else self._cef_message(record, text, now, rejected)
                        )
                        continue
                    stamp = epoch_stamps(ext[:13])
                    if stamp is not None:
                        tail = tails(ext[13:17])
                    else:
                        stamp = date_stamps(ext[:31])
                        if stamp is not None:
                            tail = zero_tail if _AFTER_VALUE.match(ext, 31) else None
                        else:
                            stamp, tail = self._new_second(ext)
                    prival = field_pri(field)
                    if stamp is not None and tail is not None and prival is not None:
                        append(b"".join((prival, stamp, tail, text)))
                        continue
            append(self._cef_message(record, text, now, rejected))
        return messages

    def _new_second(self, ext: bytes) -> tuple[bytes | None, bytes | None]:
        """(header part, tail) for an extension starting ``rt=<13 digits>`` of a second not
        seen yet, now cached; (None, None) for any other extension."""
        tail = self._boundary_tails.get(ext[13:17])
        if tail is None or ext[:3] != b"rt=":
            return None, None
        stamp = self._after_pri(ext[3:13])
        if stamp is not None:
            remember(self._epoch_stamps, ext[:13], stamp)
        return stamp, tail

    def _cef_message(
        self, record: Record, text: bytes, now: list[bytes], rejected: list[Any]
    ) -> bytes | None:
        """A CEF message off the fast path: checked (light), its time found and cached."""
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
                    if ext.startswith(b"rt=" + raw):
                        self._learn(ext, raw, moment)  # so that the next such record takes the fast path
                    break
        return self._stamp(field_severity(field), moment, now) + text

    def _learn(self, ext: bytes, raw: bytes, moment: int) -> None:
        """Cache the header part of an ``rt=`` value that starts *ext*, when its form allows."""
        seconds, millis = divmod(moment, 1000)
        stamp = self._after_pri(b"%d" % seconds)
        if stamp is None:
            return
        if raw.isdigit() and len(raw) == 13:
            remember(self._epoch_stamps, ext[:13], stamp)
        elif len(raw) == 28 and millis == 0:  # Java's Date.toString(): "Mon May 18 14:49:40 UTC 2020"
            remember(self._date_stamps, ext[:31], stamp)

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

    def _converted(
        self, records: list[Record], now: list[bytes], rejected: list[Any], repaired: list[Any]
    ) -> list[bytes | None]:
        """JSON records as CEF or LEEF: those orjson reads go straight to the renderer (its
        UTF-8 check stands for the policy's: it reads valid UTF-8 only); the others, and CEF
        records, through _parsed."""
        assert self._json_renderer is not None
        line_of, severity_of, stamp = self._json_renderer.line, self._severity_of, self._stamp
        messages: list[bytes | None] = []
        append = messages.append
        for record in records:
            event, plain = read_object(record.text) if record.kind != "cef" else (None, False)
            if event is None:
                append(self._parsed(record, now, rejected, repaired))
                continue
            try:
                line, moment = line_of(event, plain)
                severity = severity_of(event.get("severity"))
            except ValueError:  # a value no rule expected: _parsed says why, never the batch
                append(self._parsed(record, now, rejected, repaired))
                continue
            append(stamp(severity, moment, now) + line.encode())
        return messages

    def _parsed(
        self, record: Record, now: list[bytes], rejected: list[Any], repaired: list[Any]
    ) -> bytes | None:
        """A record parsed in full: checked, converted per output.encoding, stamped."""
        raw = record.text if record.text.isascii() else self._text(record, rejected, repaired)
        if raw is None:
            return None
        try:
            if record.kind == "cef" and self._cef_leef is not None:
                line, field, moment = self._cef_leef.line(raw.decode("utf-8", "surrogateescape"))
                severity = self._severity_of(field)  # the same words and numbers
                body = line.encode("utf-8", self._errors)
            elif record.kind == "cef":
                # Only invalid_utf8: keep leaves bytes that need surrogateescape.
                event = cef.parse(raw.decode("utf-8", "surrogateescape"))
                severity, moment = syslog_severity(event.severity), times.event_time(event, self._clock())
                body = self._from_cef(event, raw)
            else:
                obj = load_object(raw)
                severity = self._severity_of(obj.get("severity"))
                if self._json_renderer is not None:
                    line, moment = self._json_renderer.line(obj)
                    body = line.encode("utf-8", self._errors)
                else:
                    found = catofields.json_event_time(obj, self._clock())
                    moment = found[1] if found else None
                    body = raw.strip() if self.encoding == "json" else raw
        except UnicodeEncodeError as exc:  # before ValueError, its base class
            character = exc.object[exc.start : exc.end]
            reason = (
                f"JSON string holds {character!a}, a lone UTF-16 surrogate escape, which UTF-8 cannot carry"
            )
            rejected.append((record, reason))
            return None
        except ValueError as exc:  # CefError, invalid JSON
            rejected.append((record, str(exc)))
            return None
        return self._stamp(severity, moment, now) + body

    @staticmethod
    def _severity_of(level: Any) -> int:
        """The syslog severity of an event's severity value (JSON ``severity``, CEF Severity)."""
        if level is None:
            return SEVERITY_NOTICE
        return syslog_severity(level if type(level) is str else catofields.value_text(level))

    def _from_cef(self, event: cef.CefEvent, raw: bytes) -> bytes:
        if self.encoding == "leef":
            return leef.render(catofields.leef_from_cef(event, self._clock())).encode("utf-8", self._errors)
        if self.encoding == "json":
            return cef_as_json(event).encode("utf-8", self._errors)
        return raw
