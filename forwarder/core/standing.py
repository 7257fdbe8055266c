"""Where a pipeline stands, and the checkpoint file, which only this (the pipeline's) writes.

Three positions:
- ``ahead``: as far as batches were handed to delivery (where reading resumes);
- ``position``: as far as the collector acknowledged (receipts come back in order);
- ``saved``: as the checkpoint file has it.

``acknowledged`` moves the position and saves it at most every ``interval_secs``;
``settle`` waits until everything in flight is acknowledged, then saves. Every save first
asks the fence (a pipeline a fleet shares stops once its lease is lost), makes the
dead-letter file durable (before the checkpoint moves past the records it names), and
afterwards tells the source (``committed``: an SQS message is deleted only then).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from forwarder.core.checkpoint import Checkpoint, Position
from forwarder.core.deadletter import DeadLetter
from forwarder.core.delivery import Delivery
from forwarder.core.observer import Observer
from forwarder.core.reports import Reports
from forwarder.errors import ConfigError
from forwarder.sources.base import Cursor, LogObject, Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """What a batch completes once acknowledged: the position, its events, and the object
    it finishes (its last batch)."""

    position: Position
    events: int
    finished: LogObject | None = None


class Standing:
    """The pipeline's three positions and its checkpoint saves; see the module docstring."""

    def __init__(
        self,
        store: Checkpoint,
        source: Source,
        dead_letter: DeadLetter,
        reports: Reports,
        observer: Observer,
        interval_secs: float,
    ) -> None:
        self.store = store
        self._source = source
        self._dead_letter = dead_letter
        self._reports = reports
        self._observer = observer
        self._interval = interval_secs
        self.position: Position | None = None
        self.ahead: Position | None = None
        self._saved: Position | None = None
        self._saved_at = time.monotonic()

    def listen(self, delivery: Delivery[Receipt]) -> None:
        """Hear *delivery*'s acknowledgements, and save whenever it waits."""
        self._delivery = delivery
        delivery.on_acknowledged = self.acknowledged
        delivery.on_idle = self.checkpoint

    def open(self) -> None:
        """Lock the checkpoint and read it (CheckpointError when taken or corrupt)."""
        self.store.lock()
        try:
            self.position = self.ahead = self._saved = self.store.load()
        except BaseException:
            self.store.unlock()
            raise

    def seed(self, cursor: Cursor, force: bool) -> None:
        """Start from *cursor*; refuses to replace a checkpoint unless *force*."""
        if self.position is not None and not force:
            raise ConfigError(
                f"{self.store.where}: a checkpoint exists already (at "
                f"{self._source.describe(self.position.cursor, self.position.records)}); "
                "add --force to replace it"
            )
        self.save(Position(cursor, 0))

    def first_record(self, obj: LogObject) -> int:
        """Records of *obj* handed over already (reading stands inside it), else 0."""
        ahead = self.ahead
        if ahead is not None and ahead.cursor == self._source.inside(obj, ahead.cursor):
            return ahead.records
        return 0

    def acknowledged(self, receipt: Receipt) -> None:
        """A batch was acknowledged (in the order sent): the position moves."""
        self._reports.stats.events_sent += receipt.events
        self.position = receipt.position
        obj, failure = receipt.finished, self.store.failure
        if obj is not None:
            if failure is not None and failure.key == obj.key:
                log.info("%s: delivered after %d failed attempts", obj.key, failure.attempts)
                self.store.clear_failure()
            self._reports.delivered(self._source.label(obj), obj, receipt.position.records)
        if time.monotonic() - self._saved_at >= self._interval:
            self.checkpoint()

    def settle(self) -> None:
        """Wait until everything in flight is acknowledged, then save."""
        self._delivery.flush()
        self.checkpoint()

    def checkpoint(self) -> None:
        """Save the acknowledged position if it moved since the last save."""
        if self.position is not None and self.position != self._saved:
            self.save(self.position)

    def save(self, position: Position | None) -> None:
        """Write *position* to the checkpoint (also what ``store`` noted beside it)."""
        self._delivery.fence.check()  # a forwarder that lost the pipeline writes nothing more for it
        self._dead_letter.commit()  # before the checkpoint moves past the records it names
        self.store.save(position)
        self.position = self._saved = position
        self._saved_at = time.monotonic()
        if position is not None:
            self._source.committed(position.cursor)  # durable now: the source may let go (SQS)
            self._observer.saved(position)
