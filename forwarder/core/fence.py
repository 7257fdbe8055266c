"""The fence: whether this forwarder may still act for a pipeline.

A pipeline that a fleet shares (``coordination.kind: s3``) has one owner at a time, the
forwarder holding its lease (``forwarder.coordination``). Holding it is not enough to be
asked once: a forwarder that was paused or cut off may wake up after another one took the
pipeline over. So the pipeline asks its fence right before every send (``core.delivery``)
and every save (``core.pipeline``); once the lease is lost — taken over, refused a write,
or past its deadline on this machine's monotonic clock without a renewal — ``check``
raises LeaseLost and the pipeline stops at once, never overwriting the new owner's
progress. A pipeline of a single forwarder is not fenced (``UNFENCED``).
"""

from __future__ import annotations

from typing import Protocol


class Fence(Protocol):
    """Says whether this forwarder may still send and save for one pipeline."""

    def check(self) -> None:
        """Return when it may; raise LeaseLost (naming the pipeline and why) when it may not."""
        ...


class _Unfenced:
    """The fence of a pipeline no other forwarder shares: always open."""

    def check(self) -> None:
        """Always allowed."""


UNFENCED: Fence = _Unfenced()
