"""``source.kind: log_exporter``: Cato's Log Exporter files, ``CATO<20-digit sequence>.zip``.

The exporter numbers its files; they go out in numeric order (9999 before 10000). The
cursor names the file in progress, or the last one done::

    {"sequence": 7007, "key": "ACCESSKEY/CATO00000000000000007007.zip"}     in progress
    {"sequence": 7007, "key": "...", "complete": true}                       done

Files are found by listing the bucket (``discovery: list``, this module's ``Listing``) or
by name (``discovery: probe``, ``forwarder.sources.probe``). A jump in sequence numbers is
a gap (files deleted by the 7-day retention, or never written): the first file after it
carries a ``Gap`` for the pipeline to report, and delivery goes on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from forwarder.config import SourceConfig
from forwarder.errors import ConfigError, CredentialsError, ForwarderError
from forwarder.sources.base import Cursor, Gap, LogObject, Unpack
from forwarder.sources.s3 import Bucket, epoch_of

log = logging.getLogger(__name__)


class Discovery(Protocol):
    """How the exporter's files are found: ``objects(first)`` in sequence order from *first*."""

    countable: bool  # can tell how many files wait (a listing can; probing cannot)

    def objects(self, first: int | None) -> Iterator[LogObject]: ...

    def key_of(self, sequence: int) -> str: ...


class Listing:
    """``discovery: list``: the keys under the prefix matching key_pattern, in numeric order."""

    countable = True

    def __init__(self, bucket: Bucket, key_pattern: str, key_template: str) -> None:
        self._bucket = bucket
        self._pattern = re.compile(key_pattern)
        self._template = key_template
        self._warned_duplicates: set[int] = set()
        # Told every listing's files from the one asked for on (for the backlog figures).
        self.on_listing: Callable[[Sequence[LogObject]], None] | None = None

    def key_of(self, sequence: int) -> str:
        return self._bucket.prefix + self._template.format(sequence=sequence)

    def all(self) -> list[LogObject]:
        """Every matching object under the prefix, in numeric sequence order."""
        found: list[LogObject] = []
        prefix = self._bucket.prefix
        try:
            for item in self._bucket.listing():
                match = self._pattern.search(item["Key"][len(prefix) :])
                if match and match.group(1) and match.group(1).isdigit():
                    sequence = int(match.group(1))
                    size, modified = int(item.get("Size", 0)), epoch_of(item.get("LastModified"))
                    found.append(LogObject(item["Key"], size, modified, sequence))
        except CredentialsError as exc:
            if "AccessDenied" in str(exc):
                raise CredentialsError(
                    f"{exc}; if the key may read files but not list them, set source.discovery: probe"
                ) from exc
            raise
        found.sort(key=lambda o: (o.ref, o.key))
        self._warn_duplicates(found)
        return found

    def objects(self, first: int | None) -> Iterator[LogObject]:
        objects = [o for o in self.all() if first is None or o.ref >= first]
        if self.on_listing is not None:
            self.on_listing(objects)
        yield from objects

    def bounds(self) -> tuple[LogObject, LogObject] | None:
        objects = self.all()
        return (objects[0], objects[-1]) if objects else None

    def _warn_duplicates(self, objects: list[LogObject]) -> None:
        for before, after in zip(objects, objects[1:], strict=False):
            if before.ref == after.ref and after.ref not in self._warned_duplicates:
                self._warned_duplicates.add(after.ref)
                log.warning(
                    "%s and %s have the same sequence number %d; only the first is forwarded "
                    "(narrow source.prefix or source.key_pattern)",
                    before.key,
                    after.key,
                    after.ref,
                )


