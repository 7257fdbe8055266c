"""``events_integration`` with ``discovery: sqs``: objects from S3 notifications in a queue.

The customer points the bucket's ``s3:ObjectCreated:*`` notifications at a queue (directly
or through SNS; Cato sets none up). ``pending`` receives messages (long polling,
``source.sqs.wait_time_secs``; a pass ends when the queue stays empty that long) and turns
each into the objects it tells of (``forwarder.sources.notifications``):

- an object under ``source.bucket``/``source.prefix`` is delivered; one the ledger names as
  done (the same key and ETag: a repeated notification, or a message whose deletion was cut
  short by a crash) is not sent again; one the ledger names with another ETag was written
  again (``source.on_replaced``);
- test events, other events (ObjectRemoved...) and objects of other buckets or prefixes are
  deleted at once and counted (``forwarder_sqs_messages_ignored_total{reason}``);
- a message received more than ``source.sqs.max_receive_count`` times (its readers crashed
  or lost it), or that is no S3 notification, is quarantined with its reason.

A message stays invisible to other readers while its object waits or is being sent: a
thread renews its visibility every third of ``visibility_timeout_secs``. It is deleted only
once a checkpoint recording its object (its every object) as done is saved (``committed``).
When the pipeline stops, the messages not done become visible again at once (``close``).
A forwarder killed holds them until their visibility lapses; then another reader (or this
one, restarted) receives them: the one whose checkpoint is inside that object resumes by
record count, another sends it whole (at least once). Several forwarders may read one
queue, each with its own checkpoint: that is how the work spreads over machines. Objects
go out in the order their notifications are received: SQS promises no order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forwarder.config.sources import EventsIntegrationConfig
from forwarder.errors import BadFileError, FetchError, ForwarderError
from forwarder.sources.base import Cursor, LogObject
from forwarder.sources.integration import IntegrationSource, Stored
from forwarder.sources.ledger import DONE, REPLACED, Ledger
from forwarder.sources.notifications import UNREADABLE, read_message
from forwarder.sources.queue import Queue
from forwarder.sources.s3 import Bucket

log = logging.getLogger(__name__)

OTHER_PREFIX = "other_prefix"
DUPLICATE = "duplicate"


@dataclass
class Held:
    """A message received and not deleted: what it still waits for."""

    receipt: str
    left: set[str] = field(default_factory=set)  # keys of its objects not done yet


class QueueSource(IntegrationSource):
    """``discovery: sqs``; see the module docstring."""

    def __init__(self, bucket: Bucket, settings: EventsIntegrationConfig, queue: Queue) -> None:
        super().__init__(bucket, settings)
        self.queue = queue
        self._lock = threading.Lock()
        self._held: dict[str, Held] = {}  # by message ID
        self._waiting: list[LogObject] = []  # received, not done: handed out again by the next pass
        self._latest: Ledger | None = None  # the ledger of the last checkpoint saved
        self._closed = False
        # Told the objects waiting after each receive, and each message deleted unread (and why).
        self.on_listing: Callable[[Sequence[LogObject]], None] | None = None
        self.on_ignored: Callable[[str], None] | None = None

    def start(self) -> Cursor:
        return {"ledger": Ledger().to_json()}

    # --- receiving -----------------------------------------------------------------------

    def pending(self, cursor: Cursor) -> Iterator[LogObject]:
        """The objects received before and not done (the one the cursor is inside first),
        then those of new messages, until the queue stays empty for wait_time_secs."""
        ledger = Ledger.of(cursor)
        current = cursor.get("object")
        with self._lock:
            waiting = sorted(self._waiting, key=lambda o: self.identity(o) != current)
        yield from waiting
        while not self._closed and (messages := self.queue.receive()):
            # every message received is held (or deleted) before any object is handed out
            objects = [o for message in messages for o in self._admit(message, ledger)]
            if self.on_listing is not None:
                with self._lock:
                    self.on_listing(list(self._waiting))
            yield from objects

    def _admit(self, message: dict[str, Any], ledger: Ledger) -> list[LogObject]:
        """The objects of one message to hand out; the message is held for them, or deleted
        now when there are none. *ledger*: the pass's, unless a checkpoint was saved since."""
        mid, body = message["MessageId"], message.get("Body", "")
        created, why = read_message(body)
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        limit = self.settings.sqs.max_receive_count
        over = ""
        if count > limit:
            over = f"its SQS message was received {count} times (source.sqs.max_receive_count: {limit}): "
            over += "the readers before did not finish it (crashed, or its visibility timeout lapsed)"
        objects: list[LogObject] = []
        with self._lock:  # an object notified twice, the first still waiting: one delivery
            waiting = {(o.key, o.ref.etag) for o in self._waiting}
            ledger = self._latest or ledger  # with the waiting list: an object is in one or the other
        if why.startswith(UNREADABLE):
            reason = over or f"SQS message {mid} is not an S3 event notification ({why})"
            objects.append(
                LogObject(f"sqs-message/{mid}", quarantine=f"{reason}: {body[:300]!r}", ref=Stored("", mid))
            )
        elif why:
            self._ignored(why, f"message {mid}")
        for found in created:
            name = self.name(found.key)
            if found.bucket != self.bucket.name or not found.key.startswith(self.bucket.prefix):
                self._ignored(OTHER_PREFIX, f"s3://{found.bucket}/{found.key}")
                continue
            state = ledger.state(name, found.etag)
            if state == DONE or (found.key, found.etag) in waiting:
                self._ignored(DUPLICATE, self.bucket.url(found.key))
                continue
            reason = over
            if state == REPLACED and not reason and self.settings.on_replaced == "report":
                reason = f"written again after it was delivered (ETag {ledger.etag(name)} -> {found.etag}); "
                reason += "not sent again (source.on_replaced: report)"
            objects.append(
                LogObject(found.key, found.size, found.time, Stored(found.etag, mid), quarantine=reason)
            )
        if not objects:
            self.queue.delete(mid, message["ReceiptHandle"])
            return []
        with self._lock:
            closed = self._closed
            if not closed:
                self._held[mid] = Held(message["ReceiptHandle"], {o.key for o in objects})
                self._waiting += objects
        if closed:  # received while closing (a long poll outlives a stop): nobody would renew it
            self._hand_back({mid: message["ReceiptHandle"]}, "received while closing")
            return []
        self.queue.keep(self._receipts)
        return objects

    def _ignored(self, reason: str, what: str) -> None:
        log.info("SQS: %s: deleted without delivering anything (%s)", what, reason.replace("_", " "))
        if self.on_ignored is not None:
            self.on_ignored(reason)

    def _receipts(self) -> dict[str, str]:
        with self._lock:
            return {mid: held.receipt for mid, held in self._held.items()}

    def fetch(self, obj: LogObject) -> Path:
        try:
            return super().fetch(obj)
        except FetchError as exc:
            if exc.code == "NoSuchKey":  # gone for good: a bad file (on_bad_file decides), not a retry
                raise BadFileError(f"{exc}: deleted after its notification was sent") from exc
            raise

    # --- letting go ----------------------------------------------------------------------

    def committed(self, cursor: Cursor) -> None:
        """The checkpoint now records *cursor*: every message whose objects its ledger has as
        done is deleted (several, when the checkpoint was written after several objects)."""
        ledger = Ledger.from_json(cursor["ledger"])
        last: dict[str, Any] = cursor.get("done") or {}  # the object done last (quarantined ones too)
        named = (last.get("message", ""), last.get("key", ""))
        finished: list[tuple[str, str]] = []
        with self._lock:
            self._latest = ledger  # with the waiting list, so a notification sees one or the other
            done: list[LogObject] = []
            kept: list[LogObject] = []
            for o in self._waiting:
                state = ledger.state(self.name(o.key), o.ref.etag)
                is_done = (o.ref.message, o.key) == named or state == DONE
                (done if is_done else kept).append(o)
            if not done:
                return
            self._waiting = kept
            for obj in done:
                held = self._held.get(obj.ref.message)
                if held is not None:
                    held.left.discard(obj.key)
                    if not held.left:
                        finished.append((obj.ref.message, held.receipt))
                        del self._held[obj.ref.message]
        for mid, receipt in finished:
            self.queue.delete(mid, receipt)

    def close(self) -> None:
        """Stop renewing; make the messages not done visible to other readers at once."""
        with self._lock:  # with _admit's: a message is either held here, or handed back there
            self._closed = True
            receipts = {mid: held.receipt for mid, held in self._held.items()}
            self._held, self._waiting = {}, []
        self.queue.stop()
        if receipts:
            self._hand_back(receipts, "not done")

    def _hand_back(self, receipts: dict[str, str], which: str) -> None:
        """Make the messages visible to other readers at once."""
        try:
            self.queue.visibility(receipts, 0)
            log.info("SQS: %d messages %s handed back to the queue", len(receipts), which)
        except ForwarderError as exc:  # they come back when their visibility lapses
            log.warning("SQS: %d messages %s could not be handed back: %s", len(receipts), which, exc)

    # --- status and check ----------------------------------------------------------------

    def backlog(self, cursor: Cursor | None) -> tuple[int, str] | None:
        waiting, flying = self.queue.counts()
        return waiting, f"messages waiting in {self.queue.url}; {flying} in flight (received by any reader)"

    def check(self, cursor: Cursor | None) -> tuple[bool, str]:
        try:
            waiting, flying = self.queue.counts()
            next(iter(self.bucket.listing()), None)  # the first page only
        except ForwarderError as exc:
            return False, str(exc)
        return True, (
            f"{self.queue.url} is reachable: {waiting} messages waiting, {flying} in flight; "
            f"{self.id} can be listed"
        )
