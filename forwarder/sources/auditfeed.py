"""``source.kind: audit_feed``: the accounts' admin audit trail from Cato's ``auditFeed``, by time.

``auditFeed`` answers the records of a time frame (``utc.{from--to}``, to the second) in
time order, up to 1,000 a call, with ``hasMore`` and a marker for the next call inside
the same frame. Each poll reads one frame, from the second of the last record delivered
to now; its pages are the log objects. The cursor (its own: frame and marker) is::

    {"seen_ms": 1780000000123, "seen": ["3f2a...", ...]}                       between frames
    {"from": 1780000000, "to": 1780000060, "marker": "1780000000123_",
     "seen_ms": 1780000000123, "seen": [...]}                                   inside a frame
    {..., "page": true}                                                         inside a page

``seen_ms`` is the time (epoch ms) of the last record delivered and ``seen`` the digests
of the records delivered at that millisecond. A record earlier than ``seen_ms``, or at it
and seen, is not sent again: Cato's marker boundary is inclusive (the next call answers the
last record again, even after ``hasMore: false``), and a new frame starts at the second,
not the millisecond. So nothing is sent twice because of paging or polling. The limit: a
record Cato writes later with a time earlier than one already delivered is not read.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from forwarder.config import AuditFeedConfig
from forwarder.config.catoapi import start_ms
from forwarder.errors import FetchError
from forwarder.formats.feedfields import audit_event
from forwarder.sources.apipages import Page, PagedSource
from forwarder.sources.base import Cursor, LogObject
from forwarder.sources.catoapi import CatoApi, Interrupted
from forwarder.sources.feedhealth import FeedHealth, utc_text

log = logging.getLogger(__name__)

QUERY = """query auditFeed($accountIDs: [ID!], $timeFrame: TimeFrame!, $marker: String) {
  auditFeed(accountIDs: $accountIDs, timeFrame: $timeFrame, marker: $marker) {
    from to marker fetchedCount hasMore accounts { id records { time fieldsMap } }
  }
}"""


def frame_text(first: int, last: int) -> str:
    """A TimeFrame of whole seconds: ``utc.{2026-11-28/07:25:12--2026-11-28/07:26:12}``."""

    def at(epoch: int) -> str:
        return time.strftime("%Y-%m-%d/%H:%M:%S", time.gmtime(epoch))

    return f"utc.{{{at(first)}--{at(last)}}}"


def record_ms(record: dict[str, Any]) -> int:
    """An audit record's time in epoch ms: its ``insertion_date``, else its ``time``."""
    fields = record.get("fieldsMap") or {}
    value = str(fields.get("insertion_date") or "")
    if value.isdigit():
        return int(value)
    moment = start_ms(str(record.get("time") or ""))
    return moment if moment is not None else 0


def digest(record: dict[str, Any]) -> str:
    """What names a record among those of its millisecond (Cato's records carry no ID)."""
    return hashlib.sha256(
        orjson.dumps(record.get("fieldsMap") or {}, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()[:20]


class AuditFeedSource(PagedSource):
    """Pages of ``auditFeed``, one time frame a poll; see the module docstring."""

    operation = "auditFeed"

    def __init__(
        self,
        settings: AuditFeedConfig,
        api: CatoApi,
        health: FeedHealth,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, api, health, clock)
        self._start = str(settings.start)

    def start(self) -> Cursor | None:
        """The time to start from: now (``start: latest``) or the time given."""
        given = self._start
        first = int(self._clock() * 1000) if given == "latest" else start_ms(given)
        log.info("no checkpoint yet: starting with the audit records from %s (source.start)", given)
        return {"seen_ms": first, "seen": []}

    def describe(self, cursor: Cursor, records: int = 0) -> str:
        seen = f"records up to {utc_text(int(cursor.get('seen_ms', 0)) / 1000)} delivered"
        if "to" in cursor:
            frame = f"{utc_text(cursor['from'])} .. {utc_text(cursor['to'])}"
            return f"inside the time frame {frame}, marker {cursor.get('marker') or 'none'}: {seen}"
        return seen + (f" (and {records} of the next page)" if records else "")

    def _pages(self, cursor: Cursor) -> Iterator[LogObject]:
        """The pages of one time frame: the one the cursor is inside, else from its time to now."""
        state = {k: v for k, v in cursor.items() if k != "page"}
        if "to" not in state:
            state = {k: v for k, v in state.items() if k in ("seen_ms", "seen")}
        while True:
            first = int(state["from"]) if "to" in state else int(state["seen_ms"]) // 1000
            last = int(state["to"]) if "to" in state else max(first, int(self._clock()))
            variables = {"accountIDs": self._accounts, "timeFrame": frame_text(first, last)}
            variables["marker"] = str(state.get("marker", ""))
            try:
                answer = self._query(QUERY, variables)
            except Interrupted:
                return
            page, more = self._page(state, first, last, answer)
            if page.records or ("to" in state and not more):
                yield self._object(f"audit records {frame_text(first, last)}", page)
            if not more:
                return
            if not page.records and page.after.get("marker") == state.get("marker"):
                raise FetchError(
                    f"{self._api.url}: auditFeed: a whole page of records at {utc_text(first)} already "
                    "delivered, and the marker does not move (over 1,000 records in one millisecond?)"
                )
            state = dict(page.after)

    def _page(self, state: Cursor, first: int, last: int, answer: dict[str, Any]) -> tuple[Page, bool]:
        """The new records of *answer* (fetched from *state*), and whether more are waiting."""
        records = [r for account in answer.get("accounts") or [] for r in account.get("records") or []]
        timed = sorted(((record_ms(r), r) for r in records), key=lambda pair: pair[0])  # stable
        seen_ms, seen = int(state["seen_ms"]), set(state.get("seen") or [])
        fresh: list[dict[str, Any]] = []
        for ms, record in timed:  # the accounts' order within a millisecond
            if ms < seen_ms:
                continue  # delivered already: before the inclusive marker
            name = digest(record)
            if ms == seen_ms and name in seen:
                continue  # delivered already: the inclusive marker, or the frame's first second
            if ms > seen_ms:
                seen_ms, seen = ms, set()
            seen.add(name)
            fresh.append(record)
        more = bool(answer.get("hasMore"))
        after: Cursor = {"seen_ms": seen_ms, "seen": sorted(seen)}
        if more:
            marker = str(answer.get("marker") or state.get("marker") or "")
            after = {"from": first, "to": last, "marker": marker, **after}
        lines = b"".join(orjson.dumps(audit_event(r.get("fieldsMap") or {})) + b"\n" for r in fresh)
        # inside a page the cursor says so: after() of one page never equals inside() of the next,
        # or the pipeline would take the records it counted for the one as done in the other
        return Page({**state, "page": True}, after, {"audit": len(fresh)} if fresh else {}, lines), more

    def check(self, cursor: Cursor | None) -> tuple[bool, str]:
        now = int(self._clock())
        variables = {"accountIDs": self._accounts, "timeFrame": frame_text(now - 60, now), "marker": ""}
        try:
            self._api.call(QUERY, variables)
        except FetchError as exc:
            return False, str(exc)
        finally:
            self._api.close()
        return True, f"{self._api.url}: the key reads the audit trail of accounts {', '.join(self._accounts)}"
