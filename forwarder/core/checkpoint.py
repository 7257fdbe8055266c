"""The checkpoint: how far delivery got (the source's cursor and a record count), and notes.

Versioned JSON, written to a temporary file in the same directory, fsynced, then renamed
over the old one (and the directory fsynced), so a crash leaves either the old or the new
checkpoint, never a torn one. A missing file is a fresh start; a corrupt one is a loud
error, never a silent restart from zero. A lock file keeps two forwarders off one
checkpoint. Only the pipeline writes it (``forwarder.core.pipeline``).

    {"version": 2, "source": "s3://bucket/prefix",
     "cursor": {"sequence": 7007, "key": "prefix/CATO00000000000000007007.zip"},
     "records": 1000, "updated_at": "2026-11-28T07:25:12Z",
     "gaps": [{"first": 7001, "last": 7003, "missing": 3, "text": "files 7001-7003", "at": "..."}],
     "quarantined": [{"sequence": 6990, "key": "...", "reason": "...", "at": "..."}],
     "failure": {"key": "...", "attempts": 2, "reason": "...", "since": "..."},
     "last_error": {"message": "...", "at": "..."}}

``cursor`` belongs to the source (``forwarder.sources.base``); ``records`` counts the
records of the object it names that were delivered. Version 1 (the sequence number, key,
records and complete flag at the top) is read and rewritten as version 2.

Besides the position, the checkpoint keeps what a person asks after an incident (shown
by ``forwarder status``): the gaps seen, the quarantined objects, the object the pipeline
is stuck on and how often it failed (so a restart keeps counting), and the last error.
The lists keep their newest NOTES_KEPT entries.

``Checkpoint`` is the interface the pipeline writes through (the document above and the
notes, ``lock``/``load``/``save``/``unlock``); ``CheckpointStore`` keeps it in a local file.
A pipeline shared by a fleet keeps it in S3 instead (``forwarder.coordination.state``), the
same document with the writer's lease added.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from forwarder.errors import CheckpointError
from forwarder.sources.base import Cursor, Gap

VERSION = 2
NOTES_KEPT = 100


def now_text() -> str:
    """The current UTC time as the checkpoint writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Failure:
    """The object the pipeline cannot get past, and how often it tried."""

    key: str
    attempts: int
    reason: str
    since: str


@dataclass(frozen=True)
class Position:
    """How far delivery got: *records* records of the object *cursor* is inside."""

    cursor: Cursor
    records: int = 0


def _from_version_1(data: dict[str, Any]) -> dict[str, Any]:
    """A version 1 checkpoint (the log exporter's sequence number at the top) as version 2."""
    sequence = data.get("sequence")
    cursor = None
    if sequence is not None:
        cursor = {"sequence": sequence, "key": data.get("key", "")}
        if data.get("complete") is True:
            cursor["complete"] = True
        elif data.get("complete") is not False:
            raise ValueError("complete must be a boolean")
    failure = data.get("failure")
    if isinstance(failure, dict):
        failure = {k: failure[k] for k in ("key", "attempts", "reason", "since") if k in failure}
    return {**data, "version": VERSION, "cursor": cursor, "failure": failure}


