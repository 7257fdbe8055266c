"""Delivery: batches go to the transport in a window, until each is acknowledged, at the
configured pace; acknowledgements go back to the pipeline in order.

Batches are written one after the other without waiting for each acknowledgement, as long
as the bytes in flight stay within ``max_unacked_bytes`` (one batch goes whatever its
size). Each batch carries a receipt (the pipeline's: the position it completes); when the
transport acknowledges a batch, its receipt goes to ``on_acknowledged``, oldest first, so
the pipeline sees acknowledgements in the order it sent. A batch without messages (every
record of it was bad) still waits its turn: its receipt follows those before it.

When the transport fails (SendError), every batch in flight not acknowledged is written
again, from the first one on, in order, after a backoff that doubles from
``retry_initial_secs`` to ``retry_max_secs``, with jitter so that many forwarders do not
retry in step — forever, or ``ONCE_SEND_ATTEMPTS`` failures in a row for ``run --once``.
The checkpoint waits meanwhile (the pipeline saves only what came back acknowledged).

Pacing (``output.max_events_per_sec``) spreads batches out; a transport that paces itself
(UDP, per datagram) is left to do so. Time left idle is not made up for with a burst.
Before any wait (a pause to keep the pace, a backoff) ``on_idle`` lets the pipeline save
what was acknowledged: a crash while waiting then repeats nothing.

Before every write the fence is asked (``core.fence``): a forwarder that lost a fleet's
pipeline sends nothing more for it (LeaseLost).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from forwarder.core.fence import UNFENCED, Fence
from forwarder.core.observer import Observer
from forwarder.errors import SendError
from forwarder.transports.base import Transport

log = logging.getLogger("forwarder.core.pipeline")

# With --once, the collector may fail this many times in a row before delivery gives up.
ONCE_SEND_ATTEMPTS = 5
# The longest single wait for acknowledgements (the transport returns as soon as one comes).
ACK_WAIT_SECS = 0.05

R = TypeVar("R")


class Stopped(Exception):
    """Raised inside the pipeline when a stop was requested during a wait."""


@dataclass(frozen=True)
class DeliverySettings:
    """Backoff, pace and window (``output``)."""

    retry_initial_secs: float = 1.0
    retry_max_secs: float = 60.0
    max_events_per_sec: int = 0  # 0: no limit
    max_unacked_bytes: int = 4 << 20


@dataclass
class _InFlight(Generic[R]):
    """A batch handed to the transport and not acknowledged yet."""

    messages: list[bytes]
    size: int
    receipt: R
    written_at: float = 0.0


class Delivery(Generic[R]):
    """Sends batches through *transport* in a window; see the module docstring."""

    def __init__(
        self,
        transport: Transport,
        settings: DeliverySettings,
        observer: Observer,
        stop: threading.Event,
        once: bool = False,
        fence: Fence = UNFENCED,
    ) -> None:
        self.transport = transport
        self._settings = settings
        self._observer = observer
        self._stop = stop
        self._once = once
        self.fence = fence
        # Set by the pipeline: a batch's receipt once it is acknowledged; a wait coming.
        self.on_acknowledged: Callable[[R], None] = lambda receipt: None
        self.on_idle: Callable[[], None] = lambda: None
        self._flight: deque[_InFlight[R]] = deque()
        self._unacked = 0  # bytes of the messages in flight
        self._failures = 0  # transport failures since the last acknowledgement
        self._paced_since = time.monotonic()
        self._paced_events = 0

    @property
    def in_flight(self) -> int:
        """Batches handed over and not acknowledged yet."""
        return len(self._flight)

    def send(self, messages: list[bytes], receipt: R) -> None:
        """Write *messages* behind the batches in flight, once the window has room.

        Raises Stopped when a stop came during a backoff, SendError (``once`` only) after
        ONCE_SEND_ATTEMPTS failures in a row.
        """
        size = sum(map(len, messages))
        while self._flight and self._unacked + size > self._settings.max_unacked_bytes:
            self._collect(ACK_WAIT_SECS)
        entry = _InFlight(messages, size, receipt)
        self._flight.append(entry)
        self._unacked += size
        if messages:
            entry.written_at = time.monotonic()
            try:
                self.fence.check()
                self.transport.write(messages)
            except SendError as exc:
                self._recover(exc)
        self._collect(0)

    def flush(self) -> None:
        """Wait until every batch in flight is acknowledged (Stopped, SendError as send)."""
        while self._flight:
            self._collect(ACK_WAIT_SECS)

    def _collect(self, wait_secs: float) -> None:
        """Take the transport's acknowledgements (waiting up to *wait_secs* for one)."""
        self._release(0)  # batches without messages at the head
        if not self._flight:
            return
        try:
            count = self.transport.acknowledged(wait_secs)
        except SendError as exc:
            self._recover(exc)
            return
        self._release(count)

    def _release(self, count: int) -> None:
        """Hand the receipts of the first *count* written batches (and of the batches
        without messages among and after them) to on_acknowledged, in order."""
        flight, label, now = self._flight, self.transport.label, time.monotonic()
        while flight and (count or not flight[0].messages):
            entry = flight.popleft()
            self._unacked -= entry.size
            if entry.messages:
                count -= 1
                self._observer.sent(label, len(entry.messages), entry.size, now - entry.written_at)
                if self._failures:
                    log.info("%s: delivering again", label)
                    self._failures = 0
            self.on_acknowledged(entry.receipt)

    def _recover(self, exc: SendError) -> None:
        """After a failure, back off, then write every batch in flight again, in order."""
        settings = self._settings
        while True:
            lost = [entry for entry in self._flight if entry.messages]
            self._observer.send_failed(self.transport.label, sum(len(e.messages) for e in lost), str(exc))
            self._failures += 1
            if self._once and self._failures >= ONCE_SEND_ATTEMPTS:
                raise SendError(f"{exc} (gave up after {self._failures} attempts)") from exc
            delay = min(settings.retry_max_secs, settings.retry_initial_secs * 2 ** (self._failures - 1))
            delay *= random.uniform(0.5, 1.0)  # jitter, so many forwarders do not retry in step
            log.warning(
                "%s; batch not delivered, retrying in %.1fs (attempt %d%s)",
                exc,
                delay,
                self._failures,
                f"; {len(lost)} batches to send again" if len(lost) > 1 else "",
            )
            self.on_idle()
            if self._stop.wait(delay):
                raise Stopped() from exc
            try:
                for entry in lost:
                    entry.written_at = time.monotonic()
                    self.fence.check()
                    self.transport.write(entry.messages)
                return
            except SendError as again:
                exc = again

    def pace(self, count: int) -> None:
        """Wait as long as *count* more events need to keep to the rate, taking the
        acknowledgements that come meanwhile (and letting the pipeline save them first)."""
        rate = self._settings.max_events_per_sec
        if not rate or self.transport.paces_itself:
            return
        self._paced_events += count
        due = self._paced_since + self._paced_events / rate
        if due > time.monotonic():
            while self._flight and (left := due - time.monotonic()) > 0:
                self._collect(min(left, ACK_WAIT_SECS))
            self.on_idle()
            if (left := due - time.monotonic()) > 0:
                self._stop.wait(left)
        elif due < time.monotonic() - 1:  # idle for a while: do not burst to catch up
            self._paced_since, self._paced_events = time.monotonic(), 0

    def probe(self) -> tuple[bool, str]:
        """Check the collector now (while idle, for /readyz): (up, why not)."""
        try:
            self.transport.probe()
        except SendError as exc:
            return False, str(exc)
        return True, ""

    def close(self) -> None:
        """Close the transport (what is still in flight is left to the next run)."""
        self._flight.clear()
        self._unacked = 0
        self.transport.close()
