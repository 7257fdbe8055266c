"""The checkpoint: which file, and how many of its records, the collector has acknowledged.

Versioned JSON, written to a temporary file in the same directory, fsynced, then renamed
over the old one (and the directory fsynced), so a crash leaves either the old or the new
checkpoint, never a torn one. A missing file is a fresh start; a corrupt one is a loud
error, never a silent restart from zero. A lock file keeps two forwarders off one
checkpoint.

    {"version": 1, "source": "s3://bucket/prefix", "sequence": 7007,
     "key": "prefix/CATO00000000000000007007.zip", "records": 1000, "complete": false,
     "updated_at": "2026-11-28T07:25:12Z",
     "gaps": [{"first": 7001, "last": 7003, "at": "..."}],
     "quarantined": [{"sequence": 6990, "key": "...", "reason": "...", "at": "..."}],
     "failure": {"sequence": 7008, "key": "...", "attempts": 2, "reason": "...", "since": "..."},
     "last_error": {"message": "...", "at": "..."}}

Besides the position, the checkpoint keeps what a person asks after an incident (shown
by ``forwarder status``): the gaps seen (missing sequence ranges), the quarantined files,
the file the pipeline is stuck on and how often it failed (so a restart keeps counting),
and the last error. The lists keep their newest NOTES_KEPT entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from forwarder.errors import CheckpointError

VERSION = 1
NOTES_KEPT = 100


def now_text() -> str:
    """The current UTC time as the checkpoint writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Failure:
    """The file the pipeline cannot get past, and how often it tried."""

    sequence: int
    key: str
    attempts: int
    reason: str
    since: str


@dataclass(frozen=True)
class Position:
    """How far delivery got: *records* records of file *sequence*, or all of it if *complete*."""

    sequence: int
    key: str
    records: int
    complete: bool

    def next_record(self, sequence: int) -> int | None:
        """Index of the first record still to send in file *sequence*; None if it is done."""
        if sequence < self.sequence or (sequence == self.sequence and self.complete):
            return None
        return self.records if sequence == self.sequence else 0


class CheckpointStore:
    """Reads and atomically writes the checkpoint of one source."""

    def __init__(self, path: str | Path, source_id: str) -> None:
        self.path = Path(path)
        self.source_id = source_id
        self._lock: IO[bytes] | None = None
        self.position: Position | None = None
        self.gaps: list[dict[str, Any]] = []
        self.quarantined: list[dict[str, Any]] = []
        self.failure: Failure | None = None
        self.last_error: dict[str, str] | None = None
        self._loaded = False  # notes are only saved over a checkpoint that was read first

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
            self._loaded = True
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{self.path}: cannot read the checkpoint: {exc}") from exc
        try:
            data = json.loads(text)
            self.position = self._position(data)
            self._notes(data)
            self._loaded = True
            return self.position
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{self.path}: the checkpoint is corrupt ({exc}); fix or remove it "
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
                f"{self.path}: this checkpoint belongs to {data.get('source')}, not {self.source_id}; "
                "give each source its own checkpoint.path"
            )
        sequence, records, complete = data["sequence"], data["records"], data["complete"]
        if sequence is None:
            return None  # notes saved before anything was delivered
        if not (type(sequence) is int and type(records) is int and isinstance(complete, bool)):
            raise ValueError("sequence and records must be integers, complete a boolean")
        if sequence < 0 or records < 0:
            raise ValueError("sequence and records must not be negative")
        return Position(sequence, str(data.get("key", "")), records, complete)

    def record_gap(self, first: int, last: int) -> None:
        """Note that files *first*..*last* are missing (saved with the next save)."""
        self.gaps = [*self.gaps, {"first": first, "last": last, "at": now_text()}][-NOTES_KEPT:]

    def record_quarantine(self, sequence: int, key: str, reason: str) -> None:
        """Note that file *sequence* was quarantined (saved with the next save)."""
        entry = {"sequence": sequence, "key": key, "reason": reason, "at": now_text()}
        self.quarantined = [*self.quarantined, entry][-NOTES_KEPT:]

    def record_failure(self, sequence: int, key: str, reason: str) -> Failure:
        """Count one more failed attempt at file *sequence*; saved at once."""
        previous = self.failure if self.failure and self.failure.sequence == sequence else None
        attempts = previous.attempts + 1 if previous else 1
        self.failure = Failure(sequence, key, attempts, reason, previous.since if previous else now_text())
        self.record_error(f"{key}: {reason}")
        return self.failure

    def record_error(self, message: str) -> None:
        """Keep *message* as the last error and save at once (best effort: never raises)."""
        self.last_error = {"message": message, "at": now_text()}
        if self._loaded:
            with contextlib.suppress(CheckpointError):
                self.save(self.position)

    def save(self, position: Position | None) -> None:
        """Write *position* and the notes atomically (temp file, fsync, rename, fsync of the dir)."""
        failed = self.failure
        if position and failed and (position.sequence, position.complete) > (failed.sequence, False):
            self.failure = None  # got past the file that failed
        data = {
            "version": VERSION,
            "source": self.source_id,
            "sequence": position.sequence if position else None,
            "key": position.key if position else "",
            "records": position.records if position else 0,
            "complete": position.complete if position else False,
            "updated_at": now_text(),
            "gaps": self.gaps,
            "quarantined": self.quarantined,
            "failure": self.failure.__dict__ if self.failure else None,
            "last_error": self.last_error,
        }
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
            self.position, self._loaded = position, True
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
                "sending stops until it can be recorded"
            ) from exc
