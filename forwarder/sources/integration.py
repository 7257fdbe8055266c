"""``source.kind: events_integration``: what its two discoveries share — the cursor arithmetic.

Cato's Events Integration writes gzip NDJSON objects into the customer's own bucket, under
``<bucket>/<optional Folder>/``, every 60 s or when ~9.5 MB of events accumulate; the key
layout below the Folder is not documented, so keys are opaque here. They are found by
listing the prefix (``forwarder.sources.polling``) or from S3 event notifications in SQS
(``forwarder.sources.sqs``). Either way the cursor is a ledger of the objects done
(``forwarder.sources.ledger``), and, while an object is being delivered, that object::

    {"ledger": {"since": ..., "newest": ..., "done": {...}},
     "object": {"key": "cato/2026/11/28/5f0c2b7e.gz", "etag": "9dd4e461..."}}    in progress
    {"ledger": {...}, "done": {"key": "...", "etag": "..."}}                       after it

The pipeline resumes inside an object by record count when the object in progress comes
again (same key and ETag). The object's bytes open as gzip when they start with gzip's
signature, else as text (a ``.gz`` some client decompressed keeps its name: Cato warns of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forwarder.config.sources import EventsIntegrationConfig
from forwarder.sources.base import Cursor, LogObject, Unpack
from forwarder.sources.feedhealth import utc_text
from forwarder.sources.ledger import Ledger
from forwarder.sources.s3 import Bucket


@dataclass(frozen=True)
class Stored:
    """What an events_integration object's ``LogObject.ref`` holds."""

    etag: str  # S3's ETag, without its quotes ("" for an SQS message that names no object)
    message: str = ""  # the SQS message that told of it (discovery: sqs)


def when(epoch: float) -> str:
    """Epoch seconds as the status shows them (UTC)."""
    return utc_text(epoch) if epoch else "never"


class IntegrationSource:
    """The cursor arithmetic, downloads and names of both discoveries; see the module docstring."""

    def __init__(self, bucket: Bucket, settings: EventsIntegrationConfig) -> None:
        self.bucket = bucket
        self.settings = settings
        self.unpack = Unpack("", settings.max_member_bytes)

    @property
    def id(self) -> str:
        return self.bucket.id

    def name(self, key: str) -> str:
        """*key* after the prefix: how the ledger names the object."""
        return key[len(self.bucket.prefix) :]

    # --- the cursor ----------------------------------------------------------------------

    def identity(self, obj: LogObject) -> dict[str, Any]:
        ref: Stored = obj.ref
        named = {"key": obj.key, "etag": ref.etag}
        return {**named, "message": ref.message} if ref.message else named

    def inside(self, obj: LogObject, cursor: Cursor) -> Cursor:
        # the same ledger object, not a copy: comparing cursors then costs nothing
        return {"ledger": cursor["ledger"], "object": self.identity(obj)}

    def after(self, obj: LogObject, cursor: Cursor) -> Cursor:
        ref: Stored = obj.ref
        ledger = Ledger.from_json(cursor["ledger"])
        if ref.etag:  # an object (a message that named none leaves the ledger as it is)
            ledger = ledger.with_done(self.name(obj.key), obj.modified, ref.etag, self.settings.lookback_secs)
        return {"ledger": ledger.to_json(), "done": self.identity(obj)}

    def committed(self, cursor: Cursor) -> None:
        """Nothing is held outside the checkpoint (discovery: list)."""

    def close(self) -> None:
        """Nothing is held (discovery: list)."""

    def describe(self, cursor: Cursor, records: int = 0) -> str:
        ledger = Ledger.of(cursor)
        window = (
            f"ledger: {len(ledger)} objects done since {when(ledger.since)} "
            f"(newest written {when(ledger.newest)})"
        )
        current = cursor.get("object")
        if current:
            return f"{self.bucket.url(current['key'])}: {records} records delivered; {window}"
        done = cursor.get("done")
        last = f"last done {self.bucket.url(done['key'])}; " if done else ""
        return last + window

    # --- the objects ---------------------------------------------------------------------

    def fetch(self, obj: LogObject) -> Path:
        return self.bucket.download(obj.key)

    def label(self, obj: LogObject) -> str:
        return self.bucket.url(obj.key)
