"""What the pipeline says about records not sent as they were: log lines, counts, dead letters;
and about whole objects: delivered, or missing (a gap).

Each ``Note`` of a batch (``core.reading``) becomes a line in the dead-letter file (a
split event excepted: its pieces carry all of it), a count (``RunStats``, the observers)
and, for the first few of an object, a log line with its place (object, member, line);
the rest of an object's are summed up when it is done.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from forwarder.core.deadletter import DeadLetter
from forwarder.core.observer import Observer
from forwarder.core.reading import Note, ReadSettings
from forwarder.sources.base import Gap, LogObject

log = logging.getLogger("forwarder.core.pipeline")

# How many bad (or repaired) records of one object are logged one by one before the rest
# are summed up.
BAD_RECORDS_LOGGED_PER_OBJECT = 10
# How many messages over the size limit (output.oversize) of one object are logged one by one.
OVERSIZE_LOGGED_PER_OBJECT = 1
_OVERSIZE = ("truncated", "split", "dropped")


@dataclass
class RunStats:
    """What one pass (or the life of a daemon) did."""

    files: int = 0
    events_sent: int = 0
    bad_records: int = 0
    repaired_records: int = 0  # sent with invalid UTF-8 replaced (parser.invalid_utf8: replace)
    quarantined: int = 0
    gaps: int = 0
    last_key: str = ""
    started: float = field(default_factory=time.monotonic)
    # Events over output.max_message_bytes, by what output.oversize did with them.
    oversize_truncated: int = 0
    oversize_split: int = 0
    oversize_pieces: int = 0  # the messages the split ones became
    oversize_dropped: int = 0

    def oversize_text(self) -> str:
        """``1 truncated, 1 split into 2 messages, 1 dropped``; "" when none was too long."""
        parts = [
            (self.oversize_truncated, "truncated"),
            (self.oversize_split, f"split into {self.oversize_pieces} messages"),
            (self.oversize_dropped, "dropped"),
        ]
        return ", ".join(f"{count} {what}" for count, what in parts if count)


class Reports:
    """Reports the notes of one object after another; ``done`` ends an object."""

    def __init__(
        self, dead_letter: DeadLetter, observer: Observer, stats: RunStats, settings: ReadSettings
    ) -> None:
        self.dead_letter = dead_letter
        self.observer = observer
        self.stats = stats
        self._settings = settings
        self._seen: Counter[str] = Counter()  # of the current object: "bad", "repaired", "oversize"
        self._key = ""  # the current object's key (the log's "key" field)

    def notes(self, label: str, key: str, notes: list[Note]) -> None:
        """Report *notes* of the object *key*, named *label* in messages."""
        self._key = key
        for note in notes:
            if note.kind == "bad":
                self._bad(label, note)
            elif note.kind == "repaired":
                self._repaired(label, note)
            else:
                self._oversize(label, note)

    def done(self, label: str) -> None:
        """The object is done: sum up what was not logged one by one; start counting afresh."""
        bad, oversize = self._seen["bad"], self._seen["oversize"]
        self._seen.clear()
        if bad > BAD_RECORDS_LOGGED_PER_OBJECT:
            log.warning(
                "%s: %d bad records in all (first %d logged)", label, bad, BAD_RECORDS_LOGGED_PER_OBJECT
            )
        if oversize > OVERSIZE_LOGGED_PER_OBJECT:
            log.warning(
                "%s: %d messages over the size limit in all (output.oversize: %s; first %d logged)",
                label,
                oversize,
                self._settings.oversize,
                OVERSIZE_LOGGED_PER_OBJECT,
                extra={"key": self._key},
            )

    def delivered(self, label: str, obj: LogObject, records: int) -> None:
        """Every record of *obj* (named *label*) was acknowledged."""
        self.stats.files += 1
        self.stats.last_key = obj.key
        self.observer.file_done(obj, records)
        log.info("%s: delivered (%d records)", label, records, extra={"key": obj.key, "records": records})

    def gap(self, source_id: str, obj: LogObject, gap: Gap) -> None:
        """Objects are missing before *obj*: one loud line, counted."""
        log.warning(
            "GAP: %s missing from %s (%s); their events cannot be forwarded; continuing with %s",
            gap.text,
            source_id,
            gap.detail or f"{gap.missing} missing",
            obj.key,
            extra={"gap_first": gap.first, "gap_last": gap.last},
        )
        self.stats.gaps += 1
        self.observer.gap(gap)

    def _place(self, label: str, note: Note) -> tuple[str, dict[str, object]]:
        record = note.record
        member = f" member {record.member}" if record.member else ""
        where = f"{label}{member} line {record.line}"
        return where, {"key": self._key, "member": record.member, "line": record.line}

    def _bad(self, label: str, note: Note) -> None:
        self.stats.bad_records += 1
        self.observer.skipped("bad_record")
        self.dead_letter.add(label, note.record, note.reason)
        self._seen["bad"] += 1
        if self._seen["bad"] <= BAD_RECORDS_LOGGED_PER_OBJECT:
            where, extra = self._place(label, note)
            log.warning("%s: %s; record skipped", where, note.reason, extra=extra)

    def _repaired(self, label: str, note: Note) -> None:
        self.stats.repaired_records += 1
        self.observer.altered("invalid_utf8")
        self.dead_letter.add(label, note.record, note.reason, "repaired")
        self._seen["repaired"] += 1
        if self._seen["repaired"] <= BAD_RECORDS_LOGGED_PER_OBJECT:
            where, extra = self._place(label, note)
            log.warning("%s: %s", where, note.reason, extra=extra)

    def _oversize(self, label: str, note: Note) -> None:
        """A message over the limit: counted, dead-lettered unless split, the first one logged."""
        pieces = note.pieces or []
        limit = self._settings.limit
        if note.kind == "truncated":
            self.stats.oversize_truncated += 1
            self.observer.altered("truncated")
            done = f"truncated to {len(pieces[0])} bytes"
        elif note.kind == "split":
            self.stats.oversize_split += 1
            self.stats.oversize_pieces += len(pieces)
            self.observer.altered("split")
            done = f"split into {len(pieces)} messages"
        else:
            self.stats.oversize_dropped += 1
            self.observer.skipped("too_big")
            done = "dropped, record skipped"
        if note.kind != "split":  # split pieces carry all of it; the rest loses some: a trace
            outcome = "truncated" if note.kind == "truncated" else "skipped"
            reason = f"message of {note.size} bytes over the size limit ({limit}): {done} (output.oversize)"
            self.dead_letter.add(label, note.record, reason, outcome)
        self._seen["oversize"] += 1
        if self._seen["oversize"] <= OVERSIZE_LOGGED_PER_OBJECT:
            where, extra = self._place(label, note)
            log.warning(
                "%s: message of %d bytes exceeds %s (%d): %s (output.oversize: %s)",
                where,
                note.size,
                self._settings.limit_name,
                limit,
                done,
                self._settings.oversize,
                extra=extra,
            )
