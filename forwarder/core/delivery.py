"""Delivery: a batch goes to the transport until it is acknowledged, at the configured pace.

A batch the collector did not take (SendError) is sent again after a backoff that doubles
from ``retry_initial_secs`` to ``retry_max_secs``, with jitter so that many forwarders do
not retry in step — forever, or ``ONCE_SEND_ATTEMPTS`` times for ``run --once``. The
checkpoint waits meanwhile (the pipeline saves only what came back acknowledged).

Pacing (``output.max_events_per_sec``) spreads batches out; a transport that paces itself
(UDP, per datagram) is left to do so. Time left idle is not made up for with a burst.

Before every attempt the fence is asked (``core.fence``): a forwarder that lost a fleet's
pipeline sends nothing more for it (LeaseLost).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from forwarder.core.fence import UNFENCED, Fence
from forwarder.core.observer import Observer
from forwarder.errors import SendError
from forwarder.transports.base import Transport

log = logging.getLogger("forwarder.core.pipeline")

# With --once, a batch the collector refuses is tried this many times before giving up.
ONCE_SEND_ATTEMPTS = 5


class Stopped(Exception):
    """Raised inside the pipeline when a stop was requested during a wait."""


@dataclass(frozen=True)
class DeliverySettings:
    """Backoff and pace (``output``)."""

    retry_initial_secs: float = 1.0
    retry_max_secs: float = 60.0
    max_events_per_sec: int = 0  # 0: no limit


class Delivery:
    """Sends batches through *transport* until acknowledged; see the module docstring."""

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
        self._fence = fence
        self._paced_since = time.monotonic()
        self._paced_events = 0

    def send(self, messages: list[bytes]) -> None:
        """Send *messages* until acknowledged; Stopped when a stop came during a wait,
        SendError (``once`` only) after ONCE_SEND_ATTEMPTS refusals, LeaseLost when the
        fence closed."""
        transport, settings = self.transport, self._settings
        attempt = 0
        while True:
            self._fence.check()
            try:
                started = time.monotonic()
                transport.send(messages)
                acked = time.monotonic() - started
                self._observer.sent(transport.label, len(messages), sum(map(len, messages)), acked)
                if attempt:
                    log.info("%s: delivering again", transport.label)
                return
            except SendError as exc:
                self._observer.send_failed(transport.label, len(messages), str(exc))
                attempt += 1
                if self._once and attempt >= ONCE_SEND_ATTEMPTS:
                    raise SendError(f"{exc} (gave up after {attempt} attempts)") from exc
                delay = min(settings.retry_max_secs, settings.retry_initial_secs * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)  # jitter, so many forwarders do not retry in step
                log.warning("%s; batch not delivered, retrying in %.1fs (attempt %d)", exc, delay, attempt)
                if self._stop.wait(delay):
                    raise Stopped() from exc

    def pace(self, count: int) -> None:
        """Wait as long as *count* more events need to keep to the rate (call after saving:
        a crash while waiting repeats nothing)."""
        rate = self._settings.max_events_per_sec
        if not rate or self.transport.paces_itself:
            return
        self._paced_events += count
        ahead = self._paced_since + self._paced_events / rate - time.monotonic()
        if ahead > 0:
            self._stop.wait(ahead)
        elif ahead < -1:  # idle for a while: do not burst to catch up
            self._paced_since, self._paced_events = time.monotonic(), 0

    def probe(self) -> tuple[bool, str]:
        """Check the collector now (while idle, for /readyz): (up, why not)."""
        try:
            self.transport.probe()
        except SendError as exc:
            return False, str(exc)
        return True, ""

    def close(self) -> None:
        """Close the transport (it finishes what it sent first)."""
        self.transport.close()
