"""The pipeline: source → records → syslog messages → transport, and the checkpoint.

It owns the delivery guarantee (at least once, in order):
- files go out in numeric sequence order, the records of a file in order;
- the checkpoint moves only after the transport acknowledged a batch, and then names the
  file and how many of its records are done, so a restart resumes inside a file;
- a batch the collector did not take is sent again with backoff; the checkpoint waits;
- a file that cannot be downloaded stops the pipeline *on that file* (it is tried again on
  the next poll): later files never overtake it, so nothing is skipped silently;
- a file that was downloaded but cannot be read (corrupt, wrong password, over
  source.max_member_bytes) is tried source.max_attempts times with backoff, the attempts
  counted in the checkpoint; then source.on_bad_file applies: ``stop`` stays on it,
  ``quarantine`` records it (checkpoint and quarantine list, the list fsynced first) and
  moves on; an object that is not what its name or first bytes say (forwarder.archive's
  container_of) is such a bad file, never read as records;
- a jump in sequence numbers (files deleted by retention, or never written) is a gap: one
  loud warning naming the missing range, recorded in the checkpoint, and on we go;
- a bad record (not CEF/JSON, too long, or refused by the encoder: malformed, invalid
  UTF-8 under reject) is reported (object, member, line, reason), counted, written to the
  dead-letter file and passed over; its place still counts, so it is not re-read after a
  restart; the dead-letter file is made durable before the checkpoint moves past it;
- a message over output.max_message_bytes (or what the transport carries) is truncated,
  split or dropped as output.oversize says (forwarder.oversize), counted, and logged once
  per object with its place.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from forwarder.archive import Member, limit_members, open_members
from forwarder.checkpoint import CheckpointStore, Position, now_text
from forwarder.config import Config
from forwarder.deadletter import DeadLetter, dead_letter_path
from forwarder.encoding import EventEncoder, as_event_encoder
from forwarder.errors import BadFileError, ConfigError, CredentialsError, FetchError, SendError
from forwarder.observer import Observer
from forwarder.oversize import fit, header_length
from forwarder.prefetch import Fetched, Prefetcher
from forwarder.records import Record, split_records
from forwarder.source import LogObject, S3Source
from forwarder.syslog import SyslogEncoder
from forwarder.transport import Transport

log = logging.getLogger(__name__)

# How many bad records of one object are logged one by one before the rest are summed up.
BAD_RECORDS_LOGGED_PER_OBJECT = 10
# How many messages over the size limit (output.oversize) of one object are logged one by one.
OVERSIZE_LOGGED_PER_OBJECT = 1
# With --once, a batch the collector refuses is tried this many times before giving up.
ONCE_SEND_ATTEMPTS = 5
# The wait between attempts at a bad file doubles from source.bad_file_retry_secs up to this.
BAD_FILE_RETRY_MAX_SECS = 300.0


class Stopped(Exception):
    """Raised inside the pipeline when a stop was requested during a wait."""


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


class Pipeline:
    """Moves every record of every new file to the transport; see the module docstring."""

    def __init__(
        self,
        config: Config,
        source: S3Source,
        store: CheckpointStore,
        encoder: SyslogEncoder | EventEncoder,
        transport: Transport,
        stop: threading.Event | None = None,
        once: bool = False,
        observer: Observer | None = None,
    ) -> None:
        self._config = config
        self._source = source
        self._store = store
        self._encoder = as_event_encoder(encoder)
        self._transport = transport
        # Every record not sent as it was (parser.dead_letter_path): see forwarder.deadletter.
        self.dead_letter = DeadLetter(
            dead_letter_path(config.parser.dead_letter_path, config.checkpoint.path)
        )
        self._noted: tuple[str, dict[str, int]] = ("", {})  # (key, records of it logged, by kind)
        self.stop = stop or threading.Event()
        self._once = once
        self.stats = RunStats()
        self.position: Position | None = store.load()
        self.observer = observer or Observer()  # metrics, health, progress: see forwarder.observer
        if hasattr(transport, "on_attempt"):  # failover: every collector's outcome, not just the active one
            transport.on_attempt = self.observer.collector
        self.observer.collectors(getattr(transport, "labels", [transport.label]))
        if store.failure is not None:
            self.observer.bad_file(store.failure)
        self._paced_since = time.monotonic()
        self._paced_events = 0
        self._oversize_seen = ("", 0)  # (key, messages over the size limit in it so far)

    # --- the passes -------------------------------------------------------------------

    def run_pass(self) -> int:
        """Forward every file now pending after the checkpoint; return events sent.

        Raises FetchError (a file could not be listed or downloaded, or a bad file under
        on_bad_file: stop) and, with ``once``, SendError (the collector refused a batch
        ONCE_SEND_ATTEMPTS times).
        """
        before = self.stats.events_sent
        self._source.refresh_credentials(force=False)
        if self.position is None and not self._start_fresh():
            return 0
        src = self._config.source
        prefetch = Prefetcher(self._source, self._expected(), src.prefetch_files, src.prefetch_bytes)
        try:
            for item in prefetch:
                try:
                    if self.stop.is_set():
                        break
                    self.observer.fetched(item.obj, item.error)
                    if item.obj is None:
                        raise item.error or FetchError("listing failed")
                    self._forward_fetched(item)
                finally:
                    if item.path is not None:
                        item.path.unlink(missing_ok=True)
        except CredentialsError:
            self._source.refresh_credentials()  # a rotated key is read again for the next attempt
            raise
        finally:
            prefetch.close()
        return self.stats.events_sent - before

    def _expected(self) -> int | None:
        """The sequence number of the next file to forward."""
        if self.position is None:
            return None
        return self.position.sequence + 1 if self.position.complete else self.position.sequence

    def _start_fresh(self) -> bool:
        """No checkpoint yet: pin where source.start says to begin, so restarts agree."""
        start = self._config.source.start
        if isinstance(start, int):
            # The first file from that number on (no gap is reported before it: asked for).
            first = next(iter(self._source.pending(start)), None) or LogObject("", start, 0)
        else:
            try:
                bounds = self._source.bounds()
            except CredentialsError as exc:
                if self._config.source.discovery != "probe":
                    raise
                raise ConfigError(
                    f"source.start: {start} needs to list the bucket, which was refused ({exc}); with "
                    "discovery: probe give the sequence number to start at, or import the client "
                    "script's storage file (forwarder import-state)"
                ) from None
            if bounds is None:
                return False
            first = bounds[0] if start == "earliest" else bounds[1]
        log.info("no checkpoint yet: starting at file %d (source.start: %s)", first.sequence, start)
        self._save(Position(first.sequence, first.key, 0, False))
        return True

    def _forward_fetched(self, item: Fetched) -> None:
        """Forward one prefetched file, trying a bad file again as the settings say."""
        obj = item.obj
        assert obj is not None and self.position is not None
        if self.position.next_record(obj.sequence) is None:
            return
        self._note_gap(obj)
        path, error = item.path, item.error
        while True:
            try:
                if error is not None:
                    raise error
                assert path is not None
                self._forward_object(obj, path)
                return
            except BadFileError as exc:
                if not self._bad_file(obj, exc):
                    return
            finally:
                if path is not None and path != item.path:
                    path.unlink(missing_ok=True)
            path, error = None, None
            try:
                path = self._source.fetch(obj)
            except FetchError as exc:
                error = exc

    def _note_gap(self, obj: LogObject) -> None:
        expected = self._expected()
        if expected is None or obj.sequence <= expected:
            return
        first, last = expected, obj.sequence - 1
        count = last - first + 1
        log.warning(
            "GAP: %s missing from %s (%d file%s: deleted by the 7-day retention, or never written); "
            "their events cannot be forwarded; continuing with %s",
            f"file {first}" if count == 1 else f"files {first}-{last}",
            self._source.id,
            count,
            "" if count == 1 else "s",
            obj.key,
            extra={"gap_first": first, "gap_last": last},
        )
        self.stats.gaps += 1
        self.observer.gap(first, last)
        self._store.record_gap(first, last)

    def _bad_file(self, obj: LogObject, exc: BadFileError) -> bool:
        """Count a failed attempt at a bad file; True to try it again, False when quarantined."""
        src = self._config.source
        failure = self._store.record_failure(obj.sequence, obj.key, str(exc))
        self.observer.bad_file(failure)
        attempt = f"attempt {failure.attempts} of {src.max_attempts}"
        if failure.attempts < src.max_attempts:
            delay = min(BAD_FILE_RETRY_MAX_SECS, src.bad_file_retry_secs * 2 ** (failure.attempts - 1))
            log.warning("%s (%s; trying again in %gs)", exc, attempt, delay, extra={"key": obj.key})
            if self.stop.wait(delay):
                raise Stopped()
            return True
        if src.on_bad_file == "quarantine":
            log.error(
                "%s (%s): quarantined, moving on (see forwarder status)", exc, attempt, extra={"key": obj.key}
            )
            self._quarantine(obj, str(exc))
            return False
        raise FetchError(
            f"{exc} ({attempt}; on_bad_file: stop holds the position here: replace the object, or set "
            "source.on_bad_file: quarantine)"
        )

    def _quarantine(self, obj: LogObject, reason: str) -> None:
        quarantine = self._config.checkpoint.quarantine_path or str(
            Path(self._config.checkpoint.path).with_name("quarantine.jsonl")
        )
        entry = {"sequence": obj.sequence, "key": obj.key, "source": self._source.id, "reason": reason}
        try:  # durable before the checkpoint moves past the file, as the dead-letter file is
            with open(quarantine, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({**entry, "at": now_text()}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise FetchError(f"{quarantine}: cannot record the quarantined file: {exc.strerror}") from exc
        self._store.record_quarantine(obj.sequence, obj.key, reason)
        self.stats.quarantined += 1
        self.observer.quarantined(obj)
        assert self.position is not None
        done = self.position.records if self.position.sequence == obj.sequence else 0
        self._save(Position(obj.sequence, obj.key, done, True))

    def _forward_object(self, obj: LogObject, path: Path) -> None:
        label = self._source.label(obj)
        src, parser = self._config.source, self._config.parser
        assert self.position is not None
        first = self.position.next_record(obj.sequence) or 0
        members: Iterator[Member] = limit_members(
            open_members(path, label, src.zip_password), src.max_member_bytes, label
        )
        records = split_records(members, label, parser.format, parser.max_record_bytes)
        self._forward_records(obj, label, _as_bad_file(records), first)

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
        self.observer.file_done(obj, done)
        log.info("%s: delivered (%d records)", label, done, extra={"key": obj.key, "records": done})

    def _report_bad(self, label: str, record: Record, count: int) -> None:
        self.stats.bad_records += 1
        self.observer.skipped("bad_record")
        self.dead_letter.add(label, record, record.reason)
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

    def run_forever(self, reload: threading.Event | None = None) -> None:
        """Poll every source.poll_interval_secs until stop (or *reload*) is set.

        A file that cannot be fetched is logged and tried again on the next poll; the
        pipeline stays on it (later files wait). A failed send is retried inside the pass.
        """
        poll = self._config.source.poll_interval_secs
        while not self._interrupted(reload):
            try:
                self.run_pass()
            except FetchError as exc:
                log.error("%s; trying again in %gs", exc, poll)
                self._store.record_error(str(exc))
            except Stopped:
                break
            else:
                self.observer.pass_done()
            deadline = time.monotonic() + poll
            while not self._interrupted(reload) and (left := deadline - time.monotonic()) > 0:
                self._probe_collector()
                self.stop.wait(min(0.5, left))

    def _probe_collector(self) -> None:
        """While idle, check the collector when the observers ask (for /readyz; see forwarder.health)."""
        if not self.observer.probe_due():
            return
        try:
            self._transport.probe()
        except SendError as exc:
            self.observer.collector(self._transport.label, False, str(exc))
        else:
            self.observer.collector(self._transport.label, True, "")

    def _interrupted(self, reload: threading.Event | None) -> bool:
        return self.stop.is_set() or (reload is not None and reload.is_set())

    # --- delivery ---------------------------------------------------------------------

    def _deliver(self, batch: list[Record], position: Position) -> None:
        """Send *batch* until acknowledged, then record *position*."""
        batch, messages = self._encode(batch, position)
        self.observer.read(len(batch))
        events = len(messages)
        limit = self._message_limit()
        if limit is not None and messages and max(map(len, messages)) > limit:
            messages, events = self._fit_oversize(batch, messages, limit, position)
        if messages:
            self._send_with_retry(messages)
            self.stats.events_sent += events
        self._save(position)
        if position.complete:
            self._oversize_summary(position)
        self._pace(len(messages))  # after the save: a crash while pacing repeats nothing

    def _encode(self, batch: list[Record], position: Position) -> tuple[list[Record], list[bytes]]:
        """The records that go out and their messages (output.encoding). Those the encoder
        cannot send (malformed, invalid JSON, invalid UTF-8 under reject) are reported bad;
        those it sent changed (invalid UTF-8 replaced) are counted and dead-lettered."""
        if not batch:
            return batch, []
        encoded = self._encoder.encode(batch)
        label = f"s3://{self._source.bucket}/{position.key}"
        for record, reason in encoded.rejected:
            self._report_bad(
                label, record._replace(kind="bad", reason=reason), self._note(position.key, "bad")
            )
        for record, reason in encoded.repaired:
            self.stats.repaired_records += 1
            self.observer.altered("invalid_utf8")
            self.dead_letter.add(label, record, reason, "repaired")
            if self._note(position.key, "repaired") <= BAD_RECORDS_LOGGED_PER_OBJECT:
                member = f" member {record.member}" if record.member else ""
                log.warning(
                    "%s%s line %d: %s",
                    label,
                    member,
                    record.line,
                    reason,
                    extra={"key": label, "member": record.member, "line": record.line},
                )
        return encoded.records, encoded.messages

    def _note(self, key: str, kind: str) -> int:
        """Count one more record of *kind* in object *key* for the log (the first few are logged)."""
        if self._noted[0] != key:
            self._noted = (key, {})
        counts = self._noted[1]
        counts[kind] = counts.get(kind, 0) + 1
        return counts[kind]

    def _message_limit(self) -> int | None:
        """output.max_message_bytes (0: none), and never more than the transport can carry."""
        limits = [self._config.output.max_message_bytes, self._transport.max_message_bytes]
        given = [limit for limit in limits if limit]
        return min(given) if given else None

    def _fit_oversize(
        self, batch: list[Record], messages: list[bytes], limit: int, position: Position
    ) -> tuple[list[bytes], int]:
        """*messages* with those over *limit* truncated, split or dropped (output.oversize),
        and how many events are left."""
        policy = self._config.output.oversize
        fitted: list[bytes] = []
        events = 0
        for record, message in zip(batch, messages, strict=True):
            if len(message) <= limit:
                fitted.append(message)
                events += 1
                continue
            pieces = fit(message, header_length(message, self._config.output.header), limit, policy)
            fitted += pieces
            events += 1 if pieces else 0
            self._report_oversize(record, len(message), pieces, limit, position)
        return fitted, events

    def _report_oversize(
        self, record: Record, size: int, pieces: list[bytes], limit: int, position: Position
    ) -> None:
        """Count a message over the limit; log the first of each object (then a count at its end)."""
        policy = self._config.output.oversize
        if policy == "truncate":
            self.stats.oversize_truncated += 1
            self.observer.altered("truncated")
            done = f"truncated to {len(pieces[0])} bytes"
        elif policy == "split":
            self.stats.oversize_split += 1
            self.observer.altered("split")
            self.stats.oversize_pieces += len(pieces)
            done = f"split into {len(pieces)} messages"
        else:
            self.stats.oversize_dropped += 1
            self.observer.skipped("too_big")
            done = "dropped, record skipped"
        if policy != "split":  # split pieces carry all of it; the rest loses some: a trace
            outcome = "truncated" if policy == "truncate" else "skipped"
            reason = f"message of {size} bytes over the size limit ({limit}): {done} (output.oversize)"
            self.dead_letter.add(f"s3://{self._source.bucket}/{position.key}", record, reason, outcome)
        key, count = self._oversize_seen
        count = count + 1 if key == position.key else 1
        self._oversize_seen = (position.key, count)
        if count > OVERSIZE_LOGGED_PER_OBJECT:
            return
        carried = self._transport.max_message_bytes
        what = f"what {self._transport.label} can carry" if limit == carried else "output.max_message_bytes"
        member = f" member {record.member}" if record.member else ""
        log.warning(
            "s3://%s/%s%s line %d: message of %d bytes exceeds %s (%d): %s (output.oversize: %s)",
            self._source.bucket,
            position.key,
            member,
            record.line,
            size,
            what,
            limit,
            done,
            policy,
            extra={"key": position.key, "member": record.member, "line": record.line},
        )

    def _oversize_summary(self, position: Position) -> None:
        """At the end of an object: how many of its messages were over the limit, if not all were logged."""
        key, count = self._oversize_seen
        if key != position.key:
            return
        self._oversize_seen = ("", 0)
        if count > OVERSIZE_LOGGED_PER_OBJECT:
            log.warning(
                "s3://%s/%s: %d messages over the size limit in all (output.oversize: %s; first %d logged)",
                self._source.bucket,
                position.key,
                count,
                self._config.output.oversize,
                OVERSIZE_LOGGED_PER_OBJECT,
                extra={"key": position.key},
            )

    def _send_with_retry(self, messages: list[bytes]) -> None:
        output = self._config.output
        attempt = 0
        while True:
            try:
                started = time.monotonic()
                self._transport.send(messages)
                acked = time.monotonic() - started
                self.observer.sent(self._transport.label, len(messages), sum(map(len, messages)), acked)
                if attempt:
                    log.info("%s: delivering again", self._transport.label)
                return
            except SendError as exc:
                self.observer.send_failed(self._transport.label, len(messages), str(exc))
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
        if not rate or self._config.output.protocol == "udp":  # udp: paced per datagram (transport)
            return
        self._paced_events += count
        ahead = self._paced_since + self._paced_events / rate - time.monotonic()
        if ahead > 0:
            self.stop.wait(ahead)
        elif ahead < -1:  # idle for a while: do not burst to catch up
            self._paced_since, self._paced_events = time.monotonic(), 0

    def _save(self, position: Position) -> None:
        if self._store.failure and (position.sequence, position.complete) > (
            self._store.failure.sequence,
            False,
        ):
            log.info("%s: delivered after %d failed attempts", position.key, self._store.failure.attempts)
        self.dead_letter.commit()  # before the checkpoint moves past the records it names
        self._store.save(position)
        self.position = position
        self.observer.saved(position)


def _as_bad_file(records: Iterator[Record]) -> Iterator[Record]:
    """Records, with an unreadable file's FetchError turned into BadFileError.

    Everything raised while reading a downloaded file is about its content (corrupt,
    wrong password, too big), not about S3: it counts towards on_bad_file.
    """
    try:
        yield from records
    except BadFileError:
        raise
    except FetchError as exc:
        raise BadFileError(str(exc)) from exc
