"""Split an object's members into records: one event per line, CEF or JSON.

A line loses its trailing CR/LF and a leading UTF-8 BOM; blank lines are skipped. Every
other line is a record and gets the next index within its object, so that a checkpoint
can say "the first N records of this object are delivered" and a restart skips exactly
those. A record that is neither CEF nor JSON keeps its index (and so its place), but comes
out with ``kind == "bad"`` and a reason, for the pipeline to report and count.

The text is kept as bytes: pass-through forwarding never decodes or re-encodes an event.

JSON: a line ``{...}`` (no ``}{``, ``} {`` or ``},{`` in it) is one record as it is; any
other JSON line (an array, objects back to back, a value not closed on its line) is split
by ``forwarder.formats.jsonevents.JsonSplitter`` into one record per object, in order, all with the
line's number; a member whose first line opens a value that goes on over later lines is
read as one JSON document (one record per object, numbered by the line it starts on).

A member is read in blocks of READ_BYTES and split at LF in C (``bytes.split``). A block
whose lines all start with ``CEF:`` (or all with ``{``) and hold no CR, BOM or over-long
line, as the exporter's files do, becomes records without any Python code per line; any
other block is looked at line by line, with the same result. ``record_blocks`` hands them
over a block at a time, so that a reader need not touch each record either.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import IO, NamedTuple, cast

from forwarder.errors import BadFileError
from forwarder.formats.archive import ARCHIVE_ERRORS, Member
from forwarder.formats.jsonsplit import JsonSplitter, Piece, is_one_object

BOM = b"\xef\xbb\xbf"
_LAST_BYTE = operator.itemgetter(-1)
CEF_PREFIX = b"CEF:"
# Bytes read from a member at a time. Splitting 1M events (450 MB) into records took the
# same time with 64 KiB to 1 MiB blocks and 20% longer with 4 MiB ones; memory held is
# about two blocks, plus one over-long line's first bytes.
READ_BYTES = 1 << 18
# How much of an over-long record is kept to report it.
TOO_LONG_HEAD_BYTES = 200


class Record(NamedTuple):
    """One event and where it came from (a NamedTuple: cheap to make a million of)."""

    ordinal: int  # 0-based among the records of its object
    member: str  # zip member name, "" for a plain or gzip object
    line: int  # 1-based line number within the member
    text: bytes  # the event, without line ending or BOM
    kind: str  # "cef", "json" or "bad"
    reason: str = ""  # why a bad record is bad


# Builds a Record from a 6-tuple in C (Record(...) runs a Python-level __new__).
_record_from_tuple = cast(
    Callable[[tuple[int, str, int, bytes, str, str]], Record], functools.partial(tuple.__new__, Record)
)


def classify(text: bytes, fmt: str) -> tuple[str, str]:
    """Return (kind, reason) for one record's text under parser.format *fmt*."""
    if fmt != "json" and text.startswith(CEF_PREFIX):
        return "cef", ""
    if fmt != "cef" and text.lstrip()[:1] in (b"{", b"["):
        return "json", ""
    expected = {"auto": "CEF or JSON", "cef": "CEF", "json": "JSON"}[fmt]
    return "bad", f"not {expected} (starts with {text[:20]!r})"


def split_records(
    members: Iterable[Member], label: str, fmt: str = "auto", max_record_bytes: int = 1 << 20
) -> Iterator[Record]:
    """Yield the records of every member in turn; *label* names the object in errors."""
    for block, _ in record_blocks(members, label, fmt, max_record_bytes):
        yield from block


