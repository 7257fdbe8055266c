"""What every source is: a stream of log objects in delivery order, and an opaque cursor.

A source hands out ``LogObject``s (``pending``), downloads one to a local file
(``fetch``), and does the arithmetic of its own cursor: the JSON value the checkpoint
keeps to say how far delivery got. The pipeline stores ``(cursor, records)`` — the
cursor of the object in progress and how many of its records are delivered — and knows
nothing else about it:

- ``start()``: where a pipeline without a checkpoint begins (``source.start``);
- ``inside(obj, cursor)``: the cursor while *obj* is being delivered, *cursor* being the
  one before (equal for the same object and the same cursor before, and
  ``inside(obj, inside(obj, c)) == inside(obj, c)``: so a restart knows to skip the records
  already delivered);
- ``after(obj, cursor)``: the cursor once all of *obj* is delivered;
- ``pending(cursor)``: the objects still to deliver from *cursor* on, in order; the first
  may be the one the cursor is inside.

What "next", "gap" and "done" mean belongs to the source: a log exporter counts sequence
numbers, an S3 integration keeps a ledger of objects done, an API keeps a marker. An
object that comes after missing ones carries a ``Gap`` for the pipeline to report; one
the source gives up on without reading it (an SQS message received too often, an object
replaced after it was delivered) carries the reason in ``quarantine``, and the pipeline
quarantines it. Two hooks let a source hold something outside the checkpoint (SQS
messages): ``committed(cursor)`` once a checkpoint holding *cursor* is durable, and
``close()`` when the pipeline stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# A source's position as the checkpoint keeps it: a JSON object only the source reads.
Cursor = dict[str, Any]


@dataclass(frozen=True)
class Gap:
    """Objects missing before the one that carries it: *missing* of them, *first*..*last*."""

    first: Any
    last: Any
    missing: int
    text: str  # what is missing: "files 7004-7006", for the log and for status
    detail: str = ""  # how many, and why: "3 files: deleted by the 7-day retention, or never written"


@dataclass(frozen=True)
class Unpack:
    """How a fetched object's bytes open (forwarder.formats.archive): the zip password, the
    decompressed bytes allowed per member (zip bombs)."""

    password: str = ""
    max_member_bytes: int = 10 << 30


@dataclass(frozen=True)
class LogObject:
    """One unit a source delivers: a file in a bucket, a page of an API."""

    key: str  # its name (an S3 key...)
    size: int = 0  # bytes, as listed (0: not known)
    modified: float = 0.0  # when it was written, epoch seconds (0: not known)
    ref: Any = None  # what the source needs to know it again (a sequence number, an ETag...)
    gap: Gap | None = None  # objects missing before this one
    quarantine: str = ""  # why the source gives up on it unread: the pipeline quarantines it


class Source(Protocol):
    """A source of log objects; see the module docstring."""

    @property
    def id(self) -> str:
        """Names the source in checkpoints and messages (``s3://bucket/prefix``)."""
        ...

    @property
    def unpack(self) -> Unpack:
        """How its objects' bytes open."""
        ...

    def start(self) -> Cursor | None:
        """Where to begin without a checkpoint; None when there is nothing to begin at yet."""
        ...

    def pending(self, cursor: Cursor) -> Iterator[LogObject]:
        """The objects still to deliver from *cursor* on, in delivery order."""
        ...

    def inside(self, obj: LogObject, cursor: Cursor) -> Cursor:
        """The cursor while *obj* is being delivered (*cursor*: the one before, or already
        inside *obj*)."""
        ...

    def after(self, obj: LogObject, cursor: Cursor) -> Cursor:
        """The cursor once every record of *obj* is delivered (*cursor*: the one before)."""
        ...

    def identity(self, obj: LogObject) -> dict[str, Any]:
        """*obj* as the quarantine list and the checkpoint's notes name it: a small JSON
        object (``{"sequence": 7007, "key": "..."}``)."""
        ...

    def committed(self, cursor: Cursor) -> None:
        """A checkpoint holding *cursor* is durable: let go of what it records as done (an
        SQS message is deleted). Most sources hold nothing: a no-op."""
        ...

    def close(self) -> None:
        """The pipeline stops: give back what is held (SQS messages not done become visible
        to other readers at once). Most sources hold nothing: a no-op."""
        ...

    def fetch(self, obj: LogObject) -> Path:
        """*obj*'s bytes in a new local file (the caller removes it); FetchError if not."""
        ...

    def label(self, obj: LogObject) -> str:
        """How *obj* is named in messages (``s3://bucket/key``)."""
        ...

    def describe(self, cursor: Cursor, records: int = 0) -> str:
        """*cursor* (with *records* of its object delivered) in words, for status and logs:
        ``file 7007 (ACCESSKEY/CATO...7007.zip): 12 records delivered``."""
        ...

    def backlog(self, cursor: Cursor | None) -> tuple[int, str] | None:
        """(objects pending after *cursor*, their span in words), or None when the source
        cannot tell without reading them (status)."""
        ...

    def check(self, cursor: Cursor | None) -> tuple[bool, str]:
        """Reach the source now (``forwarder check``): (passed, what was found)."""
        ...