class Checkpoint(abc.ABC):
    """The checkpoint of one source: the position and the notes, wherever it is kept.

    The notes (``record_*``) wait in memory for the next ``save``; ``lock`` keeps other
    writers off before ``load``, ``unlock`` lets go.
    """

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        self.position: Position | None = None
        self.gaps: list[dict[str, Any]] = []
        self.quarantined: list[dict[str, Any]] = []
        self.failure: Failure | None = None
        self.last_error: dict[str, str] | None = None

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Names the checkpoint in messages (a path, an ``s3://`` URL)."""

    @abc.abstractmethod
    def lock(self) -> None:
        """Keep other writers off, or fail (CheckpointError) when another one holds it."""

    @abc.abstractmethod
    def unlock(self) -> None:
        """Let go of what lock() took."""

    @abc.abstractmethod
    def load(self) -> Position | None:
        """The saved position, or None when there is no checkpoint yet."""

    @abc.abstractmethod
    def save(self, position: Position | None) -> None:
        """Write *position* and the notes durably (CheckpointError when it cannot)."""

    def document(self, position: Position | None) -> dict[str, Any]:
        """The checkpoint's JSON document for *position* and the notes."""
        return {
            "version": VERSION,
            "source": self.source_id,
            "cursor": position.cursor if position else None,
            "records": position.records if position else 0,
            "updated_at": now_text(),
            "gaps": self.gaps,
            "quarantined": self.quarantined,
            "failure": asdict(self.failure) if self.failure else None,
            "last_error": self.last_error,
        }

    def read_document(self, text: str) -> Position | None:
        """Take the position and the notes from the document *text*; CheckpointError when it
        is corrupt or another source's."""
        try:
            data = json.loads(text)
            if isinstance(data, dict) and data.get("version") == 1:
                data = _from_version_1(data)
            self.position = self._position(data)
            self._notes(data)
            return self.position
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{self.where}: the checkpoint is corrupt ({exc}); fix or remove it "
                "(removing it restarts from source.start)"
            ) from None

    def _notes(self, data: dict[str, Any]) -> None:
        gaps, quarantined = data.get("gaps", []), data.get("quarantined", [])
        if not (isinstance(gaps, list) and isinstance(quarantined, list)):
            raise ValueError("gaps and quarantined must be lists")
        self.gaps, self.quarantined = gaps, quarantined
        failure = data.get("failure")
        self.failure = Failure(**failure) if failure else None
        error = data.get("last_error")
        self.last_error = dict(error) if error else None

    def _position(self, data: Any) -> Position | None:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"expected a version {VERSION} checkpoint object")
        if data.get("source") != self.source_id:
            raise CheckpointError(
                f"{self.where}: this checkpoint belongs to {data.get('source')}, not {self.source_id}; "
                "give each source its own checkpoint.path"
            )
        cursor, records = data["cursor"], data["records"]
        if cursor is None:
            return None  # notes saved before anything was delivered
        if not isinstance(cursor, dict) or type(records) is not int or records < 0:
            raise ValueError("cursor must be an object, records a whole number")
        return Position(cursor, records)

    def record_gap(self, gap: Gap) -> None:
        """Note a gap (saved with the next save)."""
        entry = {
            "first": gap.first,
            "last": gap.last,
            "missing": gap.missing,
            "text": gap.text,
            "at": now_text(),
        }
        self.gaps = [*self.gaps, entry][-NOTES_KEPT:]

    def record_quarantine(self, identity: dict[str, Any], reason: str) -> None:
        """Note a quarantined object, named by *identity* (saved with the next save)."""
        self.quarantined = [*self.quarantined, {**identity, "reason": reason, "at": now_text()}][-NOTES_KEPT:]

    def record_failure(self, key: str, reason: str) -> Failure:
        """Count one more failed attempt at object *key* (saved with the next save)."""
        previous = self.failure if self.failure and self.failure.key == key else None
        attempts = previous.attempts + 1 if previous else 1
        self.failure = Failure(key, attempts, reason, previous.since if previous else now_text())
        self.record_error(f"{key}: {reason}")
        return self.failure

    def clear_failure(self) -> None:
        """The object that failed got delivered (or quarantined)."""
        self.failure = None

    def record_error(self, message: str) -> None:
        """Keep *message* as the last error (saved with the next save)."""
        self.last_error = {"message": message, "at": now_text()}


class CheckpointStore(Checkpoint):
    """The checkpoint in a local file: atomic writes, a lock file against a second forwarder."""

    def __init__(self, path: str | Path, source_id: str) -> None:
        super().__init__(source_id)
        self.path = Path(path)
        self._lock: IO[bytes] | None = None

    @property
    def where(self) -> str:
        """The file's path."""
        return str(self.path)

    def lock(self) -> None:
        """Take the checkpoint's lock, or fail if another forwarder holds it."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "ab")
        except OSError as exc:
            raise CheckpointError(f"{lock_path}: cannot create the lock file: {exc.strerror}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise CheckpointError(
                f"{self.path}: another forwarder is using this checkpoint (lock {lock_path} is held); "
                "stop it, or give this one its own checkpoint.path"
            ) from None
        self._lock = handle

    def unlock(self) -> None:
        """Release the lock taken by lock()."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def load(self) -> Position | None:
        """The saved position, or None when there is no checkpoint yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{self.path}: cannot read the checkpoint: {exc}") from exc
        return self.read_document(text)

    def save(self, position: Position | None) -> None:
        """Write *position* and the notes atomically (temp file, fsync, rename, fsync of the dir)."""
        data = self.document(position)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
            self.position = position
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise CheckpointError(
                f"{self.path}: cannot write the checkpoint ({exc.strerror}); "
                "this pipeline stops (what it sent since the last write is sent again once restarted)"
            ) from exc
