"""The pipeline: source → records → syslog messages → transport, and the checkpoint.

It owns the delivery guarantee (at least once, in order):
- files go out in numeric sequence order, the records of a file in order;
- the checkpoint moves only after the transport acknowledged a batch, and then names the
  file and how many of its records are done, so a restart resumes inside a file;
- a batch the collector did not take is sent again with backoff; the checkpoint waits;
- a file that cannot be fetched or read stops the pipeline *on that file* (it is retried
  on the next poll): later files never overtake it, so nothing is skipped silently;
- a bad record is reported (object, member, line, reason), counted and passed over; its
  place still counts, so it is not re-read after a restart.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from forwarder.archive import open_members
from forwarder.checkpoint import CheckpointStore, Position
from forwarder.config import Config
from forwarder.errors import FetchError, SendError
from forwarder.records import Record, split_records
from forwarder.source import LogObject, S3Source
from forwarder.syslog import SyslogEncoder
from forwarder.transport import Transport

log = logging.getLogger(__name__)

# How many bad records of one object are logged one by one before the rest are summed up.
BAD_RECORDS_LOGGED_PER_OBJECT = 10
# With --once, a batch the collector refuses is tried this many times before giving up.
ONCE_SEND_ATTEMPTS = 5


class Stopped(Exception):
    """Raised inside the pipeline when a stop was requested during a wait."""


@dataclass
class RunStats:
    """What one pass (or the life of a daemon) did."""

    files: int = 0
    events_sent: int = 0
    bad_records: int = 0
    last_key: str = ""
    started: float = field(default_factory=time.monotonic)


class Pipeline:
    """Moves every record of every new file to the transport; see the module docstring."""

    def __init__(
        self,
        config: Config,
        source: S3Source,
        store: CheckpointStore,
        encoder: SyslogEncoder,
        transport: Transport,
        stop: threading.Event | None = None,
        once: bool = False,
    ) -> None:
        self._config = config
        self._source = source
        self._store = store
        self._encoder = encoder
        self._transport = transport
        self.stop = stop or threading.Event()
        self._once = once
        self.stats = RunStats()
        self.position: Position | None = store.load()
        self._paced_since = time.monotonic()
        self._paced_events = 0

    # --- the passes -------------------------------------------------------------------

    def run_pass(self) -> int:
        """Forward everything now in the bucket after the checkpoint; return events sent.

        Raises FetchError (a file could not be listed or read) and, with ``once``,
        SendError (the collector refused a batch ONCE_SEND_ATTEMPTS times).
        """
        before = self.stats.events_sent
        objects = self._source.list_objects()
        if self.position is None:
            self._start_fresh(objects)
        for obj in objects:
            if self.stop.is_set():
                break
            first = self.position.next_record(obj.sequence) if self.position else 0
            if first is None:
                continue
            self._forward_object(obj, first)
        return self.stats.events_sent - before

    def _start_fresh(self, objects: list[LogObject]) -> None:
        """No checkpoint yet: pin where source.start says to begin, so restarts agree."""
        start = self._config.source.start
        if not objects and not isinstance(start, int):
            return
        if start == "earliest":
            first = objects[0]
        elif start == "latest":
            first = objects[-1]
        else:
            first = next((o for o in objects if o.sequence >= int(start)), None) or LogObject(
                "", int(start), 0
            )
        log.info("no checkpoint yet: starting at file %d (source.start: %s)", first.sequence, start)
        self._save(Position(first.sequence, first.key, 0, False))

    def _forward_object(self, obj: LogObject, first: int) -> None:
        label = self._source.label(obj)
        src = self._config.source
        with self._source.download(obj) as path:
            members = open_members(path, label, src.zip_password)
            records = split_records(
                members, label, self._config.parser.format, self._config.parser.max_record_bytes
            )
            self._forward_records(obj, label, records, first)

    def _forward_records(self, obj: LogObject, label: str, records: Iterable[Record], first: int) -> None:
        max_events = self._config.batch.max_events
        batch: list[Record] = []
        done = first  # records of this object accounted for (sent or reported bad)
        bad = 0
        if first:
            log.info("%s: resuming after record %d", label, first)
        for record in records:
            if record.ordinal < first:
                continue
            done = record.ordinal + 1
            if record.kind == "bad":
                bad += 1
                self._report_bad(label, record, bad)
                continue
            batch.append(record)
            if len(batch) >= max_events:
                self._deliver(batch, Position(obj.sequence, obj.key, done, False))
                batch = []
                if self.stop.is_set():
                    return
        self._deliver(batch, Position(obj.sequence, obj.key, done, True))
        if bad > BAD_RECORDS_LOGGED_PER_OBJECT:
            log.warning(
                "%s: %d bad records in all (first %d logged)",
                label,
                bad,
                BAD_RECORDS_LOGGED_PER_OBJECT,
            )
        self.stats.files += 1
        self.stats.last_key = obj.key
        log.info("%s: delivered (%d records)", label, done, extra={"key": obj.key, "records": done})

    def _report_bad(self, label: str, record: Record, count: int) -> None:
        self.stats.bad_records += 1
        if count <= BAD_RECORDS_LOGGED_PER_OBJECT:
            member = f" member {record.member}" if record.member else ""
            log.warning(
                "%s%s line %d: %s; record skipped",
                label,
                member,
                record.line,
                record.reason,
                extra={"key": label, "member": record.member, "line": record.line},
            )

    def run_forever(self) -> None:
        """Poll every source.poll_interval_secs until stop is set.

        A file that cannot be fetched is logged and tried again on the next poll; the
        pipeline stays on it (later files wait). A failed send is retried inside the pass.
        """
        poll = self._config.source.poll_interval_secs
        while not self.stop.is_set():
            try:
                self.run_pass()
            except FetchError as exc:
                log.error("%s; trying again in %gs", exc, poll)
            except Stopped:
                break
            self.stop.wait(poll)

    # --- delivery ---------------------------------------------------------------------

    def _deliver(self, batch: list[Record], position: Position) -> None:
        """Send *batch* until acknowledged, then record *position*."""
        messages = self._encoder.encode_batch(batch) if batch else []
        limit = self._transport.max_message_bytes
        if limit is not None and any(len(m) > limit for m in messages):
            messages = self._drop_oversize(batch, messages, limit, position)
        if messages:
            self._send_with_retry(messages)
            self.stats.events_sent += len(messages)
            self._pace(len(messages))
        self._save(position)

    def _drop_oversize(
        self, batch: list[Record], messages: list[bytes], limit: int, position: Position
    ) -> list[bytes]:
        kept = []
        for record, message in zip(batch, messages, strict=False):
            if len(message) <= limit:
                kept.append(message)
                continue
            self.stats.bad_records += 1
            member = f" member {record.member}" if record.member else ""
            log.warning(
                "s3://%s/%s%s line %d: message of %d bytes exceeds what %s can carry (%d); record skipped",
                self._source.bucket,
                position.key,
                member,
                record.line,
                len(message),
                self._transport.label,
                limit,
            )
        return kept

    def _send_with_retry(self, messages: list[bytes]) -> None:
        output = self._config.output
        attempt = 0
        while True:
            try:
                self._transport.send(messages)
                if attempt:
                    log.info("%s: delivering again", self._transport.label)
                return
            except SendError as exc:
                attempt += 1
                if self._once and attempt >= ONCE_SEND_ATTEMPTS:
                    raise SendError(f"{exc} (gave up after {attempt} attempts)") from exc
                delay = min(output.retry_max_secs, output.retry_initial_secs * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)  # jitter, so many forwarders do not retry in step
                log.warning("%s; batch not delivered, retrying in %.1fs (attempt %d)", exc, delay, attempt)
                if self.stop.wait(delay):
                    raise Stopped() from exc

    def _pace(self, count: int) -> None:
        rate = self._config.output.max_events_per_sec
        if not rate:
            return
        self._paced_events += count
        ahead = self._paced_since + self._paced_events / rate - time.monotonic()
        if ahead > 0:
            self.stop.wait(ahead)
        elif ahead < -1:  # idle for a while: do not burst to catch up
            self._paced_since, self._paced_events = time.monotonic(), 0

    def _save(self, position: Position) -> None:
        self._store.save(position)
        self.position = position
