"""What the Cato API sources share: a page of an answer as a log object, written on fetch.

A ``Page`` carries the records of one call as NDJSON (kept in memory until the pipeline
fetches it, then written to a temporary file) and the source's cursor before and after
it. ``PagedSource`` is the part of the ``Source`` protocol that is the same for
``eventsFeed`` and ``auditFeed``: the cursor arithmetic is the page's, a page is named by
the source's id and its key, and nothing tells the backlog without reading it (and
reading spends the call budget). A page's ``after`` never equals the next page's
``inside`` (the pipeline keeps the records delivered of the object its cursor is inside),
except before the empty page that reports an expired marker: it has no records to skip.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forwarder.config import CatoApiAccess
from forwarder.errors import FetchError
from forwarder.sources.base import Cursor, Gap, LogObject, Unpack
from forwarder.sources.catoapi import CatoApi, Interrupted
from forwarder.sources.feedhealth import FeedHealth


@dataclass(frozen=True)
class Page:
    """One call's records, and the cursors before and after it."""

    inside: Cursor  # the cursor while it is delivered
    after: Cursor  # the cursor once it is
    counts: dict[str, int]  # records per account, in page order
    lines: bytes = b""  # the records as NDJSON
    gap: Gap | None = field(default=None, compare=False)

    @property
    def records(self) -> int:
        return sum(self.counts.values())


class PagedSource:
    """The shared half of an API source (``operation``: the GraphQL query it reads)."""

    operation = ""

    def __init__(
        self,
        settings: CatoApiAccess,
        api: CatoApi,
        health: FeedHealth,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._health = health
        self._clock = clock
        self._accounts = list(settings.accounts)
        self.unpack = Unpack()

    @property
    def id(self) -> str:
        return f"cato-api://{self._api.host}/{self.operation}"

    def inside(self, obj: LogObject, cursor: Cursor) -> Cursor:
        page: Page = obj.ref
        return page.inside

    def after(self, obj: LogObject, cursor: Cursor) -> Cursor:
        page: Page = obj.ref
        return page.after

    def identity(self, obj: LogObject) -> dict[str, Any]:
        """A page is named by the cursor it was fetched with."""
        page: Page = obj.ref
        return {"page": obj.key, **page.inside}

    def committed(self, cursor: Cursor) -> None:
        """Nothing to let go of: the marker in the checkpoint is all the API needs."""

    def close(self) -> None:
        self._api.close()

    def pending(self, cursor: Cursor) -> Iterator[LogObject]:
        """The pages from *cursor* on (``_pages``), fetched one by one as they are taken."""
        try:
            yield from self._pages(cursor)
        finally:
            self._api.close()  # the connection is kept alive through a pass, not between polls

    def _pages(self, cursor: Cursor) -> Iterator[LogObject]:
        raise NotImplementedError

    def fetch(self, obj: LogObject) -> Path:
        """The page's NDJSON in a new temporary file (the pipeline removes it)."""
        page: Page = obj.ref
        handle = tempfile.NamedTemporaryFile(prefix="cato-api-", suffix=".ndjson", delete=False)
        try:
            with handle:
                handle.write(page.lines)
        except OSError as exc:
            Path(handle.name).unlink(missing_ok=True)
            raise FetchError(f"{self.label(obj)}: cannot write the page to a temporary file: {exc}") from exc
        return Path(handle.name)

    def label(self, obj: LogObject) -> str:
        return f"{self.id} {obj.key}"

    def backlog(self, cursor: Cursor | None) -> tuple[int, str] | None:
        return None  # only reading tells, and reading spends the call budget

    def _query(
        self, query: str, variables: dict[str, Any], untold: tuple[type[Exception], ...] = (Interrupted,)
    ) -> dict[str, Any]:
        """One call, told to the feed's health. A stop's interruption is not the API's failure,
        nor is anything else in *untold* (eventsFeed recovers from a refused marker): those
        pass on untold."""
        try:
            answer = self._api.call(query, variables)
        except untold:
            raise
        except FetchError as exc:
            self._health.failed(str(exc))
            raise
        self._health.answered()
        return answer

    def _object(self, key: str, page: Page) -> LogObject:
        return LogObject(key, len(page.lines), self._clock(), page, page.gap)
