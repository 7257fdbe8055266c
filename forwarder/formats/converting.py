"""Records parsed in full: checked, converted per ``output.encoding``, stamped; and the UTF-8 policy.

What ``formats.encoder`` does with every record under ``output.encoding`` ``cef``, ``leef``
or ``json`` (and ``parser.validate: full``): CEF events become LEEF or JSON, JSON events
CEF or LEEF (the mapping: ``formats.catofields``); an event already in the wanted format
goes out as it is. JSON to CEF or LEEF is the fast path of that (``benchmarks/encode.py``:
~6 µs an event): orjson reads the object where it reads what json reads
(``jsonevents.read_object``), and ``renderers.JsonRenderer`` fills in a template made once
per field list.

A record that cannot be read (malformed CEF, invalid JSON) is *rejected* with its reason;
invalid UTF-8 is replaced (U+FFFD, the record *repaired*) or rejected per
``parser.invalid_utf8`` (``checked_text``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from forwarder.formats import catofields, cef, leef, renderers, times
from forwarder.formats.jsonevents import cef_as_json, load_object, read_object
from forwarder.formats.records import Record
from forwarder.formats.severity import SEVERITY_NOTICE, syslog_severity

# (severity, epoch ms or None, the batch's "now" headers) -> PRI and header
Stamp = Callable[[int, "int | None", list[bytes]], bytes]
Outcomes = list[tuple[Record, str]]


def invalid_utf8(
    record: Record, exc: UnicodeDecodeError, policy: str, rejected: Outcomes, repaired: Outcomes
) -> bytes | None:
    """The text of *record*, whose UTF-8 failed with *exc*, under ``parser.invalid_utf8``
    *policy* (``replace`` or ``reject``): replaced and noted as repaired, or None and noted
    as rejected."""
    reason = f"invalid UTF-8 at byte {exc.start}"
    if policy == "reject":
        rejected.append((record, f"{reason} (parser.invalid_utf8: reject)"))
        return None
    repaired.append((record, f"{reason}: forwarded with U+FFFD replacement characters"))
    return record.text.decode("utf-8", "replace").encode()


def checked_text(record: Record, policy: str, rejected: Outcomes, repaired: Outcomes) -> bytes | None:
    """The record's text when it is not ASCII, checked as UTF-8 per *policy*."""
    if policy == "keep":
        return record.text
    try:
        record.text.decode()
    except UnicodeDecodeError as exc:
        return invalid_utf8(record, exc, policy, rejected, repaired)
    return record.text


def severity_of(level: Any) -> int:
    """The syslog severity of an event's severity value (JSON ``severity``, CEF Severity)."""
    if level is None:
        return SEVERITY_NOTICE
    return syslog_severity(level if type(level) is str else catofields.value_text(level))


class Converter:
    """Parses records in full and writes them per ``output.encoding`` (see the module docstring)."""

    def __init__(
        self, encoding: str, utf8_policy: str, stamp: Stamp, clock: Callable[[], float] = time.time
    ) -> None:
        self.encoding = encoding
        self._utf8 = utf8_policy
        # Writing a parsed event back: only bytes kept as they were (invalid_utf8: keep) come
        # back as surrogates; otherwise a surrogate came from a JSON \u escape and no UTF-8
        # line can carry it (the record is rejected, and says so).
        self._errors = "surrogateescape" if utf8_policy == "keep" else "strict"
        self._stamp = stamp
        self._clock = clock
        self._json_renderer = renderers.JsonRenderer(encoding, clock) if encoding in ("cef", "leef") else None
        self._cef_leef = renderers.CefLeefRenderer(clock) if encoding == "leef" else None

    def encode(
        self, records: list[Record], now: list[bytes], rejected: Outcomes, repaired: Outcomes
    ) -> list[bytes | None]:
        """One message (or None: rejected) per record."""
        if self._json_renderer is None:
            return [self.parsed(r, now, rejected, repaired) for r in records]
        return self._converted(records, now, rejected, repaired)

    def _converted(
        self, records: list[Record], now: list[bytes], rejected: Outcomes, repaired: Outcomes
    ) -> list[bytes | None]:
        """JSON records as CEF or LEEF: those orjson reads go straight to the renderer (its
        UTF-8 check stands for the policy's: it reads valid UTF-8 only); the others, and CEF
        records, through parsed()."""
        assert self._json_renderer is not None
        line_of, stamp = self._json_renderer.line, self._stamp
        messages: list[bytes | None] = []
        append = messages.append
        for record in records:
            event, plain = read_object(record.text) if record.kind != "cef" else (None, False)
            if event is None:
                append(self.parsed(record, now, rejected, repaired))
                continue
            try:
                line, moment = line_of(event, plain)
                severity = severity_of(event.get("severity"))
            except ValueError:  # a value no rule expected: parsed() says why, never the batch
                append(self.parsed(record, now, rejected, repaired))
                continue
            append(stamp(severity, moment, now) + line.encode())
        return messages

    def parsed(
        self, record: Record, now: list[bytes], rejected: Outcomes, repaired: Outcomes
    ) -> bytes | None:
        """A record parsed in full: checked, converted per output.encoding, stamped."""
        raw = record.text if record.text.isascii() else checked_text(record, self._utf8, rejected, repaired)
        if raw is None:
            return None
        try:
            if record.kind == "cef" and self._cef_leef is not None:
                line, field, moment = self._cef_leef.line(raw.decode("utf-8", "surrogateescape"))
                severity = severity_of(field)  # the same words and numbers
                body = line.encode("utf-8", self._errors)
            elif record.kind == "cef":
                # Only invalid_utf8: keep leaves bytes that need surrogateescape.
                event = cef.parse(raw.decode("utf-8", "surrogateescape"))
                severity, moment = syslog_severity(event.severity), times.event_time(event, self._clock())
                body = self._from_cef(event, raw)
            else:
                obj = load_object(raw)
                severity = severity_of(obj.get("severity"))
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

    def _from_cef(self, event: cef.CefEvent, raw: bytes) -> bytes:
        if self.encoding == "leef":
            return leef.render(catofields.leef_from_cef(event, self._clock())).encode("utf-8", self._errors)
        if self.encoding == "json":
            return cef_as_json(event).encode("utf-8", self._errors)
        return raw
