"""UDP: one message per datagram, paced; handed to the kernel counts as delivered.

UDP has no acknowledgement: a collector that is down or overrun drops datagrams and the
sender never knows. So datagrams are paced (``output.max_events_per_sec``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from forwarder.errors import SendError
from forwarder.transports.base import AckedOnWrite, connect_error

# The largest UDP payload IPv4 can carry (65535 - 8 UDP header - 20 IP header).
UDP_MAX_PAYLOAD = 65507
# A paced UDP transport sends this long's worth of datagrams back to back, then waits: at
# the default 2,000/s, bursts of 20 datagrams (~25 KB of 1.2 KB events), a tenth of
# Linux's default 208 KiB socket receive buffer.
PACE_SLICE_SECS = 0.01


class DatagramTransport(AckedOnWrite):
    """UDP: one message per datagram, no framing; paced to *max_datagrams_per_sec* (0: not).

    UDP loss is invisible to the sender, and a burst overruns a collector's receive buffer
    however fast the collector is on average: so datagrams go out in slices of
    PACE_SLICE_SECS at the rate, never faster, and time left idle is not made up for with
    a burst. A batch is acknowledged when its last datagram went out (a stop waits for that).
    """

    max_message_bytes: int | None = UDP_MAX_PAYLOAD
    paces_itself = True

    def __init__(
        self,
        host: str,
        port: int,
        max_datagrams_per_sec: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.label = f"udp://{host}:{port}"
        self._address = (host, port)
        self._sock: socket.socket | None = None
        self._rate = max_datagrams_per_sec
        self._slice = max(1, int(max_datagrams_per_sec * PACE_SLICE_SECS))
        self._clock, self._sleep = clock, sleep
        self._due = 0.0  # when the next slice may go

    def _socket(self) -> socket.socket:
        if self._sock is None:
            try:
                info = socket.getaddrinfo(*self._address, type=socket.SOCK_DGRAM)[0]
                sock = socket.socket(info[0], socket.SOCK_DGRAM)
                sock.connect(info[4])
            except OSError as exc:
                raise connect_error(self.label, exc) from exc
            self._sock = sock
        return self._sock

    def probe(self) -> None:
        self._socket()

    def write(self, messages: list[bytes]) -> None:
        longest = max(map(len, messages), default=0)
        if longest > UDP_MAX_PAYLOAD:  # the pipeline fits messages first (output.oversize)
            raise SendError(f"{self.label}: a message of {longest} bytes is over UDP's {UDP_MAX_PAYLOAD}")
        send = self._socket().send
        try:
            if not self._rate:
                for message in messages:
                    send(message)
            else:
                for start in range(0, len(messages), self._slice):
                    chunk = messages[start : start + self._slice]
                    self._wait_turn(len(chunk))
                    for message in chunk:
                        send(message)
        except OSError as exc:
            self.close()
            raise connect_error(self.label, exc) from exc
        self._delivered()

    def _wait_turn(self, count: int) -> None:
        """Wait until *count* more datagrams keep to the rate."""
        now = self._clock()
        if self._due > now:
            self._sleep(self._due - now)
        else:
            self._due = now  # idle (or just started): no credit saved up, so no catch-up burst
        self._due += count / self._rate

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
