"""What the pipeline tells about its work, for metrics, health and progress lines.

The pipeline calls one ``Observer`` at the places where it counts (a batch acknowledged, a
file done, the checkpoint saved, ...). The base class does nothing, so a pipeline built
without observers pays one no-op call per batch. ``Fanout`` passes every call on to
several observers: ``progress.Backlog`` (how far behind), ``progress.Progress`` (backlog
log lines), ``health.Health`` (readiness) and ``metrics.Metrics`` (Prometheus).

Calls come from the pipeline's thread, except ``listed``, ``message_ignored`` and
``source_reached``, which come from the thread that lists the source (prefetch); observers
keep that in mind.
"""

from __future__ import annotations

from collections.abc import Sequence

from forwarder.core.checkpoint import Failure, Position
from forwarder.sources.base import Gap, LogObject


class Observer:
    """Told about the pipeline's work; every method here does nothing."""

    def listed(self, objects: Sequence[LogObject]) -> None:
        """A listing of the objects still to deliver, in order (from the listing thread)."""

    def fetched(self, obj: LogObject | None, error: Exception | None) -> None:
        """File *obj* was downloaded (no *error*), or its download failed, or (*obj* None) the listing."""

    def message_ignored(self, reason: str) -> None:
        """A queue message was deleted with nothing to deliver (*reason*: test_event,
        other_event, other_prefix, duplicate); it was logged (from the listing thread)."""

    def pass_done(self) -> None:
        """A poll went through: the bucket answered, everything found was handled."""

    def read(self, count: int) -> None:
        """*count* records of a file were read and are about to be sent."""

    def skipped(self, reason: str) -> None:
        """One record will never be forwarded (*reason*: bad_record, too_big); it was logged."""

    def collectors(self, labels: Sequence[str]) -> None:
        """The collectors the pipeline sends to (several with failover); a reload may change them."""

    def altered(self, reason: str) -> None:
        """One event is sent with its text changed (*reason*: invalid_utf8 replaced, or
        truncated or split by output.oversize); it went to the dead-letter file too."""

    def sent(self, collector: str, events: int, size: int, ack_secs: float) -> None:
        """*collector* acknowledged a batch of *events* messages (*size* bytes) after *ack_secs*."""

    def send_failed(self, collector: str, events: int, reason: str) -> None:
        """A batch of *events* messages was not acknowledged; it is sent again."""

    def collector(self, collector: str, up: bool, reason: str) -> None:
        """An idle check of the connection to *collector* found it *up* (or why not)."""

    def probe_due(self) -> bool:
        """True when the idle pipeline should check the collector now."""
        return False

    def saved(self, position: Position) -> None:
        """The checkpoint now stands at *position*."""

    def file_done(self, obj: LogObject, records: int) -> None:
        """Every record of *obj* was delivered (or reported bad)."""

    def gap(self, gap: Gap) -> None:
        """Objects are missing from the source (*gap* says which)."""

    def bad_file(self, failure: Failure) -> None:
        """A downloaded object could not be read (again): the pipeline is held on it."""

    def quarantined(self, obj: LogObject) -> None:
        """*obj* was given up on (on_bad_file: quarantine)."""

    def stopped(self, reason: str) -> None:
        """The pipeline stopped on an error it cannot get past (*reason*)."""

    def source_reached(self, at: float, stale_after_secs: float) -> None:
        """The source's API last answered successfully at *at* (epoch seconds). A source whose
        position expires unused (Cato's marker) tells this, from its thread, so /readyz turns
        unready when no answer came for *stale_after_secs*."""


class Fanout(Observer):
    """Passes every call on to each of *observers*, in order."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)

    def listed(self, objects: Sequence[LogObject]) -> None:
        for observer in self.observers:
            observer.listed(objects)

    def fetched(self, obj: LogObject | None, error: Exception | None) -> None:
        for observer in self.observers:
            observer.fetched(obj, error)

    def message_ignored(self, reason: str) -> None:
        for observer in self.observers:
            observer.message_ignored(reason)

    def pass_done(self) -> None:
        for observer in self.observers:
            observer.pass_done()

    def read(self, count: int) -> None:
        for observer in self.observers:
            observer.read(count)

    def skipped(self, reason: str) -> None:
        for observer in self.observers:
            observer.skipped(reason)

    def collectors(self, labels: Sequence[str]) -> None:
        for observer in self.observers:
            observer.collectors(labels)

    def altered(self, reason: str) -> None:
        for observer in self.observers:
            observer.altered(reason)

    def sent(self, collector: str, events: int, size: int, ack_secs: float) -> None:
        for observer in self.observers:
            observer.sent(collector, events, size, ack_secs)

    def send_failed(self, collector: str, events: int, reason: str) -> None:
        for observer in self.observers:
            observer.send_failed(collector, events, reason)

    def collector(self, collector: str, up: bool, reason: str) -> None:
        for observer in self.observers:
            observer.collector(collector, up, reason)

    def probe_due(self) -> bool:
        # every observer is asked, so each one's "last asked" clock moves
        return any([observer.probe_due() for observer in self.observers])

    def saved(self, position: Position) -> None:
        for observer in self.observers:
            observer.saved(position)

    def file_done(self, obj: LogObject, records: int) -> None:
        for observer in self.observers:
            observer.file_done(obj, records)

    def gap(self, gap: Gap) -> None:
        for observer in self.observers:
            observer.gap(gap)

    def bad_file(self, failure: Failure) -> None:
        for observer in self.observers:
            observer.bad_file(failure)

    def quarantined(self, obj: LogObject) -> None:
        for observer in self.observers:
            observer.quarantined(obj)

    def stopped(self, reason: str) -> None:
        for observer in self.observers:
            observer.stopped(reason)

    def source_reached(self, at: float, stale_after_secs: float) -> None:
        for observer in self.observers:
            observer.source_reached(at, stale_after_secs)
