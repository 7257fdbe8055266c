"""A pipeline's lease: which forwarder owns the pipeline, in which tenure, and until when.

The lease object, ``<prefix>leases/<pipeline>.json``::

    {"pipeline": "acme", "owner": "fwd-a", "epoch": 7, "tenure": "3f9c1a2b77d0", "serial": 42,
     "lease_secs": 30, "renewed_at": "2026-11-28T07:25:12Z"}

- **taken** with ``If-None-Match: *`` when there is none (epoch 1), or over an expired
  version with ``If-Match`` on that version's ETag (its epoch + 1);
- **renewed** every ``coordination.renew_secs`` with ``If-Match`` on the ETag this owner
  wrote last (serial + 1);
- **released** at a clean stop or when the fleet rebalances: deleted with ``If-Match``.

``tenure`` is random per taking: with ``owner`` and ``serial`` it makes every body this
fleet writes unique, so two writers can never produce the same ETag.

**Time.** Whether a lease expired is judged on S3's clock: its Last-Modified more than
``lease_secs + grace_secs`` before the ``Date`` of S3's answer (``expired``). The owner
judges on its own monotonic clock, counting from the moment it *sent* its last renewal
that S3 took: it stops using the lease ``lease_secs`` later (``check``, the pipeline's
fence). S3 received that renewal after it was sent, and ``grace_secs`` covers S3's
whole-second stamps, so the owner stops before anyone else may start — whatever the
forwarders' own clocks say. The owner's clock is ``CLOCK_BOOTTIME`` where there is one
(Linux): monotonic, and it goes on while the machine is suspended, where ``CLOCK_MONOTONIC``
would stand still and keep a stale fence open after the resume.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forwarder.coordination.objects import document
from forwarder.core.checkpoint import now_text
from forwarder.errors import LeaseLost

_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def lease_clock() -> float:
    """Seconds on a clock that never goes back and counts suspended time (see above)."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


def lease_key(pipeline: str) -> str:
    """The lease object's key below the prefix."""
    return f"leases/{pipeline}.json"


def pipeline_of(key: str) -> str:
    """The pipeline a lease key is for (``leases/acme.json`` -> ``acme``)."""
    return key.removeprefix("leases/").removesuffix(".json")


def expired(modified: float, now: float, lease_secs: float, grace_secs: float) -> bool:
    """True when a lease written at *modified* has run out at *now* (both S3's clock)."""
    return now - modified > lease_secs + grace_secs


def read_lease(body: bytes) -> dict[str, Any]:
    """A lease object's fields ({} when it is not one: taken as expired, never trusted)."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("epoch"), int) else {}


def new_tenure() -> str:
    """A random name for one taking of a lease."""
    return secrets.token_hex(6)


@dataclass(eq=False)
class Lease:
    """A lease this forwarder holds, and the fence of its pipeline (``core.fence``).

    The coordinator's thread renews it; the pipeline's thread asks ``check`` before every
    send and save. Once lost it stays lost: a new taking is a new Lease.
    """

    pipeline: str
    owner: str
    epoch: int
    etag: str
    deadline: float  # on *clock*: lease_secs after the last renewal S3 took was sent
    lease_secs: float
    tenure: str = field(default_factory=new_tenure)
    serial: int = 0  # of the lease object's last renewal
    writes: int = 0  # state objects written in this tenure (checkpoints, dead letters...)
    clock: Callable[[], float] = lease_clock
    lost: str = ""  # why, once lost
    releasing: bool = False  # the fleet wants it elsewhere: the pipeline is being stopped
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self) -> None:
        """The fence: LeaseLost once the lease is lost or past its deadline."""
        if not self.lost and self.clock() >= self.deadline:
            late = self.clock() - self.deadline
            self.lose(f"not renewed in time (its {self.lease_secs:g}s ran out {late:.1f}s ago)")
        if self.lost:
            raise LeaseLost(f"pipeline {self.pipeline}: lease lost: {self.lost}")

    def lose(self, reason: str) -> bool:
        """Mark the lease lost for *reason*; False when it was lost already."""
        with self._lock:
            if self.lost:
                return False
            self.lost = reason
            return True

    def next_write(self) -> int:
        """A number for the next state object written in this tenure (unique within it)."""
        with self._lock:
            self.writes += 1
            return self.writes

    def stamp(self) -> dict[str, Any]:
        """Who writes, in which tenure: put in every checkpoint this owner writes."""
        return {"owner": self.owner, "epoch": self.epoch, "tenure": self.tenure}

    def body(self, serial: int) -> bytes:
        """The lease object as this owner writes it at *serial*."""
        data = {
            "pipeline": self.pipeline,
            **self.stamp(),
            "serial": serial,
            "lease_secs": self.lease_secs,
            "renewed_at": now_text(),
        }
        return document(data)

    def renewed(self, etag: str, serial: int, sent_at: float) -> None:
        """S3 took the renewal *serial* sent at *sent_at* (on *clock*): the deadline moves."""
        with self._lock:
            if not self.lost:
                self.etag, self.serial = etag, serial
                self.deadline = sent_at + self.lease_secs

    def adopt(self, etag: str, serial: int) -> None:
        """The lease object is this owner's write *serial* after all (its answer was lost):
        go on from it; the deadline stays."""
        with self._lock:
            self.etag, self.serial = etag, serial

    def wrote(self, body: bytes) -> bool:
        """True when *body* (read back after a refusal) was written in this tenure: only this
        owner writes with it, so it is this owner's latest write, whose answer got lost."""
        return read_lease(body).get("tenure") == self.tenure
