"""The pipeline: source → batches → transport, and the checkpoint, which only it writes.

It owns the delivery guarantee (at least once, in order):
- objects go out in the source's order, the records of an object in order;
- the checkpoint moves only after the transport acknowledged a batch, and then holds the
  source's cursor and how many records of that object are done, so a restart resumes
  inside an object;
- a batch the collector did not take is sent again with backoff (``core.delivery``);
- an object that cannot be downloaded stops the pass *on that object* (it is tried again
  on the next poll): later objects never overtake it, so nothing is skipped silently;
- an object that downloads but cannot be read goes through ``source.on_bad_file``
  (``core.badfiles``): tried again, then held or quarantined;
- missing objects (a gap the source reports) are logged loudly, noted in the checkpoint,
  and delivery goes on;
- records not sent as they were (bad, repaired, cut to size) are reported
  (``core.reports``), and the dead-letter file is made durable before the checkpoint
  moves past them;
- objects become batches through a ``core.reading.Reader``: in this thread, or in worker
  processes (``core.workers``) that start on each file once it is downloaded.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from forwarder.core.badfiles import BadFilePolicy, QuarantineList, next_step
from forwarder.core.checkpoint import CheckpointStore, Position
from forwarder.core.deadletter import DeadLetter
from forwarder.core.delivery import Delivery, Stopped
from forwarder.core.observer import Observer
from forwarder.core.reading import Batch, Batches, InProcess, Reader, ReadSettings
from forwarder.core.reports import Reports, RunStats
from forwarder.errors import BadFileError, ConfigError, FetchError
from forwarder.formats.encoder import EventEncoder
from forwarder.sources.base import Cursor, LogObject, Source
from forwarder.sources.prefetch import Fetched, Prefetcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineSettings:
    """How the pipeline runs (``source`` and ``parser``/``output``/``batch`` via ``reading``)."""

    poll_interval_secs: float = 30.0
    prefetch_files: int = 2
    prefetch_bytes: int = 256 << 20
    bad_files: BadFilePolicy = BadFilePolicy()
    reading: ReadSettings = field(default_factory=ReadSettings)


class Pipeline:
    """Moves every record of every new object to the transport; see the module docstring."""

    def __init__(
        self,
        name: str,
        source: Source,
        store: CheckpointStore,
        encoder: EventEncoder,
        delivery: Delivery,
        dead_letter: DeadLetter,
        quarantine: QuarantineList,
        settings: PipelineSettings,
        observer: Observer | None = None,
        stop: threading.Event | None = None,
        reader: Reader | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.store = store
        self._encoder = encoder
        self.delivery = delivery
        self.dead_letter = dead_letter
        self._quarantine = quarantine
        self._settings = settings
        self.observer = observer or Observer()
        self.stop = stop or threading.Event()
        self.stats = RunStats()
        self.reports = Reports(dead_letter, self.observer, self.stats, settings.reading)
        self.position: Position | None = None
        self._reader = reader or InProcess()

    # --- life -------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the checkpoint and read it (CheckpointError when taken or corrupt)."""
        self.store.lock()
        try:
            self.position = self.store.load()
        except BaseException:
            self.store.unlock()
            raise
        if self.store.failure is not None:
            self.observer.bad_file(self.store.failure)

    def close(self) -> None:
        """Close the transport (after what it sent was taken) and release the checkpoint."""
        try:
            self.delivery.close()
        finally:
            self.store.unlock()

    def seed(self, cursor: Cursor, force: bool = False) -> None:
        """Start from *cursor* (``forwarder import-state``); refuses to replace a checkpoint
        unless *force*."""
        if self.position is not None and not force:
            raise ConfigError(
                f"{self.store.path}: a checkpoint exists already (at "
                f"{self.source.describe(self.position.cursor, self.position.records)}); "
                "add --force to replace it"
            )
        self._save(Position(cursor, 0))

    # --- the passes -------------------------------------------------------------------

    def run_pass(self) -> int:
        """Forward every object now pending after the checkpoint; return events sent.

        Raises FetchError (an object could not be listed or downloaded, or a bad object
        under on_bad_file: stop) and, with ``once``, SendError (the collector refused a
        batch ONCE_SEND_ATTEMPTS times).
        """
        before = self.stats.events_sent
        if self.position is None:
            cursor = self.source.start()
            if cursor is None:
                return 0
            self._save(Position(cursor, 0))
        assert self.position is not None
        settings = self._settings
        prefetch = Prefetcher(
            self.source, self.position.cursor, settings.prefetch_files, settings.prefetch_bytes, self._open
        )
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
                    item.discard()
        finally:
            prefetch.close()
        return self.stats.events_sent - before

    def run_forever(self, reload: threading.Event | None = None) -> None:
        """Poll every source.poll_interval_secs until stop (or *reload*) is set.

        An object that cannot be fetched is logged and tried again on the next poll; the
        pipeline stays on it (later objects wait). A failed send is retried inside the pass.
        """
        poll = self._settings.poll_interval_secs
        while not self._interrupted(reload):
            try:
                self.run_pass()
            except FetchError as exc:
                log.error("%s; trying again in %gs", exc, poll)
                self.store.record_error(str(exc))
                self._save(self.position)
            except Stopped:
                break
            else:
                self.observer.pass_done()
            deadline = time.monotonic() + poll
            while not self._interrupted(reload) and (left := deadline - time.monotonic()) > 0:
                if self.observer.probe_due():  # while idle, for /readyz
                    up, reason = self.delivery.probe()
                    self.observer.collector(self.delivery.transport.label, up, reason)
                self.stop.wait(min(0.5, left))

    def _interrupted(self, reload: threading.Event | None) -> bool:
        return self.stop.is_set() or (reload is not None and reload.is_set())

    # --- one object -------------------------------------------------------------------

    def _forward_fetched(self, item: Fetched) -> None:
        """Forward one prefetched object, trying a bad one again as the settings say."""
        obj = item.obj
        assert obj is not None
        if obj.gap is not None:
            self._note_gap(obj)
        path, error, reading = item.path, item.error, cast("Batches | None", item.reading)
        while True:
            try:
                if error is not None:
                    raise error
                assert path is not None
                reading = reading or self._open(obj, path)
                self._forward_object(obj, reading)
                return
            except BadFileError as exc:
                failure = self.store.record_failure(obj.key, str(exc))
                self._save(self.position)
                self.observer.bad_file(failure)
                if not next_step(self._settings.bad_files, failure, exc, self.stop):
                    self._quarantine_object(obj, str(exc))
                    return
            finally:
                if reading is not None:
                    reading.close()
                if path is not None and path != item.path:
                    path.unlink(missing_ok=True)
            path, error, reading = None, None, None
            try:
                path = self.source.fetch(obj)
            except FetchError as exc:
                error = exc

    def _note_gap(self, obj: LogObject) -> None:
        gap = obj.gap
        assert gap is not None
        log.warning(
            "GAP: %s missing from %s (%s); their events cannot be forwarded; continuing with %s",
            gap.text,
            self.source.id,
            gap.detail or f"{gap.missing} missing",
            obj.key,
            extra={"gap_first": gap.first, "gap_last": gap.last},
        )
        self.stats.gaps += 1
        self.observer.gap(gap)
        self.store.record_gap(gap)

    def _quarantine_object(self, obj: LogObject, reason: str) -> None:
        identity = self.source.inside(obj)
        self._quarantine.add({**identity, "source": self.source.id, "reason": reason})
        self.store.record_quarantine(identity, reason)
        self.stats.quarantined += 1
        self.observer.quarantined(obj)
        self._object_done(obj)

    def _first_record(self, obj: LogObject) -> int:
        """Records of *obj* delivered already (the checkpoint is inside it), else 0."""
        position = self.position
        if position is not None and position.cursor == self.source.inside(obj):
            return position.records
        return 0

    def _open(self, obj: LogObject, path: Path) -> Batches:
        """Start reading *obj* (downloaded to *path*) from its first record not delivered."""
        label = self.source.label(obj)
        return self._reader.open(path, label, self._settings.reading, self._encoder, self._first_record(obj))

    def _forward_object(self, obj: LogObject, batches: Batches) -> None:
        label = self.source.label(obj)
        first = self._first_record(obj)
        if first:
            log.info("%s: resuming after record %d", label, first)
        inside = self.source.inside(obj)
        for batch in batches:
            self._deliver(label, obj.key, batch)
            if batch.last:
                self.reports.done(label)
                self._object_done(obj, batch.done)
            else:
                self._save(Position(inside, batch.done))
            self.delivery.pace(len(batch.messages))  # after the save: a crash while pacing repeats nothing
            if self.stop.is_set() and not batch.last:
                return
        done = self.position.records if self.position else 0
        self.stats.files += 1
        self.stats.last_key = obj.key
        self.observer.file_done(obj, done)
        log.info("%s: delivered (%d records)", label, done, extra={"key": obj.key, "records": done})

    def _deliver(self, label: str, key: str, batch: Batch) -> None:
        """Report the batch's notes, then send its messages until acknowledged."""
        self.reports.notes(label, key, batch.notes)
        self.observer.read(batch.records)
        if batch.messages:
            self.delivery.send(batch.messages)
            self.stats.events_sent += batch.events

    def _object_done(self, obj: LogObject, records: int = 0) -> None:
        """Every record of *obj* is accounted for (delivered, or quarantined): the checkpoint
        moves past it."""
        failure = self.store.failure
        if failure is not None and failure.key == obj.key:
            if records:
                log.info("%s: delivered after %d failed attempts", obj.key, failure.attempts)
            self.store.clear_failure()
        assert self.position is not None
        self._save(Position(self.source.after(obj, self.position.cursor), records))

    def _save(self, position: Position | None) -> None:
        self.dead_letter.commit()  # before the checkpoint moves past the records it names
        self.store.save(position)
        self.position = position
        if position is not None:
            self.observer.saved(position)
