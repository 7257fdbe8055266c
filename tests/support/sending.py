"""Send one batch through a windowed transport and wait for its acknowledgement, as the
old blocking ``send`` did: for tests that look at one batch at a time."""

from __future__ import annotations

import time

from forwarder.transports.base import Transport


def send_and_wait(transport: Transport, messages: list[bytes], timeout: float = 10.0) -> None:
    """Write *messages* and return once the transport acknowledged every batch in flight
    (SendError as the transport raises it; AssertionError after *timeout* seconds)."""
    transport.write(messages)
    deadline = time.monotonic() + timeout
    while not transport.acknowledged(0.05):
        assert time.monotonic() < deadline, f"{transport.label}: no acknowledgement in {timeout}s"
