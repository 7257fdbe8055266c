"""The pipeline: source → batches → transport, and the checkpoint, which only it writes.

It owns the delivery guarantee (at least once, in order):
- objects go out in the source's order, the records of an object in order;
- batches go to the transport in a window (``core.delivery``), each with a receipt: the
  position it completes. Receipts come back in order as the collector acknowledges, and
  only then does the position move (``core.standing``): the source's cursor and how many
  records of that object are done, so a restart resumes inside an object;
- the checkpoint is written at most every ``checkpoint_interval_secs`` as acknowledgements
  come, and whenever delivery waits (pacing, backoff), at the end of a pass, at a stop,
  and before a gap or bad-file note (once everything in flight is acknowledged): a crash
  resends what was acknowledged since the last write plus what was in flight;
- an object that cannot be downloaded stops the pass *on that object* (tried again on the
  next poll): later objects never overtake it, so nothing is skipped silently; one that
  cannot be read goes through ``source.on_bad_file`` (``core.badfiles``);
- missing objects (a gap the source reports) are logged loudly, noted in the checkpoint,
  and delivery goes on; an object the source gives up on is quarantined unread;
- records not sent as they were are reported (``core.reports``); the dead-letter file is
  made durable before the checkpoint moves past them;
- a pipeline a fleet shares asks its fence (``core.fence``) before every save, as
  delivery does before every send: once its lease is lost it stops (LeaseLost);
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

from forwarder.core.badfiles import BadFilePolicy, QuarantineList, next_step, spare
from forwarder.core.checkpoint import Checkpoint, Position
from forwarder.core.deadletter import DeadLetter
from forwarder.core.delivery import Delivery, Stopped
from forwarder.core.fence import Fence
from forwarder.core.observer import Observer
from forwarder.core.reading import Batches, InProcess, Reader, ReadSettings
from forwarder.core.reports import Reports, RunStats
from forwarder.core.standing import Receipt, Standing
from forwarder.errors import BadFileError, FetchError, SendError, WorkerDied
from forwarder.formats.encoder import EventEncoder
from forwarder.sources.base import Cursor, LogObject, Source
from forwarder.sources.prefetch import Fetched, Prefetcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineSettings:
    """How the pipeline runs (``source`` and ``parser``/``output``/``batch`` via ``reading``)."""

    poll_interval_secs: float = 30.0
    checkpoint_interval_secs: float = 1.0
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
        store: Checkpoint,
        encoder: EventEncoder,
        delivery: Delivery[Receipt],
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
        self._reader = reader or InProcess()
        self.stats = RunStats()
        self.reports = Reports(dead_letter, self.observer, self.stats, settings.reading)
        self._at = Standing(
            store, source, dead_letter, self.reports, self.observer, settings.checkpoint_interval_secs
        )
        self._at.listen(delivery)

    @property
    def position(self) -> Position | None:
        """As far as the collector acknowledged."""
        return self._at.position

    @property
    def fence(self) -> Fence:
        """What every send and every save asks first (a fleet's lease): the delivery's."""
        return self.delivery.fence

    @fence.setter
    def fence(self, fence: Fence) -> None:
        self.delivery.fence = fence

    # --- life -------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the checkpoint and read it (CheckpointError when taken or corrupt)."""
        self._at.open()
        if self.store.failure is not None:
            self.observer.bad_file(self.store.failure)

    def close(self) -> None:
        """Close the transport (after what it sent was taken) and the source, and release
        the checkpoint."""
        try:
            self.delivery.close()
        finally:
            try:
                self.source.close()
            finally:
                self.store.unlock()

    def seed(self, cursor: Cursor, force: bool = False) -> None:
        """Start from *cursor* (``forwarder import-state``); refuses to replace a checkpoint
        unless *force*."""
        self._at.seed(cursor, force)

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
            self._at.save(Position(cursor, 0))
        assert self.position is not None
        self._at.ahead, at, s = self.position, self.position.cursor, self._settings
        past_bad = s.bad_files.on_bad_file == "quarantine"  # under stop, the pass ends on a bad one
        prefetch = Prefetcher(
            self.source, at, s.prefetch_files, s.prefetch_bytes, self._open, self.stop, past_bad
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
            self._at.settle()
        except FetchError:
            self._at.settle()  # what is in flight is delivered before the pass ends on the object
            raise
        except (Stopped, SendError):
            self._at.checkpoint()  # what was acknowledged before the stop or the last failure
            raise
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
                self._at.save(self.position)
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
            self._at.settle()  # the note follows everything before the gap
            self.reports.gap(self.source.id, obj, obj.gap)
            self.store.record_gap(obj.gap)
        if obj.quarantine:  # the source gives up on it: nothing to read
            log.error("%s: %s: quarantined (see forwarder status)", obj.key, obj.quarantine)
            self._at.settle()
            self._quarantine_object(obj, obj.quarantine)
            return
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
                self._at.settle()  # what was read of it is delivered; a retry resumes after it
                if not self._try_again(obj, exc):
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

    def _try_again(self, obj: LogObject, exc: BadFileError) -> bool:
        """Count a failed read of *obj*: True to read it again, False when it was quarantined;
        Stopped when a stop comes during the wait."""
        if isinstance(exc, WorkerDied) and not exc.suspect:  # another file may have killed it
            spare(self._settings.bad_files, exc, obj.key, self.stop)
            return True
        failure = self.store.record_failure(obj.key, str(exc))
        self._at.save(self.position)
        self.observer.bad_file(failure)
        if next_step(self._settings.bad_files, failure, exc, self.stop):
            return True
        self._quarantine_object(obj, str(exc))
        return False

    def _quarantine_object(self, obj: LogObject, reason: str) -> None:
        identity = self.source.identity(obj)
        self._quarantine.add({**identity, "source": self.source.id, "reason": reason})
        self.store.record_quarantine(identity, reason)
        self.stats.quarantined += 1
        self.observer.quarantined(obj)
        self.store.clear_failure()  # the failure noted was this object's
        ahead = self._at.ahead
        assert ahead is not None
        self._at.ahead = Position(self.source.after(obj, ahead.cursor), 0)
        self._at.save(self._at.ahead)

    def _open(self, obj: LogObject, path: Path) -> Batches:
        """Start reading *obj* (downloaded to *path*) from its first record not handed over
        (called by the prefetcher's thread as soon as the file is downloaded)."""
        label, first = self.source.label(obj), self._at.first_record(obj)
        return self._reader.open(path, label, self._settings.reading, self._encoder, first)

    def _forward_object(self, obj: LogObject, batches: Batches) -> None:
        label, ahead = self.source.label(obj), self._at.ahead
        assert ahead is not None
        inside = self.source.inside(obj, ahead.cursor)
        first = self._at.first_record(obj)
        if first:
            log.info("%s: resuming after record %d", label, first)
        for batch in batches:
            self.reports.notes(label, obj.key, batch.notes)
            self.observer.read(batch.records)
            if batch.last:
                self.reports.done(label)
                position = Position(self.source.after(obj, ahead.cursor), batch.done)
            else:
                position = Position(inside, batch.done)
            self._at.ahead = position
            self.delivery.send(batch.messages, Receipt(position, batch.events, obj if batch.last else None))
            self.delivery.pace(len(batch.messages))
            if batch.last or self.stop.is_set():
                return  # nothing after the last batch can change what was sent
