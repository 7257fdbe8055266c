"""JSON lines into records: one object per line, arrays, objects back to back, documents.

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
from typing import NamedTuple

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
