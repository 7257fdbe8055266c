"""The checkpoint: which file, and how many of its records, the collector has acknowledged.

Versioned JSON, written to a temporary file in the same directory, fsynced, then renamed
over the old one (and the directory fsynced), so a crash leaves either the old or the new
checkpoint, never a torn one. A missing file is a fresh start; a corrupt one is a loud
error, never a silent restart from zero. A lock file keeps two forwarders off one
checkpoint.

    {"version": 1, "source": "s3://bucket/prefix", "sequence": 7007,
     "key": "prefix/CATO00000000000000007007.zip", "records": 1000, "complete": false,
     "updated_at": "2026-11-28T07:25:12Z"}
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
        try:
            data = json.loads(text)
            return self._position(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{self.path}: the checkpoint is corrupt ({exc}); fix or remove it "
                "(removing it restarts from source.start)"
            ) from None

    def _position(self, data: Any) -> Position:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"expected a version {VERSION} checkpoint object")
        if data.get("source") != self.source_id:
            raise CheckpointError(
                f"{self.path}: this checkpoint belongs to {data.get('source')}, not {self.source_id}; "
                "give each source its own checkpoint.path"
            )
        sequence, records, complete = data["sequence"], data["records"], data["complete"]
        if not (type(sequence) is int and type(records) is int and isinstance(complete, bool)):
            raise ValueError("sequence and records must be integers, complete a boolean")
        if sequence < 0 or records < 0:
            raise ValueError("sequence and records must not be negative")
        return Position(sequence, str(data.get("key", "")), records, complete)

    def save(self, position: Position) -> None:
        """Write *position* atomically: temp file, fsync, rename, fsync of the directory."""
        data = {
            "version": VERSION,
            "source": self.source_id,
            "sequence": position.sequence,
            "key": position.key,
            "records": position.records,
            "complete": position.complete,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
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
