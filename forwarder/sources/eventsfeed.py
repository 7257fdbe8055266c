"""``source.kind: events_feed``: the accounts' events from Cato's ``eventsFeed``, a page at a time.

A log object is one page: what one call returned (up to 3,000 records, shared by the
accounts of the call), written as NDJSON in the push feed's typed form
(``formats.feedfields``) when the pipeline fetches it. Pages are fetched lazily: the
next call goes out only once the previous page is handed on, at once while pages come
back full, within the account's call budget (``sources.catoapi``). The cursor is the
marker::

    {"marker": "<the next call's marker>", "used_at": 1780000000}               between pages
    {"marker": "<the page's own marker>", "used_at": ..., "next": "<what it returned>",
     "counts": {"12345": 3000}}                                                  inside a page

- ``after(page)`` is the marker the page returned; the pipeline saves it only once the
  page is delivered, so a page fetched but not delivered is fetched again from the
  marker before it. Inside a page the cursor keeps how many records each account had:
  a page fetched again (it may have grown since) is cut to the same records, so the
  pipeline's count of records delivered skips exactly those.
- An empty marker is never a cursor. Cato answers ``marker: ""`` when nothing new is
  queued; sending it back would mean "from now" and skip what came meanwhile. ``start:
  latest`` makes the baseline call before the first save, and a page with records but no
  marker is an error, not a page.
- A marker Cato no longer knows (it forgets one unused for ~3 days) is a gap: reported
  on an empty page with a ``Gap`` (what time span is lost), then delivery goes on from
  now. A marker older than that which Cato still answers is reported the same way (its
  events may have been skipped silently).
- ``used_at`` is when the marker last worked. While nothing new is queued an empty page
  moves it forward every KEEPALIVE_SECS, so after a restart the marker's age is known.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from forwarder.config import EventsFeedConfig
from forwarder.config.catoapi import MARKER_KEPT_SECS
from forwarder.errors import FetchError
from forwarder.formats.feedfields import typed_event
from forwarder.sources.apipages import Page, PagedSource
from forwarder.sources.base import Cursor, Gap, LogObject
from forwarder.sources.catoapi import CatoApi, Interrupted, MarkerRefused
from forwarder.sources.feedhealth import FeedHealth, age_text, span_text, utc_text

log = logging.getLogger(__name__)

QUERY = """query eventsFeed($accountIDs: [ID!], $marker: String, $filters: [EventFeedFieldFilterInput!]) {
  eventsFeed(accountIDs: $accountIDs, marker: $marker, filters: $filters) {
    marker fetchedCount accounts { id errorString records { fieldsMap } }
  }
}"""
FULL_PAGE = 3000  # eventsFeed's most records a call: call again at once while a page is full
KEEPALIVE_SECS = 3600.0


class EventsFeedSource(PagedSource):
    """Pages of ``eventsFeed``; see the module docstring."""

    full_page = FULL_PAGE

    operation = "eventsFeed"

    def __init__(
        self,
        settings: EventsFeedConfig,
        api: CatoApi,
        health: FeedHealth,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, api, health, clock)
        self._settings = settings
        filters = [("event_type", settings.event_types), ("event_sub_type", settings.event_sub_types)]
        self._filters = [{"fieldName": n, "operator": "in", "values": list(v)} for n, v in filters if v]

    # --- the cursor ----------------------------------------------------------------------

    def start(self) -> Cursor | None:
        """The baseline marker (``start: latest``), or the marker given, with its time."""
        now = int(self._clock())
        if self._settings.start != "latest":
            return {"marker": self._settings.start, "used_at": now}
        answer = self._call("")
        log.info("no checkpoint yet: starting with the events queued from now on (source.start: latest)")
        return {"marker": self._marker_of(answer, ""), "used_at": now}

    def describe(self, cursor: Cursor, records: int = 0) -> str:
        marker = _short(str(cursor.get("marker", "")))
        used = f"last used {utc_text(cursor['used_at'])}" if cursor.get("used_at") else "not used yet"
        counts = cursor.get("counts")
        if isinstance(counts, dict):
            return (
                f"inside the page from marker {marker} ({used}): {records} of {sum(counts.values())} records"
            )
        return f"marker {marker} ({used}): every page before it delivered"

    # --- the pages -----------------------------------------------------------------------

    def _pages(self, cursor: Cursor) -> Iterator[LogObject]:
        """The pages from the cursor's marker on, fetched one by one as they are taken."""
        marker, used_at = str(cursor.get("marker", "")), int(cursor.get("used_at", 0))
        self._health.known(used_at)
        gap = self._stale_gap(used_at)
        resume = cursor if isinstance(cursor.get("counts"), dict) else None
        while True:
            try:
                if not marker:
                    raise MarkerRefused(f"{self.id}: the checkpoint holds no marker")
                answer = self._call(marker)
            except Interrupted:
                return
            except MarkerRefused as exc:
                page = self._expired(marker, used_at, str(exc))
                yield self._page_object(page)
                marker, used_at, resume, gap = (
                    str(page.after["marker"]),
                    int(page.after["used_at"]),
                    None,
                    None,
                )
                continue
            page = self._page(marker, used_at, answer, resume, gap)
            gap, resume = None, None
            if page.records or page.gap or page.after["marker"] != marker or self._idle_too_long(used_at):
                yield self._page_object(page)
            if int(answer.get("fetchedCount") or 0) < self.full_page:  # a cut page may have had more
                return
            marker, used_at = str(page.after["marker"]), int(page.after["used_at"])

    # --- status and check ----------------------------------------------------------------

    def check(self, cursor: Cursor | None) -> tuple[bool, str]:
        marker = str(cursor.get("marker", "")) if cursor else ""
        try:
            answer = self._call(marker)
        except MarkerRefused as exc:
            return False, f"{exc}: the next run reports the events since the marker's last use as a gap"
        except FetchError as exc:
            return False, str(exc)
        finally:
            self._api.close()
        waiting = int(answer.get("fetchedCount") or 0)
        more = f"; {waiting} events in the next page" if marker else ""
        return True, f"{self._api.url}: the key reads accounts {', '.join(self._accounts)}{more}"

    # --- inside ---------------------------------------------------------------------------

    def _call(self, marker: str) -> dict[str, Any]:
        variables: dict[str, Any] = {"accountIDs": self._accounts, "marker": marker}
        if self._filters:
            variables["filters"] = self._filters
        return self._query(QUERY, variables, untold=(Interrupted, MarkerRefused))

    def _marker_of(self, answer: dict[str, Any], before: str) -> str:
        marker = answer.get("marker")
        if not isinstance(marker, str) or not marker:
            raise FetchError(
                f"{self._api.url}: eventsFeed answered without a marker (after {_short(before)})"
            )
        return marker

    def _page(
        self, marker: str, used_at: int, answer: dict[str, Any], resume: Cursor | None, gap: Gap | None
    ) -> Page:
        """The page of *answer* (fetched with *marker*); cut to *resume*'s counts when it is the
        page a saved cursor is inside, fetched again."""
        now = int(self._clock())
        records: dict[str, list[Any]] = {}
        failed: list[str] = []
        for account in answer.get("accounts") or []:
            name = str(account.get("id", ""))
            if account.get("errorString"):
                failed.append(f"account {name}: {account['errorString']}")
            else:
                records[name] = account.get("records") or []
        if failed:
            self._account_errors(failed, sum(map(len, records.values())))
        if resume is not None:
            keep = {str(k): int(v) for k, v in resume["counts"].items() if v}
            if all(len(records.get(name, [])) >= count for name, count in keep.items()):
                cut = {name: records[name][: keep[name]] for name in keep}
                after = {"marker": str(resume["next"]), "used_at": now}
                return Page(dict(resume), after, keep, _ndjson(cut), gap)
            log.warning(
                "%s: the page from marker %s came back shorter: sent again whole", self.id, _short(marker)
            )
        counts = {name: len(items) for name, items in records.items() if items}
        returned = answer.get("marker") or ""
        if not returned:
            if counts:
                total = sum(counts.values())
                raise FetchError(f"{self._api.url}: eventsFeed returned {total} records without a marker")
            returned = marker  # nothing new is queued: the marker stays
        inside = {"marker": marker, "used_at": used_at, "next": returned, "counts": counts}
        return Page(inside, {"marker": returned, "used_at": now}, counts, _ndjson(records), gap)

    def _account_errors(self, failed: list[str], delivered: int) -> None:
        text = "; ".join(failed)
        hint = " (check source.account_ids and which accounts the key may read)"
        hint = hint if "permission" in text.lower() else ""
        if not delivered and len(failed) == len(self._accounts):
            self._health.failed(text)
            raise FetchError(f"{self._api.url}: eventsFeed: {text}{hint}")
        log.error(
            "%s: eventsFeed: %s%s; their events wait, the other accounts go on", self._api.url, text, hint
        )

    def _idle_too_long(self, used_at: int) -> bool:
        return self._clock() - used_at >= KEEPALIVE_SECS

    def _stale_gap(self, used_at: int) -> Gap | None:
        """A gap when the marker is older than Cato keeps one (it may have restarted from now)."""
        now = self._clock()
        if not used_at or now - used_at <= MARKER_KEPT_SECS:
            return None
        return Gap(
            utc_text(used_at), utc_text(now), 0, f"events queued {span_text(used_at, now)}",
            f"the marker was last used {age_text(now - used_at)} ago, longer than the ~3 days "
            "Cato keeps one: events queued meanwhile may have been skipped",
        )  # fmt: skip

    def _expired(self, marker: str, used_at: int, why: str) -> Page:
        """The empty page that reports the expired *marker*'s gap and moves on to now."""
        now = self._clock()
        since = used_at or now
        log.error("%s; the events queued since it was last used cannot be fetched any more", why)
        gap = Gap(
            utc_text(since), utc_text(now), 0, f"events queued {span_text(since, now)}",
            f"Cato no longer knows the marker ({why.rsplit(': ', 1)[-1]}), last used {age_text(now - since)} "
            "ago: delivery goes on with the events queued from now on",
        )  # fmt: skip
        baseline = self._call("")
        after = {"marker": self._marker_of(baseline, ""), "used_at": int(now)}
        return Page({"marker": marker, "used_at": used_at}, after, {}, b"", gap)

    def _page_object(self, page: Page) -> LogObject:
        marker = _short(str(page.inside.get("marker", "")))
        key = f"page from marker {marker}" if page.records else f"no new events (marker {marker})"
        return self._object(key, page)


def _ndjson(records: dict[str, list[Any]]) -> bytes:
    """The records of every account, in order, as push-feed JSON lines."""
    return b"".join(
        orjson.dumps(typed_event(r.get("fieldsMap") or {})) + b"\n"
        for items in records.values()
        for r in items
    )


def _short(marker: str) -> str:
    """A marker as messages show it: its last 10 characters (where Cato's differ)."""
    return ("..." + marker[-10:]) if len(marker) > 10 else (marker or '""')
