"""The dead-letter file: every record not sent as it was, one JSON line each.

``parser.dead_letter_path`` (default: ``dead_letter.jsonl`` beside the checkpoint). A line::

    {"at": "2026-11-28T07:25:12Z", "object": "s3://bucket/key", "member": "a.log", "line": 7,
     "record": 6, "outcome": "skipped", "reason": "invalid JSON: ...", "text": "..."}

``outcome`` is ``skipped`` (not sent: not CEF/JSON, malformed, too long, invalid UTF-8 under
``reject``, too big for the transport), ``repaired`` (sent with changes: invalid UTF-8
replaced) or ``truncated`` (sent cut to output.max_message_bytes). ``text`` is the record
as read (invalid UTF-8 shown as U+FFFD); when it is not valid UTF-8, ``text_base64`` holds
its exact bytes. ``record`` is its ordinal in the object.

Lines are made durable (written, fsynced) before the checkpoint moves past their records: a
crash can repeat a line (the records are read again), never lose one. A dead-letter file
that cannot be written stops the forwarder (CheckpointError), since records would otherwise
be dropped without a trace.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from forwarder.core.checkpoint import now_text
from forwarder.errors import CheckpointError
from forwarder.formats.records import Record


class DeadLetter:
    """Collects dead-letter lines and appends them to the file on ``commit``.

    Lines wait in memory only until the next checkpoint save (a batch at most): the file is
    opened, appended to, fsynced and closed on each commit that has lines to write.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[str] = []
        self.written = 0

    def add(self, label: str, record: Record, reason: str, outcome: str = "skipped") -> None:
        """Note *record* of object *label* (``s3://bucket/key``) with *reason*."""
        entry: dict[str, object] = {
            "at": now_text(),
            "object": label,
            "member": record.member,
            "line": record.line,
            "record": record.ordinal,
            "outcome": outcome,
            "reason": reason,
            "text": record.text.decode("utf-8", "replace"),
        }
        try:
            record.text.decode()
        except UnicodeDecodeError:
            entry["text_base64"] = base64.b64encode(record.text).decode("ascii")
        self._pending.append(json.dumps(entry, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        """Write every line noted so far, durably (before the checkpoint moves past them)."""
        if not self._pending:
            return
        self._append(self._pending)
        self.written += len(self._pending)
        self._pending = []

    def _append(self, lines: list[str]) -> None:
        """Append *lines* to the file, fsynced (a fleet's pipeline writes them to S3 instead:
        ``forwarder.coordination.state``)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.writelines(lines)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise CheckpointError(f"{self.path}: cannot write the dead-letter file: {exc.strerror}") from exc


# A dead-letter line holds a record (up to parser.max_record_bytes, 1 MiB by default) twice
# at most (as text, and in base64 when it is not UTF-8): its last line is looked for this far.
_LAST_LINE_MAX = 16 << 20


def summary(path: Path) -> tuple[int, dict[str, Any] | None]:
    """(the lines in the dead-letter file at *path*, its last entry): (0, None) without a
    file; OSError when it cannot be read. Counted in 1 MiB blocks; the last line is read
    backwards from the end, 64 KiB at a time."""
    try:
        with open(path, "rb") as handle:
            count = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
            tail = _last_line(handle)
    except FileNotFoundError:
        return 0, None
    try:
        last = json.loads(tail) if tail else None
    except ValueError:
        return count, None
    return count, last if isinstance(last, dict) else None


def _last_line(handle: BinaryIO) -> bytes | None:
    position, data = handle.seek(0, os.SEEK_END), b""
    while position > 0 and len(data) < _LAST_LINE_MAX:
        step = min(65536, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + data
        body = data.rstrip(b"\n")
        if b"\n" in body or position == 0:
            return body.rsplit(b"\n", 1)[-1]
    return None
