"""Failover: several collectors (``output.hosts``), one active at a time.

A batch goes to the active collector. When it fails there, the next collector in the list
takes it at once (each switch logged once); only when every collector failed does the
batch fail, and the pipeline retries it with backoff — so nothing is lost by switching,
at most a batch arrives twice (at least once). After ``failback_secs`` on a fallback, the
first collector is tried again and, if it answers, becomes active again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence

from forwarder.errors import ConfigError, SendError
from forwarder.transports.base import Transport

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
    ) -> None:
        self._transports = list(transports)
        # Told of each collector's outcome (label, up, reason), the ones not active too:
        # the pipeline passes them to its observers (collector_up per collector).
        self.on_attempt: Callable[[str, bool, str], None] = lambda label, up, reason: None
        self._failback = failback_secs
        self._clock = clock
        self._active = 0
        self._since = clock()
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

    def probe(self) -> None:
        """Reach the active collector, failing over like send() does."""
        self._each(lambda transport: transport.probe())

    def send(self, messages: list[bytes]) -> None:
        if self._active and self._clock() - self._since >= self._failback:
            self._fail_back(messages)
            if self._active == 0:
                return
        self._each(lambda transport: transport.send(messages))

    def _fail_back(self, messages: list[bytes]) -> None:
        """Try the first collector again; stay on the fallback (quietly) if it still fails."""
        self._since = self._clock()
        try:
            self._transports[0].send(messages)
        except SendError as exc:
            log.debug("%s still failing: %s", self._transports[0].label, exc)
            self.on_attempt(self._transports[0].label, False, str(exc))
            return
        self.on_attempt(self._transports[0].label, True, "")
        log.warning("back on %s after %s", self._transports[0].label, self.label)
        self._transports[self._active].close()
        self._active = 0

    def _each(self, action: Callable[[Transport], None]) -> None:
        errors = []
        for _ in self._transports:
            transport = self._transports[self._active]
            try:
                action(transport)
            except SendError as exc:
                self.on_attempt(transport.label, False, str(exc))
                errors.append(str(exc))
                following = (self._active + 1) % len(self._transports)
                if following != self._active:
                    log.warning("%s; switching to %s", exc, self._transports[following].label)
                    transport.close()
                    self._active, self._since = following, self._clock()
            else:
                self.on_attempt(transport.label, True, "")
                return
        raise SendError("no collector took the batch: " + "; ".join(errors))

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
