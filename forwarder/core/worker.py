"""A worker process: reads objects into batches (``core.reading``) for the pool in the main process.

Started by ``core.workers`` as ``python -m forwarder.core.worker READ_FD WRITE_FD``: it takes
messages on one pipe and answers on the other (``multiprocessing.connection`` framing,
pickled tuples), and does nothing but ``read_batches``: it holds no credentials, no
socket, no checkpoint, and logs nothing (what happened to records travels as notes).

    main -> worker   ("job", id, spec, credit)   spec: pickled (path, label, ReadSettings,
                                                 EventEncoder, first record)
                     ("credit", id, n)       n more batches of job id may be made
                     ("cancel", id)          stop it, close its file
    worker -> main   ("turn", id)            reading job id now (None: waiting), when it changed
                     ("batch", id, rest), then the messages   Batch.packed(), in two parts
                     ("done", id)            after the object's last batch
                     ("bad", id, message)    BadFileError: the object's content cannot be read
                     ("error", id, text)     anything else (a bug), with its traceback

A job makes a batch only while it has credit, so a pipeline that stops taking them (its
collector is down) costs this process nothing but the job's open file and decompressor
(~1 MB): the jobs of every pipeline take turns here, one batch each, and none can hold
the process. The worker ends when the main process closes its pipe (also when that
process dies: the read sees the end of the pipe, a write a broken one). SIGINT and SIGTERM
are ignored: the main process decides when workers stop, after its pipelines have saved.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from forwarder.core.reading import Batch, read_spec
from forwarder.errors import BadFileError
from forwarder.formats.cache import remember
from forwarder.formats.encoder import EventEncoder

# Encoders kept, by settings: one per pipeline that sent work here (a few KB each).
ENCODERS = 256


@dataclass
class _Job:
    batches: Iterator[Batch]
    credit: int


class Worker:
    """The loop of one worker process (see the module docstring)."""

    def __init__(self, inbox: Connection, outbox: Connection) -> None:
        self._inbox, self._outbox = inbox, outbox
        self._jobs: dict[int, _Job] = {}
        self._turns: deque[int] = deque()  # job ids, taking turns
        self._reading: int | None = None  # the job said to be read now ("turn")
        self._encoders: dict[Any, EventEncoder] = {}

    def serve(self) -> None:
        """Make batches until the main process closes the pipe."""
        while True:
            # Take every message waiting; wait for one when no job may make a batch.
            while self._inbox.poll(0) or not any(job.credit > 0 for job in self._jobs.values()):
                if self._reading is not None and not self._inbox.poll(0):  # waiting: reading none
                    self._outbox.send(("turn", None))
                    self._reading = None
                try:
                    message = self._inbox.recv()
                except EOFError:
                    return
                self._take(message)
            self._turn()

    def _take(self, message: tuple[Any, ...]) -> None:
        kind, number = message[0], message[1]
        if kind == "job":
            self._jobs[number] = _Job(read_spec(message[2], self._encoder), message[3])
            self._turns.append(number)
        elif kind == "credit" and number in self._jobs:
            self._jobs[number].credit += message[2]
        elif kind == "cancel" and number in self._jobs:
            self._end(number)

    def _encoder(self, encoder: EventEncoder) -> EventEncoder:
        """The encoder kept for *encoder*'s settings (its tables built once), else *encoder*."""
        return self._encoders.get(encoder.settings) or remember(
            self._encoders, encoder.settings, encoder, ENCODERS
        )

    def _turn(self) -> None:
        """One batch of the next job that has credit."""
        while self._jobs[self._turns[0]].credit <= 0:
            self._turns.rotate(-1)
        number = self._turns[0]
        job = self._jobs[number]
        self._turns.rotate(-1)
        if number != self._reading:  # should this process die now, the pool knows which job
            self._outbox.send(("turn", number))
            self._reading = number
        try:
            batch = next(job.batches)
        except StopIteration:
            self._end(number, ("done", number))
        except BadFileError as exc:
            self._end(number, ("bad", number, str(exc)))
        except Exception:
            self._end(number, ("error", number, traceback.format_exc()))
        else:
            job.credit -= 1
            joined, rest = batch.packed()
            self._outbox.send(("batch", number, rest))
            self._outbox.send_bytes(joined)  # as it is: pickling 2.5 MB took 1.2 ms
            if batch.last:  # nothing follows the object's last batch
                self._end(number, ("done", number))

    def _end(self, number: int, answer: tuple[Any, ...] | None = None) -> None:
        job = self._jobs.pop(number)
        self._turns.remove(number)
        close = getattr(job.batches, "close", None)
        if close is not None:
            close()
        if answer is not None:
            self._outbox.send(answer)


def main(argv: list[str]) -> int:
    """``python -m forwarder.core.worker READ_FD WRITE_FD``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inbox = Connection(int(argv[1]), writable=False)
    outbox = Connection(int(argv[2]), readable=False)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the main process is gone
        Worker(inbox, outbox).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
