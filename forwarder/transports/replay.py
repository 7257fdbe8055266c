"""What a TCP or TLS collector acknowledged lately, kept to be sent again should the
connection end in a way that may have thrown it away.

TCP acknowledges bytes when they reach the collector's receive buffer, not when the
collector has read them. A collector that closes a connection with bytes still unread (an
rsyslog restart or ``kill -9`` the moment a batch arrived, or after it froze) makes its
kernel discard them and answer with a reset: events acknowledged, counted delivered, and
never read. Only a clean close (FIN) proves the collector read everything before it (read,
not stored: what it does next is its own affair). So
the stream transport keeps the last batches acknowledged (those within ``REPLAY_SECS`` of
the newest acknowledgement, at most ``REPLAY_BYTES``, and always the newest one), forgets
them when the connection ends cleanly, and after any other end sends them again, first, on
the next connection: a collector restart can repeat those events but does not lose them.

The bounds: what a collector holds unread is at most its receive buffer, and one that
keeps reading holds milliseconds' worth; 4 MiB covers the buffers Linux starts with and
most it grows to (6 MiB at most by default), at that much memory per stream at worst. The
age is counted back from the newest acknowledgement, not from now: a collector that froze
with its buffer full acknowledged nothing since, however long ago that was; 120 s covers
one that drains a full buffer slowly. The cost is repeats: a connection reset while idle
(a firewall's idle timeout) sends the last burst's batches again.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

REPLAY_SECS = 120.0
REPLAY_BYTES = 4 << 20


class Tail:
    """The batches (framed payloads) acknowledged lately, and those to send again."""

    def __init__(
        self,
        max_bytes: int = REPLAY_BYTES,
        max_secs: float = REPLAY_SECS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_bytes = max_bytes
        self._max_secs = max_secs
        self._clock = clock
        self._kept: deque[tuple[float, bytes]] = deque()  # (acknowledged at, payload), oldest first
        self._bytes = 0
        self._again: list[bytes] = []  # to send first on the next connection, in order

    def acknowledged(self, payload: bytes) -> None:
        """The collector's TCP stack took *payload* (not proof that the collector read it)."""
        now = self._clock()
        self._kept.append((now, payload))
        self._bytes += len(payload)
        kept = self._kept
        while kept and (now - kept[0][0] > self._max_secs or self._over_bytes()):
            self._bytes -= len(kept.popleft()[1])

    def read(self) -> None:
        """The connection ended cleanly (the collector's FIN, or ours answered): it read all."""
        self._kept.clear()
        self._bytes = 0

    def lost(self, unconfirmed: list[bytes]) -> None:
        """The connection ended otherwise (a reset, an error, a timeout): what it acknowledged
        lately may be gone, and so may *unconfirmed* (batches being sent again on it, not
        acknowledged). All of it goes first on the next connection, in the order first sent."""
        self._again += [payload for _, payload in self._kept] + unconfirmed
        self.read()

    def take(self) -> list[bytes]:
        """The batches to send again now (a new connection is up), oldest first."""
        again, self._again = self._again, []
        return again

    @property
    def pending(self) -> int:
        """How many batches wait to be sent again."""
        return len(self._again)

    def abandon(self, label: str) -> None:
        """The transport closes for good: say so if batches still wait to be sent again (the
        checkpoint is past them: they were acknowledged)."""
        if self._again:
            log.warning(
                "%s: closing with %d batches to send again that the collector acknowledged and"
                " may have thrown away unread when its connection ended (it had not come back"
                " before the stop)",
                label,
                len(self._again),
            )

    def _over_bytes(self) -> bool:
        """More than max_bytes kept (the newest batch is kept whatever its size)."""
        return len(self._kept) > 1 and self._bytes > self._max_bytes
