"""Failover: several collectors (``output.hosts``), one active at a time.

Batches go to the active collector, and the batches it has not acknowledged are kept.
When it fails, the next collector in the list takes them at once, in order (each switch
logged once); only when every collector failed does the failure reach the caller, which
writes them again after a backoff — so nothing is lost by switching, at most a window
arrives twice (at least once); over TCP or TLS, what the failed one acknowledged lately
goes first too (see replay.py). After ``failback_secs`` on a fallback, once what it has in
flight is acknowledged, the first collector is tried again and, if it answers, becomes
active again.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence

from forwarder.errors import ConfigError, SendError
from forwarder.transports.base import Held, Transport
from forwarder.transports.replay import Tail

log = logging.getLogger(__name__)

_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\s]+))(?::(?P<port>\d{1,5}))?$")


def parse_hosts(hosts: Sequence[str], default_port: int) -> list[tuple[str, int]]:
    """``["a:514", "[::1]:6514", "b"]`` as (host, port) pairs; ConfigError naming a bad one."""
    pairs = []
    for i, text in enumerate(hosts):
        match = _HOST_PORT.match(text.strip())
        port = int(match.group("port")) if match and match.group("port") else default_port
        if not match or not 1 <= port <= 65535:
            raise ConfigError(f'output.hosts[{i}]: expected "host:port" (port 1-65535), got "{text}"')
        pairs.append((match.group("v6") or match.group("host"), port))
    return pairs


class FailoverTransport:
    """Sends through the first working transport of a list; see the module docstring."""

    def __init__(
        self,
        transports: Sequence[Transport],
        failback_secs: float,
        clock: Callable[[], float] = time.monotonic,
        tail: Tail | None = None,
    ) -> None:
        self._transports = list(transports)
        # TCP/TLS: what a failed collector may have thrown away unread goes to the next one
        # first (the members share it; see replay.py).
        self._tail = tail
        # Told of each collector's outcome (label, up, reason), the ones not active too:
        # the pipeline passes them to its observers (collector_up per collector).
        self.on_attempt: Callable[[str, bool, str], None] = lambda label, up, reason: None
        self._failback = failback_secs
        self._clock = clock
        self._active = 0
        self._since = clock()
        self._pending: deque[list[bytes]] = deque()  # written to the active, not acknowledged
        self._held = Held()  # for the next acknowledged()
        limits = [t.max_message_bytes for t in self._transports if t.max_message_bytes is not None]
        self.max_message_bytes: int | None = min(limits) if limits else None
        self.paces_itself = all(t.paces_itself for t in self._transports)

    @property
    def labels(self) -> list[str]:
        """Every collector, in order."""
        return [transport.label for transport in self._transports]

    @property
    def label(self) -> str:
        """The active collector."""
        return self._transports[self._active].label

    @property
    def _current(self) -> Transport:
        return self._transports[self._active]

    def probe(self) -> None:
        """Reach the active collector, failing over like write() does."""
        self._on_active(lambda transport: transport.probe())
        self.on_attempt(self.label, True, "")

    def write(self, messages: list[bytes]) -> None:
        if self._held.failure is not None:
            return  # lost with the failure acknowledged() reports next
        if self._active and self._clock() - self._since >= self._failback:
            self._fail_back()
            if self._held.failure is not None:
                return
        self._pending.append(messages)
        self._on_active(lambda transport: transport.write(messages), again=False)

    def acknowledged(self, wait_secs: float) -> int:
        if not self._held.acknowledged and self._pending and self._held.failure is None:
            self._await(wait_secs)
        return self._held.report()

    def _await(self, wait_secs: float) -> None:
        """Take the active collector's acknowledgements (waiting up to *wait_secs*)."""
        try:
            count = self._current.acknowledged(wait_secs)
        except SendError as exc:
            self._on_active(lambda transport: None, exc)
            return
        if count:
            for _ in range(count):
                self._pending.popleft()
            self._held.acknowledged += count
            self.on_attempt(self.label, True, "")

    def _fail_back(self) -> None:
        """Try the first collector again once the fallback's batches are acknowledged; stay on
        the fallback (quietly) if it still fails."""
        self._since = self._clock()
        while self._pending and self._active and self._held.failure is None:
            self._await(0.05)
        if not self._active or self._held.failure is not None:  # the fallback failed meanwhile
            return
        try:
            self._transports[0].probe()
        except SendError as exc:
            log.debug("%s still failing: %s", self._transports[0].label, exc)
            self.on_attempt(self._transports[0].label, False, str(exc))
            return
        self.on_attempt(self._transports[0].label, True, "")
        log.warning("back on %s after %s", self._transports[0].label, self.label)
        self._current.close()
        self._active = 0

    def _on_active(
        self, action: Callable[[Transport], None], failed: SendError | None = None, again: bool = True
    ) -> None:
        """Do *action* on the active collector; when it fails (or *failed* says the active one
        did), the next in turn takes every batch not yet acknowledged (then *action* too, if
        *again*). When none does, the failure goes to the caller, after the acknowledgements
        held."""
        errors: list[str] = []
        first = True
        while True:
            if failed is None:
                try:
                    if not first:
                        for batch in self._pending:
                            self._current.write(batch)
                    if first or again:
                        action(self._current)
                    return
                except SendError as exc:
                    failed = exc
            self.on_attempt(self.label, False, str(failed))
            errors.append(str(failed))
            following = (self._active + 1) % len(self._transports)
            if following != self._active:
                log.warning("%s; switching to %s", failed, self._transports[following].label)
                self._current.close()
                self._active, self._since = following, self._clock()
            if len(errors) >= len(self._transports):
                self._pending.clear()
                self._held.fail(SendError("no collector took the batch: " + "; ".join(errors)))
                return
            failed, first = None, False

    def close(self) -> None:
        self._pending.clear()
        self._held = Held()
        for transport in self._transports:
            transport.close()
        if self._tail is not None:
            self._tail.abandon(self.label)
