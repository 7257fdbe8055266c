"""Split an object's members into records: one event per line, CEF or JSON.

A line loses its trailing CR/LF and a leading UTF-8 BOM; blank lines are skipped. Every
other line is a record and gets the next index within its object, so that a checkpoint
can say "the first N records of this object are delivered" and a restart skips exactly
those. A record that is neither CEF nor JSON keeps its index (and so its place), but comes
out with ``kind == "bad"`` and a reason, for the pipeline to report and count.

The text is kept as bytes: pass-through forwarding never decodes or re-encodes an event.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import IO, NamedTuple

from forwarder.archive import ARCHIVE_ERRORS, Member
from forwarder.errors import FetchError

BOM = b"\xef\xbb\xbf"
CEF_PREFIX = b"CEF:"
READ_BUFFER_BYTES = 1 << 16


class Record(NamedTuple):
    """One event and where it came from (a NamedTuple: cheap to make a million of)."""

    ordinal: int  # 0-based among the records of its object
    member: str  # zip member name, "" for a plain or gzip object
    line: int  # 1-based line number within the member
    text: bytes  # the event, without line ending or BOM
    kind: str  # "cef", "json" or "bad"
    reason: str = ""  # why a bad record is bad


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
    index = 0
    for member in members:
        where = f"{label} member {member.name}" if member.name else label
        try:
            for line_no, text, too_long in _lines(member.stream, max_record_bytes):
                if too_long:
                    reason = f"record longer than parser.max_record_bytes ({max_record_bytes})"
                    yield Record(index, member.name, line_no, text, "bad", reason)
                    index += 1
                    continue
                if text.startswith(BOM):
                    text = text[3:]
                if not text.strip():
                    continue
                kind, reason = classify(text, fmt)
                yield Record(index, member.name, line_no, text, kind, reason)
                index += 1
        except ARCHIVE_ERRORS as exc:
            raise FetchError(f"{where}: damaged archive, cannot read it ({exc})") from exc


def _lines(stream: IO[bytes], limit: int) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number, line without CR/LF, too_long) with at most *limit* bytes held."""
    reader = io.BufferedReader(stream, READ_BUFFER_BYTES)  # type: ignore[type-var]
    readline = reader.readline
    chunk = limit + 2  # a record of *limit* bytes and its CR LF
    line_no = 0
    try:
        while True:
            line = readline(chunk)
            if not line:
                return
            line_no += 1
            if len(line) == chunk and not line.endswith(b"\n"):
                head = line[:200]
                while line and not line.endswith(b"\n"):  # skip the rest, a bounded chunk at a time
                    line = readline(chunk)
                yield line_no, head, True
                continue
            if line.endswith(b"\n"):
                line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            elif line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limit:
                yield line_no, line[:200], True
                continue
            yield line_no, line, False
    finally:
        # The member's owner closes its stream; a reader left to the garbage collector
        # would close it too, with a ResourceWarning for a plain file still open.
        if not reader.closed:
            reader.detach()
