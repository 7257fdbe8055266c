"""A job of the worker pool (``core.workers``): one object's batches, as a pipeline takes them.

The pipeline iterates a ``Job`` as it would ``read_batches``: batches in order, then the
end, or the error that ended the reading (``BadFileError``, ``WorkerDied``, an error in
the worker with its traceback). Taking a batch gives its worker credit for the next one
(``CREDIT``); ``close()`` stops the reading and drops what is left. The pool fills
``items`` from its pipes' thread; all state is guarded by the pool's lock. A job no
worker can be started for (``IN_THREAD``) is read by the thread that takes it, as with
``workers: 1``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from forwarder.core.reading import Batch, read_spec
from forwarder.core.workerprocess import WorkerProcess

QUEUED, RUNNING, ENDED = "queued", "running", "ended"
IN_THREAD = "in thread"  # an item: read the object in the taker's thread from here on


class Scheduler(Protocol):
    """What a job needs of its pool (``core.workers.WorkerPool``)."""

    lock: threading.Lock

    def start(self, job: Job) -> None: ...

    def end(self, job: Job, message: str | None) -> None: ...

    def taking(self, job: Job, size: int | None = None) -> None: ...


# Batches a job may make ahead of the one its pipeline takes. One is enough to keep the
# worker busy while the pipeline sends (it is the slower of the two); each more holds ~2.8
# MB per job of 5,000-event batches in the forwarder's process.
CREDIT = 1
# Before their pipelines take from them, jobs may make batches up to this many bytes, all
# jobs of the pool together, counted until taken or dropped (so it bounds what they hold
# in this process): the next file's worker works while the pipeline takes the file before
# (with CREDIT alone, a second worker idled after one batch: 1M events in 20 files went no
# faster with two). Pool-wide, so that memory does not grow with the cores or the
# pipelines; 64 MiB holds the next files of a busy account (16 MiB a job left the
# benchmark's 50,000-event files part-read: 1.52-1.66x the baseline, 1.34-1.50x now).
READ_AHEAD_BYTES = 64 << 20
READ_AHEAD = 2  # jobs per worker that may run before their pipeline asks for them


class Job:
    """One object's batches, made by a worker: iterate in order; ``close()`` to stop early."""

    def __init__(self, pool: Scheduler, number: int, spec: bytes, label: str) -> None:
        self._pool = pool
        self.number = number
        self.spec = spec  # path, label, settings, encoder, first: pickled for the worker
        self.label = label
        self.state = QUEUED
        self.process: WorkerProcess | None = None
        self.items: collections.deque[Any] = collections.deque()  # packed batches, then how it ended
        self.taken = 0  # batches handed to the pipeline
        self.outstanding = 0  # batches the worker may make and has not sent yet
        self.ahead = 0  # bytes of the batches made before the pipeline took any, not taken yet
        self.restarted = False
        self.changed = threading.Condition(pool.lock)
        self._here: Iterator[Batch] | None = None  # read in this thread (IN_THREAD)

    def __iter__(self) -> Job:
        return self

    def __next__(self) -> Batch:
        if self._here is not None:
            return next(self._here)
        pool = self._pool
        with pool.lock:
            while not self.items:
                if self.state == ENDED:
                    raise StopIteration
                if self.state == QUEUED:
                    pool.start(self)  # the pipeline waits for it: it runs now, read-ahead or not
                else:
                    self.changed.wait()
            item = self.items.popleft()
            if isinstance(item, tuple):  # Batch.packed()
                if self.ahead:
                    pool.taking(self, len(item[0]))  # a batch read ahead is taken
                self.taken += 1
                if (
                    self.state == RUNNING
                    and self.process is not None
                    and self.outstanding + len(self.items) < CREDIT
                ):
                    self.outstanding += 1
                    self.process.post(("credit", self.number, 1))
            else:
                self.items.clear()
                pool.taking(self)
        if item is None:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        if item == IN_THREAD:  # nothing of it was made elsewhere: from its first record on
            self._here = read_spec(self.spec)
            return next(self._here)
        return Batch.unpacked(*item)  # here, not under the lock, nor in the pipes' thread

    def close(self) -> None:
        """Stop reading the object (when it is not read to its end) and drop what is left."""
        with self._pool.lock:
            self._pool.taking(self)  # what it read ahead is dropped with it
            self._pool.end(self, None if self.state == ENDED else "cancel")
            self.items.clear()
        close = getattr(self._here, "close", None)
        if close is not None:
            close()
