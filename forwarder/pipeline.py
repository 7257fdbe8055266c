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
  ``quarantine`` records it (checkpoint and quarantine list) and moves on;
- a jump in sequence numbers (files deleted by retention, or never written) is a gap: one
  loud warning naming the missing range, recorded in the checkpoint, and on we go;
- a bad record is reported (object, member, line, reason), counted and passed over; its
  place still counts, so it is not re-read after a restart.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from forwarder.archive import Member, limit_members, open_members
from forwarder.checkpoint import CheckpointStore, Position, now_text
from forwarder.config import Config
from forwarder.errors import BadFileError, ConfigError, CredentialsError, FetchError, SendError
from forwarder.prefetch import Fetched, Prefetcher
from forwarder.records import Record, split_records
from forwarder.source import LogObject, S3Source
from forwarder.syslog import SyslogEncoder
from forwarder.transport import Transport

log = logging.getLogger(__name__)

# How many bad records of one object are logged one by one before the rest are summed up.
BAD_RECORDS_LOGGED_PER_OBJECT = 10
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
    quarantined: int = 0
    gaps: int = 0
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
        self._store.record_gap(first, last)

    def _bad_file(self, obj: LogObject, exc: BadFileError) -> bool:
        """Count a failed attempt at a bad file; True to try it again, False when quarantined."""
        src = self._config.source
        failure = self._store.record_failure(obj.sequence, obj.key, str(exc))
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
        try:
            with open(quarantine, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({**entry, "at": now_text()}) + "\n")
        except OSError as exc:
            raise FetchError(f"{quarantine}: cannot record the quarantined file: {exc.strerror}") from exc
        self._store.record_quarantine(obj.sequence, obj.key, reason)
        self.stats.quarantined += 1
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
            deadline = time.monotonic() + poll
            while not self._interrupted(reload) and (left := deadline - time.monotonic()) > 0:
                self.stop.wait(min(0.5, left))

    def _interrupted(self, reload: threading.Event | None) -> bool:
        return self.stop.is_set() or (reload is not None and reload.is_set())

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
        self._save(position)
        self._pace(len(messages))  # after the save: a crash while pacing repeats nothing

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
        if self._store.failure and (position.sequence, position.complete) > (
            self._store.failure.sequence,
            False,
        ):
            log.info("%s: delivered after %d failed attempts", position.key, self._store.failure.attempts)
        self._store.save(position)
        self.position = position


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
