"""Prefetch: download the next files in the background while the current one is sent.

A worker thread walks the source's pending objects in order and downloads them to
temporary files, staying at most ``max_files`` files and ``max_bytes`` bytes ahead of the
consumer (one file is always allowed, however big). The consumer gets them in order; a
failed download is handed over in its place, and the worker stops there (no file is ever
fetched past one that could not be downloaded, so order is kept) — with ``past_bad``, not
even past one that is itself bad (``BadFileError``): the next files come while the
consumer retries or quarantines it (past_bad is for ``on_bad_file: quarantine``: under
``stop`` the pass ends on it, and what came after would be downloaded for nothing). With
``max_files == 0`` everything happens in the consumer's thread, one file at a time.

Once ``stop`` is set, the consumer no longer waits for a download or a long poll (with
``max_files > 0``): the iteration ends, ``close`` does not wait for the worker, and what
the worker still downloads is removed as it arrives.

``opened``, when given, is called with each file as soon as it is downloaded (the
pipeline starts reading it there, in a worker process); what it returns rides along as
``Fetched.reading``, and is closed with the file when it is not handed out.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from forwarder.errors import BadFileError
from forwarder.sources.base import Cursor, LogObject

log = logging.getLogger(__name__)


class Fetching(Protocol):
    """What prefetching needs of a source."""

    def pending(self, cursor: Cursor) -> Iterator[LogObject]: ...

    def fetch(self, obj: LogObject) -> Path: ...


class Closing(Protocol):
    """What ``opened`` returns: something to close when the file is not used after all."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Fetched:
    """A downloaded file (path) or why it could not be downloaded (error)."""

    obj: LogObject | None  # None: the pending list itself could not be read
    path: Path | None
    error: Exception | None
    reading: Closing | None = None  # what opened(obj, path) returned

    def discard(self) -> None:
        """Close the reading and remove the file (once the item is used, or instead)."""
        if self.reading is not None:
            self.reading.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class Prefetcher:
    """Iterate over ``Fetched`` items in sequence order; ``close()`` cleans up what is left."""

    def __init__(
        self,
        source: Fetching,
        cursor: Cursor,
        max_files: int,
        max_bytes: int,
        opened: Callable[[LogObject, Path], Closing] | None = None,
        stop: threading.Event | None = None,
        past_bad: bool = False,
    ) -> None:
        self._source = source
        self._stop = stop or threading.Event()
        self._past_bad = past_bad
        self._opened = opened
        self._cursor = cursor
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._items: queue.Queue[Fetched | None] = queue.Queue()
        self._room = threading.Condition()
        self._ahead_files = 0
        self._ahead_bytes = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def __iter__(self) -> Iterator[Fetched]:
        if self._max_files == 0:
            yield from self._walk(wait=False)
            return
        # The worker logs as the pipeline's thread does (the log's pipeline name is in the context).
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._work,), name="prefetch", daemon=True)
        self._thread.start()
        while (item := self._next()) is not None:
            if item.obj is not None:
                with self._room:
                    self._ahead_files -= 1
                    self._ahead_bytes -= item.obj.size
                    self._room.notify()
            yield item

    def _next(self) -> Fetched | None:
        """The next item; None at the end, or once stopping (rather than wait on)."""
        while not self._stop.is_set():
            try:
                return self._items.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _work(self) -> None:
        try:
            for item in self._walk(wait=True):
                self._hand(item)
        finally:
            self._items.put(None)

    def _hand(self, item: Fetched) -> None:
        """Queue *item*, or remove it when closed meanwhile (nobody takes it any more)."""
        with self._room:
            if not self._closed:
                self._items.put(item)
                return
        item.discard()

    def _walk(self, wait: bool) -> Iterator[Fetched]:
        """Download the pending files in order; with *wait*, only while there is room ahead."""
        try:
            for obj in self._source.pending(self._cursor):
                if wait and not self._take_room(obj):
                    return
                if obj.quarantine:  # given up on unread: nothing to download
                    yield Fetched(obj, None, None)
                    continue
                try:
                    path = self._source.fetch(obj)
                except Exception as exc:  # handed to the consumer in the file's place
                    yield Fetched(obj, None, exc)
                    if self._past_bad and isinstance(exc, BadFileError):
                        continue  # the file is bad, not the way to it: the next ones come
                    return
                log.debug("downloaded %s", obj.key, extra={"key": obj.key})
                yield Fetched(obj, path, None, self._open(obj, path))
        except Exception as exc:  # the pending files could not be found (listing failed)
            yield Fetched(None, None, exc)

    def _open(self, obj: LogObject, path: Path) -> Closing | None:
        """``opened(obj, path)``; None when it fails (the consumer opens the file itself
        then, and meets the error in its own thread)."""
        if self._opened is None:
            return None
        try:
            return self._opened(obj, path)
        except Exception:
            log.debug("could not start reading %s ahead", obj.key, exc_info=True)
            return None

    def _take_room(self, obj: LogObject) -> bool:
        """Wait until *obj* may be downloaded; False when closed meanwhile."""
        with self._room:
            while (
                not self._closed
                and self._ahead_files > 0
                and (self._ahead_files >= self._max_files or self._ahead_bytes + obj.size > self._max_bytes)
            ):
                self._room.wait()
            if self._closed:
                return False
            self._ahead_files += 1
            self._ahead_bytes += obj.size
            return True

    def close(self) -> None:
        """Stop the worker and remove every downloaded file not handed out."""
        with self._room:
            self._closed = True
            self._room.notify_all()
            while not self._items.empty():  # from now on the worker removes what it brings
                item = self._items.get_nowait()
                if item is not None:
                    item.discard()
        if self._thread is not None and not self._stop.is_set():
            self._thread.join()  # it stops at its next step: before waiting or downloading more
