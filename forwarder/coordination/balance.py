"""Balance: how many pipelines this forwarder holds, and which it takes or lets go.

Every forwarder holds at most its share, ``ceil(pipelines / forwarders seen)``, where the
forwarders seen are those whose heartbeat is fresh. When one joins, the share shrinks and
each forwarder over it lets the excess go (gracefully: the batch in flight is finished
and saved first); when one leaves or dies, the share grows and the others take the
pipelines it held once their leases expire.

Which pipelines: rendezvous hashing. Each forwarder ranks every pipeline by a hash of
(forwarder, pipeline); it takes from the top of its ranking and lets go from the bottom,
so two forwarders rarely reach for the same free lease at once (when they do, the
conditional write decides), and a forwarder that comes back tends to get the same
pipelines back. Everything here is pure: the coordinator brings what S3 said.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from forwarder.coordination.lease import expired
from forwarder.coordination.objects import Listed


def share(pipelines: int, forwarders: int) -> int:
    """The most pipelines one of *forwarders* holds: ceil(pipelines / forwarders)."""
    return math.ceil(pipelines / max(1, forwarders))


def rank(forwarder: str, pipeline: str) -> int:
    """How much *forwarder* prefers *pipeline* (rendezvous hashing: higher first)."""
    return int.from_bytes(hashlib.sha256(f"{forwarder}\0{pipeline}".encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Plan:
    """What to do this round: leases to try to take (in order, until *wanted* are taken),
    and the pipelines to let go."""

    take: tuple[str, ...] = ()
    wanted: int = 0
    release: tuple[str, ...] = ()


@dataclass(frozen=True)
class View:
    """What S3 said this round: fresh heartbeats, the lease objects, S3's time."""

    forwarders: int
    leases: Mapping[str, Listed]  # by pipeline
    now: float


def plan(
    me: str,
    pipelines: Sequence[str],
    held: Collection[str],
    releasing: Collection[str],
    view: View,
    lease_secs: float,
    grace_secs: float,
    lost_etags: Mapping[str, str] | None = None,
) -> Plan:
    """This round's plan for forwarder *me*, holding *held* (of which *releasing* are being
    let go already). A lease is free when there is none, when it expired, or when its ETag
    is still the one this forwarder wrote before it gave the lease up for lost
    (*lost_etags*: nobody took it since, so taking it back is safe)."""
    lost_etags = lost_etags or {}
    quota = share(len(pipelines), view.forwarders)
    configured = set(pipelines)
    active = [p for p in held if p not in releasing]
    release = [p for p in active if p not in configured]  # removed from the config
    keep = sorted((p for p in active if p in configured), key=lambda p: rank(me, p), reverse=True)
    release += keep[quota:]
    free = [
        p
        for p in pipelines
        if p not in held
        and (
            (seen := view.leases.get(p)) is None
            or expired(seen.modified, view.now, lease_secs, grace_secs)
            or seen.etag == lost_etags.get(p)
        )
    ]
    wanted = max(0, quota - len(keep) - len(releasing))
    take = sorted(free, key=lambda p: rank(me, p), reverse=True) if wanted else []
    return Plan(tuple(take), wanted, tuple(release))
