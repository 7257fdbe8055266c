"""The fleet's members: each forwarder's heartbeat object, and which forwarders are alive.

``<prefix>members/<forwarder_id>.json`` is written (unconditionally: only its forwarder
writes it) every round with what that forwarder holds; a forwarder whose heartbeat is
older than ``lease_secs + grace_secs`` on S3's clock is gone. The forwarders alive make the
divisor of each one's share (``balance``); a clean stop deletes the heartbeat, so the
others count without it at their next round.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence

from forwarder.coordination.lease import expired
from forwarder.coordination.objects import Objects, Refused, document
from forwarder.core.checkpoint import now_text


def default_id() -> str:
    """host-pid-random: unique among the forwarders of a fleet (coordination.forwarder_id)."""
    host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{os.urandom(2).hex()}"


class Members:
    """Forwarder *me*'s heartbeat, and the others' (S3 errors: FetchError)."""

    def __init__(self, objects: Objects, me: str, lease_secs: float, grace_secs: float) -> None:
        self._objects = objects
        self._me = me
        self._expiry = lease_secs, grace_secs
        self._etag = ""
        self._started = now_text()

    @property
    def key(self) -> str:
        """This forwarder's heartbeat object."""
        return f"members/{self._me}.json"

    def beat(self, pipelines: Sequence[str]) -> None:
        """Write this forwarder's heartbeat, naming the *pipelines* it holds."""
        body = {
            "forwarder": self._me,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self._started,
            "renewed_at": now_text(),
            "pipelines": sorted(pipelines),
        }
        self._etag = self._objects.put(self.key, document(body))

    def alive(self) -> list[tuple[str, float]]:
        """The forwarders whose heartbeat is fresh, with its age in seconds (S3's clock)."""
        listed, now = self._objects.list("members/")
        return [
            (item.key.removeprefix("members/").removesuffix(".json"), now - item.modified)
            for item in listed
            if not expired(item.modified, now, *self._expiry)
        ]

    def leave(self) -> None:
        """Delete this forwarder's heartbeat (a clean stop); FetchError when S3 does not answer."""
        # Refused: rewritten by another process of the same forwarder_id, not ours to remove
        if self._etag:
            with contextlib.suppress(Refused):
                self._objects.delete(self.key, self._etag)
