"""``events_integration`` with ``discovery: list``: poll the prefix, oldest object first.

Each poll lists the prefix (``forwarder.sources.partitions``: dated folders older than the
ledger's window are skipped, except on a full listing every ``source.full_listing_secs``)
and keeps the objects the ledger does not name as done and not written before its window.
They go out by LastModified, then key — S3's clock, never the key's order — with the
object the checkpoint is inside first, so a restart resumes inside it.

An object the ledger names with another ETag was written again after it was delivered
(a client rewrote it, or Cato wrote the key twice): with ``source.on_replaced: report``
(default) it is quarantined with that reason — one error line, ``forwarder status``, the
quarantine file, ``forwarder_files_quarantined_total`` — and not sent again; with
``resend`` it is sent again, with a warning. Either way the ledger then names its new ETag.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from forwarder.config.catoapi import start_time
from forwarder.config.sources import EventsIntegrationConfig
from forwarder.errors import ForwarderError
from forwarder.sources.base import Cursor, LogObject
from forwarder.sources.integration import IntegrationSource, Stored, when
from forwarder.sources.ledger import DONE, REPLACED, Ledger
from forwarder.sources.partitions import PARTITION_MARGIN_SECS, Partitioned, dated_end, span_of
from forwarder.sources.s3 import Bucket, epoch_of

log = logging.getLogger(__name__)


def etag_of(item: dict[str, Any]) -> str:
    """An S3 listing entry's ETag without its quotes."""
    return str(item.get("ETag", "")).strip('"')


class ListingSource(IntegrationSource):
    """``discovery: list``; see the module docstring."""

    def __init__(
        self, bucket: Bucket, settings: EventsIntegrationConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(bucket, settings)
        self.walker = Partitioned(bucket)
        self._clock = clock
        self._full_at = -math.inf  # when everything was listed last
        # Told every poll's pending objects (for the backlog figures).
        self.on_listing: Callable[[Sequence[LogObject]], None] | None = None

    def start(self) -> Cursor:
        """earliest: every object under the prefix; a time: those written since; latest: those
        written after the objects there now (which the ledger names as done)."""
        start = self.settings.start
        if start == "earliest":
            return {"ledger": Ledger().to_json()}
        if start != "latest":
            since = int(start_time(start) or 0)
            log.info("no checkpoint yet: starting with the objects written since %s", when(since))
            return {"ledger": Ledger(since, since).to_json()}
        there = {
            self.name(item["Key"]): (int(epoch_of(item.get("LastModified"))), etag_of(item))
            for item in self.walker.objects(None)
        }
        newest = max((modified for modified, _ in there.values()), default=0)
        since = max(0, newest - int(self.settings.lookback_secs)) if there else 0
        done = {name: f"{modified} {etag}" for name, (modified, etag) in there.items() if modified >= since}
        ledger = Ledger(since, newest, done)
        log.info(
            "no checkpoint yet: starting after the %d objects there, written by %s", len(there), when(newest)
        )
        return {"ledger": ledger.to_json()}

    def pending(self, cursor: Cursor) -> Iterator[LogObject]:
        """The objects not done yet, oldest first; the one the cursor is inside first of all."""
        objects = self._pending(Ledger.of(cursor), cursor.get("object"))
        if self.on_listing is not None:
            self.on_listing(objects)
        yield from objects

    def _pending(self, ledger: Ledger, current: dict[str, Any] | None) -> list[LogObject]:
        full = (
            self.settings.partitions == "none"
            or self._clock() - self._full_at >= self.settings.full_listing_secs
        )
        if full:
            self._full_at = self._clock()
        cutoff = None if full or not ledger.since else float(ledger.since)
        objects = []
        for item in self.walker.objects(cutoff):
            key, etag = item["Key"], etag_of(item)
            name, modified = self.name(key), epoch_of(item.get("LastModified"))
            if key.endswith("/") or (state := ledger.state(name, etag)) == DONE:
                continue  # a folder's placeholder, or done
            reason = ""
            if state == REPLACED:
                reason = self._replaced(key, ledger.etag(name), etag)
            elif ledger.before_window(modified):
                continue  # older than the window: delivered before the ledger forgot it
            elif full and ledger.since and self.settings.partitions == "auto":
                self._late(name, key, ledger)
            objects.append(
                LogObject(key, int(item.get("Size", 0)), modified, Stored(etag), quarantine=reason)
            )
        objects.sort(key=lambda o: (o.modified, o.key))
        at = next((i for i, o in enumerate(objects) if self.identity(o) == current), 0)
        if at:  # resume inside the object the checkpoint is in before anything else
            objects.insert(0, objects.pop(at))
        return objects

    def _replaced(self, key: str, before: str, now: str) -> str:
        if self.settings.on_replaced == "report":
            return (
                f"written again after it was delivered (ETag {before} -> {now}); not sent again "
                "(source.on_replaced: report)"
            )
        log.warning(
            "%s was written again after it was delivered (ETag %s -> %s): sending it again "
            "(source.on_replaced: resend)", self.bucket.url(key), before, now, extra={"key": key},
        )  # fmt: skip
        return ""

    def _late(self, name: str, key: str, ledger: Ledger) -> None:
        """A full listing found *key* in a dated folder that dated listings skip by now."""
        end = dated_end(name)
        if end is not None and end <= ledger.since - PARTITION_MARGIN_SECS:
            log.warning(
                "%s was written into a folder dated before %s: only the full listing every "
                "source.full_listing_secs finds such objects (source.partitions: none lists "
                "everything every poll)", self.bucket.url(key), when(end), extra={"key": key},
            )  # fmt: skip

    # --- status and check ----------------------------------------------------------------

    def backlog(self, cursor: Cursor | None) -> tuple[int, str] | None:
        ledger = Ledger.of(cursor) if cursor else Ledger.of(self.start())
        self._full_at = -math.inf  # status lists everything
        objects = self._pending(ledger, None)
        if not objects:
            return 0, ""
        age = max(0.0, time.time() - objects[0].modified)
        return len(objects), f"oldest written {when(objects[0].modified)}, {age:.0f}s ago: {objects[0].key}"

    def check(self, cursor: Cursor | None) -> tuple[bool, str]:
        try:
            contents, folders = self.walker.level(self.bucket.prefix)
        except ForwarderError as exc:
            return False, str(exc)
        if not contents and not folders:
            return True, f"{self.id} is reachable: nothing under the prefix yet (check source.prefix)"
        prefix = self.bucket.prefix
        dated = [f[len(prefix) :] for f in folders if span_of(f[len(prefix) : -1], None)]
        layout = f" ({len(dated)} named by date: {', '.join(dated[-3:])}...)" if dated else ""
        return (
            True,
            f"{self.id} is reachable: {len(contents)} objects and {len(folders)} folders{layout} at the top",
        )
