"""A fleet's pipeline state in S3, beside its lease: checkpoint, dead letters, quarantine list.

Under ``<prefix>state/<pipeline>/``:

- ``checkpoint.json``: the checkpoint document of ``core.checkpoint`` (version 2) plus the
  writer's ``owner``, ``epoch``, ``tenure`` and ``serial``. Each write is conditional on the
  version this owner wrote last (``If-Match``; ``If-None-Match: *`` for the first). A new
  owner first *claims* it — reads it, writes it back under its own name — so from then on
  any write of a former owner is refused (412): it stops (LeaseLost) and never overwrites
  the new owner's progress.
- ``dead_letters/<time>-<owner>-e<epoch>-<tenure>-<n>-<lines>.jsonl``: each commit of dead
  letters is one object (S3 has no append), written before the checkpoint moves past its
  records; the name carries the line count, so ``forwarder status`` counts by listing.
- ``quarantine/<time>-<owner>-e<epoch>-<tenure>-<n>.json``: one object per quarantined object.

Every write asks the lease first (the fence). A write S3 does not answer is tried again
while the lease lasts; once it ran out, the pipeline stops like a lost lease (LeaseLost),
and the fleet takes it up again when S3 answers — rather than stopping for good as an
unwritable local checkpoint does.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from forwarder.coordination.lease import Lease
from forwarder.coordination.objects import Objects, Refused
from forwarder.core.badfiles import QuarantineList
from forwarder.core.checkpoint import Checkpoint, Position, now_text
from forwarder.core.deadletter import DeadLetter
from forwarder.errors import CheckpointError, FetchError

log = logging.getLogger(__name__)

# A new owner's claim is refused when a former owner's last write lands in between: read again.
CLAIM_ATTEMPTS = 5
# Waits between attempts at a write S3 did not answer (doubling), while the lease lasts.
RETRY_FIRST_SECS, RETRY_MAX_SECS = 0.25, 4.0


def state_key(pipeline: str, name: str) -> str:
    """The key of *name* in *pipeline*'s state, below the prefix."""
    return f"state/{pipeline}/{name}"


def _stamp_text() -> str:
    """The time in an object's name: sorts as it happened (UTC, milliseconds)."""
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


T = TypeVar("T")


def write_while_leased(lease: Lease, what: str, write: Callable[[], T]) -> T:
    """``write()`` until S3 takes it: a FetchError is tried again after a doubling wait while
    the lease lasts; LeaseLost once it ran out (or was lost)."""
    delay = RETRY_FIRST_SECS
    while True:
        lease.check()
        try:
            return write()
        except FetchError as exc:
            log.warning(
                "pipeline %s: %s not written (%s); trying again while the lease lasts",
                lease.pipeline,
                what,
                exc,
                extra={"pipeline": lease.pipeline},
            )
        time.sleep(min(delay, max(0.0, lease.deadline - lease.clock())))
        delay = min(RETRY_MAX_SECS, delay * 2)


def _writer(body: bytes) -> str:
    """Who wrote a checkpoint document, by its ``owner``."""
    try:
        data = json.loads(body)
    except ValueError:
        return "?"
    return str(data.get("owner", "?")) if isinstance(data, dict) else "?"


