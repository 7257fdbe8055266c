"""JSON events: splitting lines into records, reading and writing objects.

What the Log Exporter (and Cato's other tools) write, and what becomes a record:

- one object per line (NDJSON): the line, as it is, is the record (no parsing needed: a
  line ``{...}`` holding no ``}{`` is taken as one object);
- a JSON array on a line: one record per element, in order, each with that line's number;
- objects written back to back, ``{...}{...}`` (also ``} {``, ``},{``): one record per
  object, in order;
- a member that is one JSON document spread over lines (a pretty-printed array or
  objects): when its first line does not hold a complete value, the member is read as a
  document, one record per object (per array element), each numbered with the line it
  starts on and joined onto one line (the line breaks and the indentation around them
  removed: they can only stand between tokens, so nothing inside a string changes);
- a BOM and CR/LF are stripped before (``forwarder.formats.records``).

Records are counted in that order, so an object's ordinal within its file is stable and a
restart skips exactly the delivered ones. An element that is not an object, or text that is
not JSON, becomes a bad record (with the reason) at its place; after invalid JSON inside a
document, reading starts again at the next line. Values are read with ``raw_decode`` from
the decoded text (undecodable bytes kept with ``surrogateescape``), and each record's text
is the element's own bytes, exactly as written (joined onto one line, see above).
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any, NamedTuple

from forwarder.formats.cef import CefEvent

try:  # C JSON parsing, ~3x the stdlib's speed on exporter events (see load_object)
    import orjson
except ImportError:  # pragma: no cover - a dependency; json alone gives the same results
    orjson = None  # type: ignore[assignment]

_DECODER = json.JSONDecoder()
_LINE_BREAK = re.compile(r"[ \t]*\n[ \t]*")
_WHITESPACE = " \t\r\n"
HEAD_CHARS = 200  # how much of an over-long value is kept to report it


class Piece(NamedTuple):
    """One record's worth of a JSON line or document."""

    line: int
    text: bytes
    kind: str  # "json" or "bad"
    reason: str = ""


# Where one object may end and the next begin on a line ("}{", "} {", "},{"...): a line
# holding one is parsed to split it.
_JOIN = re.compile(rb"\}[ \t]*,?[ \t]*\{")


def is_one_object(text: bytes) -> bool:
    """True for a line taken as one object without parsing: ``{...}`` with no ``}`` before its
    last byte (memchr: the common, flat case) or at least none followed by ``{`` (a join)."""
    stripped = text.strip()
    if stripped[:1] != b"{" or stripped[-1:] != b"}":
        return False
    return stripped.find(b"}") == len(stripped) - 1 or _JOIN.search(stripped) is None