class LogExporterSource:
    """The exporter's numbered files in one bucket prefix; see the module docstring."""

    def __init__(self, bucket: Bucket, settings: SourceConfig, probing: Discovery | None = None) -> None:
        self.bucket = bucket
        self.listing = Listing(bucket, settings.key_pattern, settings.key_template)
        self.discovery: Discovery = probing or self.listing
        self._start = settings.start
        self._probing = probing is not None
        self.unpack = Unpack(settings.zip_password, settings.max_member_bytes)

    @property
    def id(self) -> str:
        return self.bucket.id

    # --- the cursor ----------------------------------------------------------------------

    def inside(self, obj: LogObject, cursor: Cursor) -> Cursor:
        return self.identity(obj)

    def identity(self, obj: LogObject) -> dict[str, Any]:
        return {"sequence": obj.ref, "key": obj.key}

    def committed(self, cursor: Cursor) -> None:
        """Nothing is held outside the checkpoint."""

    def close(self) -> None:
        """Nothing is held."""

    def after(self, obj: LogObject, cursor: Cursor) -> Cursor:
        return {"sequence": obj.ref, "key": obj.key, "complete": True}

    def imported(self, last: int) -> Cursor:
        """The cursor after file *last* (the client script's storage file: its last entry)."""
        return {
            "sequence": last,
            "key": self.discovery.key_of(last) if self._probing else "",
            "complete": True,
        }

    @staticmethod
    def _next(cursor: Cursor) -> int:
        """The sequence number of the next file to deliver."""
        sequence = int(cursor["sequence"])
        return sequence + 1 if cursor.get("complete") else sequence

    def describe(self, cursor: Cursor, records: int = 0) -> str:
        state = "complete" if cursor.get("complete") else f"{records} records delivered"
        return f"file {cursor['sequence']} ({cursor.get('key') or 'not seen yet'}): {state}"

    # --- the files -----------------------------------------------------------------------

    def start(self) -> Cursor | None:
        """Pin where source.start says to begin, so that restarts agree."""
        start = self._start
        if isinstance(start, int):
            # The first file from that number on (no gap is reported before it: asked for).
            first = next(iter(self.discovery.objects(start)), None) or LogObject("", ref=start)
        else:
            try:
                bounds = self.listing.bounds()
            except CredentialsError as exc:
                if not self._probing:
                    raise
                raise ConfigError(
                    f"source.start: {start} needs to list the bucket, which was refused ({exc}); with "
                    "discovery: probe give the sequence number to start at, or import the client "
                    "script's storage file (forwarder import-state)"
                ) from None
            if bounds is None:
                return None
            first = bounds[0] if start == "earliest" else bounds[1]
        log.info("no checkpoint yet: starting at file %d (source.start: %s)", first.ref, start)
        return self.identity(first)

    def pending(self, cursor: Cursor) -> Iterator[LogObject]:
        """The files from the cursor's on; one after a jump in numbers carries the Gap."""
        expected = self._next(cursor)
        for obj in self.discovery.objects(expected):
            if obj.ref > expected:
                first, last = expected, obj.ref - 1
                text = f"file {first}" if first == last else f"files {first}-{last}"
                obj = LogObject(
                    obj.key, obj.size, obj.modified, obj.ref, Gap(first, last, last - first + 1, text)
                )
            yield obj
            expected = obj.ref + 1

    def fetch(self, obj: LogObject) -> Path:
        return self.bucket.download(obj.key)

    def label(self, obj: LogObject) -> str:
        return self.bucket.url(obj.key)

    # --- status and check ----------------------------------------------------------------

    def backlog(self, cursor: Cursor | None) -> tuple[int, str] | None:
        if not self.discovery.countable:
            return None
        first = None if cursor is None else self._next(cursor)
        pending = [o.ref for o in self.discovery.objects(first)]
        return len(pending), f"{pending[0]} .. {pending[-1]}" if pending else ""

    def check(self, cursor: Cursor | None) -> tuple[bool, str]:
        try:
            objects = self.listing.all()
        except CredentialsError as exc:
            return self._check_probe(cursor) if self._probing else (False, str(exc))
        except ForwarderError as exc:
            return False, str(exc)
        if not objects:
            return True, (
                f"{self.id} is reachable: no matching files yet "
                "(check source.prefix and source.key_pattern if that is unexpected)"
            )
        return True, f"{self.id} is reachable: {len(objects)} files, {objects[0].key} .. {objects[-1].key}"

    def _check_probe(self, cursor: Cursor | None) -> tuple[bool, str]:
        """discovery: probe with listing refused: look for the next file by name."""
        if cursor is not None:
            sequence = self._next(cursor)
        elif isinstance(self._start, int):
            sequence = self._start
        else:
            return False, (
                f"{self.id}: listing is refused, and with discovery: probe source.start "
                "must be a sequence number (or use forwarder import-state)"
            )
        try:
            found = next(iter(self.discovery.objects(sequence)), None)
        except ForwarderError as exc:
            return False, str(exc)
        state = "is there" if found is not None and found.ref == sequence else "is not there (yet)"
        return True, (
            f"{self.id}: listing is refused (fine with discovery: probe); "
            f"{self.discovery.key_of(sequence)} {state}"
        )