class S3Checkpoint(Checkpoint):
    """The checkpoint of a fleet's pipeline; see the module docstring. Without a *lease* it
    only reads (``forwarder status``, ``check``)."""

    def __init__(self, objects: Objects, pipeline: str, source_id: str, lease: Lease | None = None) -> None:
        super().__init__(source_id)
        self._objects = objects
        self._key = state_key(pipeline, "checkpoint.json")
        self._lease = lease
        self._etag = ""  # the version this owner wrote last
        self._serial = 0  # of that version (Lease.next_write)
        self._claimed = False
        self.stored: dict[str, Any] = {}  # the document as read: who wrote it, when

    @property
    def where(self) -> str:
        """``s3://bucket/prefix/state/<pipeline>/checkpoint.json``."""
        return self._objects.url(self._key)

    def _leased(self) -> Lease:
        if self._lease is None:
            raise CheckpointError(f"{self.where}: read only here (no lease)")
        return self._lease

    def lock(self) -> None:
        """Claim the checkpoint for this lease: read it and write it back under this owner's
        name, so that a former owner's writes are refused from now on."""
        lease = self._leased()
        for _ in range(CLAIM_ATTEMPTS):
            stored = write_while_leased(lease, "the checkpoint", lambda: self._objects.get(self._key))
            position = self._read(stored.body) if stored is not None else None
            match = stored.etag if stored is not None else ""
            try:
                write_while_leased(lease, "the checkpoint", functools.partial(self._write, position, match))
            except Refused:
                continue  # a former owner's last write landed in between: read it again
            self._claimed = True
            return
        lease.lose("its checkpoint kept changing: another forwarder still writes it")
        lease.check()

    def unlock(self) -> None:
        """Nothing to let go: the lease is the coordinator's."""
        self._claimed = False

    def load(self) -> Position | None:
        """The position as claimed (or, read only, as stored now)."""
        if self._claimed:
            return self.position
        try:
            stored = self._objects.get(self._key)
        except FetchError as exc:
            raise CheckpointError(f"{self.where}: cannot read the checkpoint: {exc}") from exc
        return self._read(stored.body) if stored is not None else None

    def _read(self, body: bytes) -> Position | None:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        self.stored = data if isinstance(data, dict) else {}
        return self.read_document(body.decode("utf-8", "replace"))

    def save(self, position: Position | None) -> None:
        """Write *position* and the notes over the version this owner wrote last; LeaseLost
        when S3 refuses it (another forwarder owns the pipeline now)."""
        lease = self._leased()
        try:
            write_while_leased(lease, "the checkpoint", lambda: self._write(position, self._etag))
        except Refused:
            try:
                stored = self._objects.get(self._key)
            except FetchError:  # who wrote it cannot be told: taken as another forwarder
                stored = None
            if stored is not None and lease.wrote(stored.body):
                self._etag, self.position = stored.etag, position  # it was ours: the answer got lost
                return
            writer = _writer(stored.body) if stored is not None else "another forwarder, or nobody"
            if lease.lose(f"its checkpoint write was refused: {writer} wrote it since"):
                log.warning(
                    "pipeline %s: checkpoint write refused by S3 (%s wrote it since); this forwarder "
                    "stops the pipeline",
                    lease.pipeline,
                    writer,
                    extra={"pipeline": lease.pipeline},
                )
            lease.check()

    def _write(self, position: Position | None, match: str) -> None:
        lease = self._leased()
        self._serial = lease.next_write()
        data = {**self.document(position), **lease.stamp(), "serial": self._serial}
        body = json.dumps(data, indent=1).encode() + b"\n"
        self._etag = self._objects.put(self._key, body, match=match, create=not match)
        self.position = position


def put_unique(objects: Objects, lease: Lease, folder: str, name: str, body: bytes, what: str) -> None:
    """Write *body* as a new object under *folder*, named by when, who and *name*."""
    key = f"{folder}/{_stamp_text()}-{lease.owner}-e{lease.epoch}-{lease.tenure}-{name}"
    try:
        write_while_leased(lease, what, functools.partial(objects.put, key, body, create=True))
    except Refused as exc:  # a name never used before: S3 itself is wrong
        raise CheckpointError(f"{objects.url(key)}: cannot write {what}: {exc}") from exc


class S3DeadLetter(DeadLetter):
    """Dead letters of a fleet's pipeline: one object per commit (see the module docstring)."""

    def __init__(self, objects: Objects, pipeline: str, lease: Lease) -> None:
        super().__init__(Path(state_key(pipeline, "dead_letters")))
        self._objects = objects
        self._lease = lease

    def _append(self, lines: list[str]) -> None:
        name = f"{self._lease.next_write()}-{len(lines)}.jsonl"
        put_unique(self._objects, self._lease, str(self.path), name, "".join(lines).encode(), "dead letters")


class S3Quarantine(QuarantineList):
    """The quarantine list of a fleet's pipeline: one object per object given up on."""

    def __init__(self, objects: Objects, pipeline: str, lease: Lease) -> None:
        super().__init__(Path(state_key(pipeline, "quarantine")))
        self._objects = objects
        self._lease = lease

    def add(self, entry: dict[str, Any]) -> None:
        """Write *entry* (and when) as an object of its own."""
        body = json.dumps({**entry, "at": now_text()}, ensure_ascii=False).encode() + b"\n"
        name = f"{self._lease.next_write()}.json"
        put_unique(self._objects, self._lease, str(self.path), name, body, "the quarantine list")
