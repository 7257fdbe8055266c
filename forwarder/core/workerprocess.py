"""One worker process (``core.worker``) as the pool sees it: started, written to, ended.

The worker runs ``python -m forwarder.core.worker`` with two pipes: the pool writes to one
(from a thread of its own here, so that no caller ever blocks on a worker busy writing
back) and reads the other. The pipes' ends in this process are not inherited by any other
child, so a worker sees its pipe close when this process exits or dies, however it does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import forwarder

STOP_TIMEOUT_SECS = 5.0
DIED_TIMEOUT_SECS = 1.0
# The worker -> main pipe: 1 MiB (Linux' default maximum) instead of 64 KiB, so a batch
# crosses in a few writes, not dozens of context switches.
PIPE_BYTES = 1 << 20


def processes_for(workers: int | str) -> int:
    """The number of worker processes ``workers`` asks for: ``auto`` is the cores this
    process may run on; 1 means none (read in the pipelines' own threads)."""
    if workers == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return int(workers)


class WorkerProcess:
    """One worker process, its pipes and the thread that writes to it."""

    def __init__(self, number: int) -> None:
        from_worker, to_main = os.pipe()
        from_main, to_worker = os.pipe()
        with contextlib.suppress(OSError):  # a smaller pipe only costs speed
            fcntl.fcntl(to_main, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        package = str(Path(forwarder.__file__).resolve().parents[1])
        path = os.pathsep.join(filter(None, (package, os.environ.get("PYTHONPATH"))))
        try:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "forwarder.core.worker", str(from_main), str(to_main)],
                pass_fds=(from_main, to_main),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C is the main process' to handle
                env={**os.environ, "PYTHONPATH": path},
            )
        finally:
            os.close(from_main)
            os.close(to_main)
        self.number = number
        self.pid = self.popen.pid
        self.outbox = Connection(to_worker, readable=False)
        self.inbox = Connection(from_worker, writable=False)
        self.jobs: set[Any] = set()  # the pool's jobs running here
        self.given = 0  # jobs it was given, in all
        self.reading: int | None = None  # the job it said it reads now (the pool's lock)
        self.alive = True
        self._messages: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self.write, name=f"worker-{number}-pipe", daemon=True)
        self._writer.start()

    def post(self, message: tuple[Any, ...] | None) -> None:
        """Queue *message* for the worker (None: close its pipe); never blocks."""
        self._messages.put(message)

    def write(self) -> None:
        """Write the queued messages to the worker, in order, until None or a broken pipe."""
        try:
            while (message := self._messages.get()) is not None:
                self.outbox.send(message)
        except (OSError, ValueError):
            pass  # the worker is gone: the pipe reader says so
        finally:
            self.outbox.close()

    def reap(self, timeout: float) -> int:
        """Wait for the process to exit, killing it after *timeout* seconds; its exit code."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def ended(self) -> str:
        """How the process ended, in words (it has closed its pipe: it is exiting; one that
        is not after a second is killed, so that the pool's pipe reader waits no longer)."""
        code = self.reap(DIED_TIMEOUT_SECS)
        if code < 0:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        return f"exit code {code}"