def record_blocks(
    members: Iterable[Member], label: str, fmt: str = "auto", max_record_bytes: int = 1 << 20
) -> Iterator[tuple[list[Record], bool]]:
    """``split_records``' records a block (READ_BYTES) at a time, and whether the block holds
    no bad record: what a reader can take whole, without a look at each record."""
    index = 0
    too_long = f"record longer than parser.max_record_bytes ({max_record_bytes})"
    for member in members:
        where = f"{label} member {member.name}" if member.name else label
        name = member.name
        first = index  # the member's first record
        splitter = JsonSplitter(max_record_bytes) if fmt != "cef" else None
        try:
            for line_no, lines, kind in _blocks(member.stream, max_record_bytes, fmt):
                count = len(lines)
                # every line is a record of this kind, as it is (unless inside a JSON document)
                if (kind == "cef" or kind == "json") and not (splitter and splitter.document):
                    block = list(
                        map(
                            _record_from_tuple,
                            zip(
                                range(index, index + count),
                                repeat(name, count),
                                range(line_no, line_no + count),
                                lines,
                                repeat(kind, count),
                                repeat("", count),
                                strict=True,
                            ),
                        )
                    )
                    index += count
                    yield block, True
                    continue
                if kind == "cut":  # the head of a record too long to hold
                    yield [Record(index, name, line_no, lines[0], "bad", too_long)], False
                    index += 1
                    continue
                records: list[Record] = []
                for text in lines:
                    if text.endswith(b"\r"):
                        text = text[:-1]
                    if len(text) > max_record_bytes:
                        records.append(
                            Record(index, name, line_no, text[:TOO_LONG_HEAD_BYTES], "bad", too_long)
                        )
                        index += 1
                    else:
                        if text.startswith(BOM):
                            text = text[3:]
                        if text and not text.isspace():
                            pieces: list[Piece] = []
                            if splitter and splitter.document:
                                pieces = splitter.line(text, line_no, False)
                            else:
                                line_kind, reason = classify(text, fmt)
                                if line_kind != "json" or splitter is None or is_one_object(text):
                                    records.append(Record(index, name, line_no, text, line_kind, reason))
                                    index += 1
                                else:
                                    pieces = splitter.line(text, line_no, index == first)
                            for piece in pieces:
                                records.append(
                                    Record(index, name, piece.line, piece.text, piece.kind, piece.reason)
                                )
                                index += 1
                    line_no += 1
                yield records, all(record.kind != "bad" for record in records)
            finished = [
                Record(index + i, name, piece.line, piece.text, piece.kind, piece.reason)
                for i, piece in enumerate(splitter.finish() if splitter else ())
            ]
            index += len(finished)
            yield finished, all(record.kind != "bad" for record in finished)
        except ARCHIVE_ERRORS as exc:
            raise BadFileError(f"{where}: damaged archive, cannot read it ({exc})") from exc


def _blocks(stream: IO[bytes], limit: int, fmt: str) -> Iterator[tuple[int, list[bytes], str]]:
    """Yield (number of the first line, lines without LF, kind) for the whole of *stream*.

    kind "cef" or "json": every line is a record of that kind exactly as it is. kind "":
    the lines still need looking at one by one (CR, BOM, blank, mixed or over-long lines).
    kind "cut": one line longer than *limit* that spanned reads, cut to its first bytes.
    """
    read = stream.read
    line_no = 1
    carry = b""  # the start of a line whose LF has not been read yet
    skipping = False  # inside a too-long line already reported: drop bytes up to its LF
    while True:
        chunk = read(READ_BYTES)
        if not chunk:
            break
        if skipping:
            end = chunk.find(b"\n")
            if end < 0:
                continue
            chunk = chunk[end + 1 :]
            skipping = False
            line_no += 1
        data = carry + chunk if carry else chunk
        lines = data.split(b"\n")
        carry = lines.pop()
        if lines:
            yield line_no, lines, _uniform_kind(data, len(data) - len(carry) - 1, lines, limit, fmt)
            line_no += len(lines)
        # Longer than the limit even without a final CR, and holding all the head it needs.
        if len(carry) > limit + 1 and len(carry) >= TOO_LONG_HEAD_BYTES:
            yield line_no, [carry[:TOO_LONG_HEAD_BYTES]], "cut"
            carry = b""
            skipping = True
    if carry:
        yield line_no, [carry], ""


def _uniform_kind(data: bytes, end: int, lines: list[bytes], limit: int, fmt: str) -> str:
    """ "cef" or "json" when each of *lines* (data up to its last LF, at *end*) is a record
    of that kind exactly as it is; "" when one may not be.

    A few passes in C over the block, ~0.1 µs a line (bytes.count of "\\nCEF:" took twice
    as long, and a three-byte find of the BOM ten times as long as memchr for its first byte).
    """
    if b"\r" in data or (b"\xef" in data and BOM in data):
        return ""
    count = len(lines)
    first = lines[0]
    if fmt != "json" and first.startswith(CEF_PREFIX):
        kind, prefix = "cef", CEF_PREFIX
    elif fmt != "cef" and first.startswith(b"{"):
        kind, prefix = "json", b"{"
    else:
        return ""
    if sum(map(bytes.startswith, lines, repeat(prefix, count))) != count:
        return ""  # a blank, mixed or bad line among them
    # JSON: each line ends with the only "}" in it, so holds one flat object and no join of
    # two (forwarder.formats.jsonevents.is_one_object). Per 256 KiB block: the last bytes 19 µs (map
    # of endswith: 39), the braces counted by what replace() deletes 16 µs (count(): 72,
    # an `in` of "}{": 200).
    if kind == "json" and (
        bytes(map(_LAST_BYTE, lines)).count(b"}"[0]) != count
        or len(data) - len(data.replace(b"}", b"")) - data.count(b"}", end) != count
    ):
        return ""
    if end > limit and max(map(len, lines)) > limit:
        return ""
    return kind