class JsonSplitter:
    """Turns the JSON lines of one member into pieces (see the module docstring).

    ``line()`` takes each line that is not one plain object (and, once the member is read as
    a document, every line); ``finish()`` reports what is left open at the member's end.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.document = False  # the member is one JSON document spread over lines
        self._buf = ""  # decoded text not consumed yet, each line followed by "\n"
        self._offsets: list[int] = []  # where each line of _buf starts
        self._numbers: list[int] = []  # and its line number
        self._in_array = False
        self._waiting = False  # _buf holds the start of a value continued on later lines
        self._size = 0  # bytes in _buf

    def line(self, text: bytes, line_no: int, first: bool) -> list[Piece]:
        """The pieces that *text* (line *line_no*; *first*: no record before it in this
        member) completes."""
        decoded = text.decode("utf-8", "surrogateescape")
        if not self.document:
            self._reset()
        self._offsets.append(len(self._buf))
        self._numbers.append(line_no)
        self._buf += decoded + "\n"
        self._size += len(text) + 1
        if self.document and self._waiting and "}" not in decoded and "]" not in decoded:
            return self._too_long()  # nothing in this line can close the open value
        pieces = self._scan(wait=first or self.document)
        if not self.document:
            if first and (self._waiting or self._in_array):
                self.document = True
            else:
                if self._in_array:  # its objects were read; the line is still not whole
                    pieces.append(Piece(line_no, text.strip(), "bad", "JSON array not closed on its line"))
                self._reset()
        return pieces + self._too_long()

    def finish(self) -> list[Piece]:
        """Pieces for a value still open at the end of the member."""
        pieces = self._scan(wait=False) if self._buf.strip() else []
        self._reset()
        self.document = False
        return pieces

    def _reset(self) -> None:
        self._buf, self._offsets, self._numbers, self._size = "", [], [], 0
        self._in_array = self._waiting = False

    def _line_of(self, pos: int) -> int:
        return self._numbers[bisect.bisect_right(self._offsets, pos) - 1]

    def _scan(self, wait: bool) -> list[Piece]:
        """Consume every complete value of _buf; with *wait*, leave an unfinished one for later."""
        buf, pos, end = self._buf, 0, len(self._buf)
        pieces: list[Piece] = []
        self._waiting = False
        while True:
            while pos < end and (buf[pos] in _WHITESPACE or buf[pos] == ","):
                pos += 1
            if pos >= end:
                break
            char = buf[pos]
            if char == "[" and not self._in_array:
                self._in_array, pos = True, pos + 1
                continue
            if char == "]" and self._in_array:
                self._in_array, pos = False, pos + 1
                continue
            try:
                value, stop = _DECODER.raw_decode(buf, pos)
            except RecursionError:
                resume = self._resume_at(pos, pos)
                pieces.append(self._bad(pos, resume, "invalid JSON: nested too deeply"))
                pos = resume
                continue
            except json.JSONDecodeError as err:
                if err.msg.startswith("Expecting") and not buf[err.pos :].strip():
                    if wait:  # runs on beyond this line
                        self._waiting = True
                        break
                    where = "at the end of the member" if self.document else "on its line"
                    reason = f"JSON value not complete {where}"
                    pieces.append(self._bad(pos, end, reason))
                    pos = end
                    break
                resume = self._resume_at(pos, err.pos)
                column = err.pos - buf.rfind("\n", 0, err.pos)
                reason = f"invalid JSON: {err.msg} (line {self._line_of(err.pos)} column {column})"
                pieces.append(self._bad(pos, resume, reason))
                pos = resume
                continue
            except ValueError:  # int() refuses a number of over 4,300 digits
                resume = self._resume_at(pos, pos)
                pieces.append(self._bad(pos, resume, "JSON number too long to read (over 4,300 digits)"))
                pos = resume
                continue
            if isinstance(value, dict):
                text = buf[pos:stop]
                if "\n" in text:  # spread over lines: joined (raw line breaks only occur between tokens)
                    text = _LINE_BREAK.sub("", text)
                pieces.append(Piece(self._line_of(pos), _encode(text), "json"))
            else:
                where = "an array element" if self._in_array else "a value"
                kind = type(value).__name__ if not isinstance(value, list) else "array"
                pieces.append(self._bad(pos, stop, f"not a JSON object ({where} of type {kind})"))
            pos = stop
        self._trim(pos)
        return pieces

    def _resume_at(self, start: int, error: int) -> int:
        """Where reading starts again after invalid JSON: the line of the error when the error
        is that line's first token (it may begin the next value), else the line after it."""
        buf = self._buf
        line_start = buf.rfind("\n", 0, error) + 1
        if line_start > start and not buf[line_start:error].strip():
            return line_start
        after = buf.find("\n", error)
        return len(buf) if after < 0 else after + 1

    def _bad(self, start: int, stop: int, reason: str) -> Piece:
        text = self._buf[start:stop].strip()
        return Piece(self._line_of(start), _encode(text), "bad", reason)

    def _trim(self, pos: int) -> None:
        """Drop the consumed text (and the lines wholly in it)."""
        if pos <= 0:
            return
        keep = max(bisect.bisect_right(self._offsets, pos) - 1, 0)
        self._size -= len(_encode(self._buf[:pos]))
        self._buf = self._buf[pos:]
        self._offsets = [max(o - pos, 0) for o in self._offsets[keep:]]
        self._numbers = self._numbers[keep:]

    def _too_long(self) -> list[Piece]:
        """An open value longer than the limit is reported (its head) and dropped."""
        if not self._waiting or self._size <= self._limit:
            return []
        start = len(self._buf) - len(self._buf.lstrip())
        piece = Piece(
            self._line_of(start),
            _encode(self._buf[start : start + HEAD_CHARS]),
            "bad",
            f"JSON value longer than parser.max_record_bytes ({self._limit})",
        )
        in_array = self._in_array
        self._reset()
        self._in_array = in_array
        return [piece]


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# --- reading ----------------------------------------------------------------------------


