"""The worker pool: objects read into batches in other processes while the pipelines send.

One pool per process (``workers:`` at the top of the config), shared by every pipeline:
the machine's cores, not the number of accounts, bound the processes. A pipeline opens a
``Job`` per object (``open``, the ``core.reading.Reader`` interface) as soon as the object
is downloaded, and takes its batches in order; a worker (``core.worker``) reads the
object meanwhile — decrypt, inflate, split, encode, fit — while the pipeline sends the
batches before it. What a pipeline gets is what ``read_batches`` would have given it in
its own thread: the same batches in the same order, with their ``done`` counts and notes,
``BadFileError`` at the same place. Only the pipeline writes the checkpoint.

Bounded everywhere, so memory does not grow with the data: a job makes a batch only
against credit (``CREDIT`` batch ahead of the one being sent, once its pipeline takes from
it; before that, up to ``READ_AHEAD_BYTES`` of batches, all such jobs together, so that a
worker reads the next file while the pipeline still takes the one before from another),
an object is streamed batch by batch (a 2 GB file is never whole anywhere), and at most
``READ_AHEAD`` jobs per process run before their pipeline asks for them (the one a
pipeline waits for always runs).
A pipeline that stops taking batches (its collector is down) leaves its job idle in its
worker, costing nothing but an open file: it cannot hold a worker from other pipelines.

A worker that dies (killed, out of memory, a crash) is an error that says so: the job its
pipeline was taking fails with ``WorkerDied`` (a ``BadFileError``: the object is read
again from the last batch handed over, so nothing is skipped; a failed attempt at it
counts only when the worker was reading it, as its last "turn" said), jobs not
taken from yet start again on another worker, and a new worker is started when needed.
``close()`` (at exit, after the pipelines stopped) ends the workers: their pipes close
and they exit; any still there after ``STOP_TIMEOUT_SECS`` are killed. Workers also exit
when this process dies, however it dies (the pipe's other end closes).

Threads here: one reads every worker's pipe (``_route``), one per worker writes to it
(``WorkerProcess.write``), so that neither side ever waits for the other while holding a lock.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import threading
from multiprocessing.connection import wait
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from forwarder.core.jobs import CREDIT, ENDED, IN_THREAD, QUEUED, READ_AHEAD, READ_AHEAD_BYTES, RUNNING, Job
from forwarder.core.reading import ReadSettings
from forwarder.core.workerprocess import STOP_TIMEOUT_SECS, WorkerProcess
from forwarder.errors import BadFileError, WorkerDied
from forwarder.formats.encoder import EventEncoder

log = logging.getLogger(__name__)


class WorkerPool:
    """Up to *size* worker processes reading objects for every pipeline (module docstring)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self._processes: list[WorkerProcess] = []
        self._queued: collections.deque[Job] = collections.deque()
        self._jobs: dict[int, Job] = {}
        self._numbers = 0
        self._ahead = 0  # bytes of batches made by jobs not taken from yet (READ_AHEAD_BYTES)
        self._started = 0  # worker processes started, in all (they are numbered so)
        self._closed = False
        self._wake_read, self._wake_write = os.pipe()
        self._router = threading.Thread(target=self._route, name="worker-pipes", daemon=True)
        self._router.start()
        atexit.register(self.close)
        with self.lock, contextlib.suppress(OSError):  # else jobs start it, or read in thread
            # One now, importing while this process starts its pipelines (~0.15 s of a core);
            # the others when there is work for them, so that idle pipelines keep one.
            self._spawn()

    # --- the pipelines' side ---------------------------------------------------------------

    def open(self, path: Path, label: str, settings: ReadSettings, encoder: EventEncoder, first: int) -> Job:
        """The batches of the object at *path* from record *first* on; reading starts now
        when there is room (see READ_AHEAD), else when the pipeline asks for its first batch."""
        # Pickled here, so that what cannot be (a test's lambda clock) fails here, not in a thread.
        spec = ForkingPickler.dumps((str(path), label, settings, encoder, first))
        with self.lock:
            self._numbers += 1
            job = Job(self, self._numbers, bytes(spec), label)
            self._jobs[job.number] = job
            self._queued.append(job)
            self._fill()
        return job

    def pids(self) -> list[int]:
        """The worker processes running now."""
        with self.lock:
            return [p.pid for p in self._processes if p.alive]

    # --- scheduling (called with the lock held) --------------------------------------------

    def start(self, job: Job) -> None:
        """Run *job* on the least busy worker, starting a new one (while there are fewer than
        size) rather than giving a busy one a second job."""
        with contextlib.suppress(ValueError):
            self._queued.remove(job)
        alive = [p for p in self._processes if p.alive]
        # The least busy; between equals, the one given fewer jobs so far (a tie went to the
        # first: it read two files in three and the other idled).
        process = min(alive, key=lambda p: (len(p.jobs), p.given), default=None)
        if self._closed:  # as close() ends the jobs it finds (not read in the pipeline's thread)
            job.items.append(WorkerDied(f"{job.label}: the worker pool closed (stopping)", False))
            self.end(job, None)
            return
        try:
            if process is None or (process.jobs and len(alive) < self.size):
                process = self._spawn()
        except OSError as exc:  # its pipeline reads it itself, as with workers: 1
            log.warning(
                "%s: cannot start a worker process (%s): read in its pipeline's thread", job.label, exc
            )
            job.items.append(IN_THREAD)
            self.end(job, None)
            return
        assert process is not None
        job.state, job.process = RUNNING, process
        job.outstanding = CREDIT
        process.jobs.add(job)
        process.given += 1
        process.post(("job", job.number, job.spec, CREDIT))

    def _fill(self) -> None:
        """Start queued jobs while fewer than READ_AHEAD per worker run."""
        while self._queued and sum(len(p.jobs) for p in self._processes) < READ_AHEAD * self.size:
            self.start(self._queued[0])

    def taking(self, job: Job, size: int | None = None) -> None:
        """*size* bytes of what *job* read ahead were taken (None: all of it, dropped)."""
        size = job.ahead if size is None else min(size, job.ahead)
        self._ahead -= size
        job.ahead -= size

    def end(self, job: Job, message: str | None) -> None:
        """*job* is over (a worker said so, or the pipeline closed it): free its place (what
        it made stays in ``items`` for the pipeline, counted until taken or dropped)."""
        if job.state == QUEUED:
            with contextlib.suppress(ValueError):
                self._queued.remove(job)
        elif job.process is not None and job in job.process.jobs:
            job.process.jobs.discard(job)
            if message is not None:
                job.process.post((message, job.number))
        job.state = ENDED
        self._jobs.pop(job.number, None)
        job.changed.notify_all()
        self._fill()

    def _spawn(self) -> WorkerProcess:
        self._started += 1
        process = WorkerProcess(self._started)
        self._processes.append(process)
        os.write(self._wake_write, b"x")  # the router: one more pipe to read
        log.debug("worker process %d started (pid %d)", process.number, process.pid)
        return process

    # --- the workers' side -----------------------------------------------------------------

    def _route(self) -> None:
        """Read every worker's pipe; hand batches and endings to their jobs."""
        while True:
            with self.lock:
                if self._closed and not any(p.alive for p in self._processes):
                    return
                readers = {p.inbox: p for p in self._processes if p.alive}
            for ready in wait([*readers, self._wake_read]):
                if ready == self._wake_read:
                    os.read(self._wake_read, 4096)
                    continue
                process = readers[ready]  # type: ignore[index]
                try:
                    message = process.inbox.recv()
                    if message[0] == "batch":  # then its messages, as they are (unpacked when taken)
                        message = ("batch", message[1], (process.inbox.recv_bytes(), message[2]))
                except Exception as exc:  # closed, or what cannot be read: it is ended either way
                    if not isinstance(exc, (EOFError, OSError)):
                        log.error("worker process %d: unreadable message: %r", process.number, exc)
                    self._died(process)
                    continue
                if message[0] == "turn":
                    with self.lock:
                        process.reading = message[1]
                    continue
                try:
                    self._deliver(message)
                except Exception:  # a bug here would leave every pipeline waiting: say so, go on
                    log.exception("worker pool: a message from worker process %d was lost", process.number)

    def _deliver(self, message: tuple[Any, ...]) -> None:
        kind, number = message[0], message[1]
        with self.lock:
            job = self._jobs.get(number)
            if job is None or job.state != RUNNING:
                return  # closed meanwhile: what is left of it is dropped
            if kind == "batch":
                job.items.append(message[2])
                job.outstanding -= 1
                if job.taken == 0 and job.process is not None:  # not taken from yet: read ahead
                    job.ahead += len(message[2][0])
                    self._ahead += len(message[2][0])
                    # Two in credit: the worker goes on while this credit crosses over.
                    if self._ahead < READ_AHEAD_BYTES and job.outstanding < 2:
                        more, job.outstanding = 2 - job.outstanding, 2
                        job.process.post(("credit", number, more))
                job.changed.notify_all()
                return
            if kind == "bad":
                job.items.append(BadFileError(message[2]))
            elif kind == "error":
                job.items.append(
                    RuntimeError(f"{job.label}: the worker process reading it failed:\n{message[2]}")
                )
            else:
                job.items.append(None)  # done
            self.end(job, None)  # the pipeline takes what is left of items

    def _died(self, process: WorkerProcess) -> None:
        """A worker's pipe closed: fail the job its pipeline takes, start the others again."""
        with self.lock:
            process.alive = False  # the router reads its pipe no more
        how = process.ended()
        process.inbox.close()
        process.post(None)
        with self.lock:
            if process in self._processes:  # a pool running for months keeps only the living
                self._processes.remove(process)
            if self._closed:
                return
            log.error("worker process %d (pid %d) died (%s)", process.number, process.pid, how)
            for job in sorted(process.jobs, key=lambda j: j.number, reverse=True):
                process.jobs.discard(job)
                job.changed.notify_all()
                if job.taken == 0 and not job.restarted:
                    job.restarted = True  # nothing of it handed over yet: run it again elsewhere
                    job.items.clear()
                    self.taking(job)
                    job.state, job.process = QUEUED, None
                    self._queued.appendleft(job)
                    continue
                job.items.append(
                    WorkerDied(
                        f"{job.label}: the worker process reading it (pid {process.pid}) died ({how}); "
                        "it is read again from the last batch delivered",
                        suspect=job.number == process.reading,  # it was reading this one
                    )
                )
                self.end(job, None)
            self._fill()

    def close(self) -> None:
        """End every worker: close their pipes, wait, kill what is left (idempotent)."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            processes = list(self._processes)
            for job in list(self._jobs.values()):
                if job.state != ENDED:
                    job.items.append(WorkerDied(f"{job.label}: the worker pool closed (stopping)", False))
                    job.changed.notify_all()
        for process in processes:
            process.post(None)
        for process in processes:
            process.reap(STOP_TIMEOUT_SECS)
        with self.lock:
            for process in processes:
                process.alive = False
        os.write(self._wake_write, b"x")
        self._router.join(STOP_TIMEOUT_SECS)
        for process in processes:
            process.inbox.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        atexit.unregister(self.close)