def parse_object(text: str) -> dict[str, Any]:
    """One record's JSON object; ValueError (with the reason) when it is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON: {err.msg} (column {err.colno})") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except ValueError:  # int() refuses a number of over 4,300 digits
        raise ValueError("JSON number too long to read (over 4,300 digits)") from None
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object (a value of type {type(value).__name__})")
    return value


# orjson reads integers beyond 64 bits as floats, where json keeps them exact: its result
# is taken only without a float, an object or an array among the members (which might hide
# one); json reads the others, and whatever orjson refuses (NaN, lone surrogates, invalid
# UTF-8 kept by parser.invalid_utf8: keep), so every record reads as parse_object reads it.
_MAYBE_INEXACT = frozenset((float, dict, list))
_PLAIN = frozenset((str, int))


def read_object(raw: bytes) -> tuple[dict[str, Any] | None, bool]:
    """(the object, *plain*) when orjson reads *raw* (valid UTF-8, valid JSON, an object) as
    json would; (None, False) when only json can tell (``load_object``). *Plain*: every member
    is a string or an integer, as the exporter writes them, and no string holds NUL (which
    only ``\\u0000`` can write), so each value's text is ``str(value)``."""
    if orjson is None:
        return None, False
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, False
    if type(value) is not dict:
        return None, False
    if _PLAIN.issuperset(map(type, value.values())):  # the common case: one check for both
        return value, raw.find(b"\\") < 0 or b"\\u0000" not in raw  # memchr first: 0.05 µs, not 0.3
    if _MAYBE_INEXACT.isdisjoint(map(type, value.values())):
        return value, False
    return None, False


def load_object(raw: bytes) -> dict[str, Any]:
    """``parse_object`` for a record's bytes, by orjson where that gives the same object."""
    value, _ = read_object(raw)
    return value if value is not None else parse_object(raw.decode("utf-8", "surrogateescape"))


# A member's raw value, found without parsing the object: a string or a number.
_RAW_VALUE = re.compile(rb'\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?[0-9][0-9.eE+-]*))')


def raw_member(text: bytes, key: bytes) -> bytes | None:
    """The raw value of the first member named *key* (a string's content, or a number).

    ``"key"`` followed by ``:`` only occurs as a member name: inside a string every quote
    is escaped. A nested member of that name would be found too; Cato's events are flat.
    """
    at = text.find(b'"' + key + b'"')
    if at < 0:
        return None
    match = _RAW_VALUE.match(text, at + len(key) + 2)
    if match is None:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)


# --- writing ----------------------------------------------------------------------------
# CEF as JSON: the header fields under their ArcSight names, the extension as an object.
CEF_JSON_KEYS = ("cefVersion", "deviceVendor", "deviceProduct", "deviceVersion", "deviceEventClassId", "name",
                 "severity")  # fmt: skip


def render_json(value: Any) -> str:
    """One line of JSON: RFC 8259 escaping (quote, backslash, control characters), UTF-8 as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def cef_as_json(event: CefEvent) -> str:
    """A CEF event as one JSON object (``extension`` holding the key=value pairs)."""
    value = {**dict(zip(CEF_JSON_KEYS, event[:7], strict=True)), "extension": event.extension}
    if orjson is not None:  # text only: orjson writes what render_json writes, 6x faster
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError:  # a lone surrogate (bytes that invalid_utf8: keep kept)
            pass
    return render_json(value)


def cef_from_json(text: str) -> CefEvent:
    """The CEF event that ``cef_as_json`` wrote (ValueError when it is not one)."""
    value = parse_object(text)
    try:
        version, vendor, product, device_version, signature_id, name, severity = (
            str(value[key]) for key in CEF_JSON_KEYS
        )
        extension = {str(k): str(v) for k, v in value["extension"].items()}
    except (KeyError, AttributeError) as exc:
        raise ValueError(f"not a CEF event as JSON ({exc})") from None
    return CefEvent(version, vendor, product, device_version, signature_id, name, severity, extension)
