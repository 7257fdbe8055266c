"""A fleet's bucket, read only: who holds which pipeline, the fleet's members, the state of
each pipeline — for ``forwarder status`` and ``forwarder check``. Nothing here writes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from forwarder.config import S3Coordination
from forwarder.coordination.lease import expired, lease_key, read_lease
from forwarder.coordination.members import Members
from forwarder.coordination.objects import Objects
from forwarder.coordination.state import S3Checkpoint, state_key
from forwarder.errors import FetchError


@dataclass(frozen=True)
class Holder:
    """Who holds a pipeline's lease, and how fresh it is (on S3's clock)."""

    owner: str
    epoch: int
    age_secs: float  # since its last renewal
    expired: bool

    def text(self, lease_secs: float) -> str:
        """``fwd-a (epoch 3), renewed 2s ago`` or ``... expired: free to take``."""
        state = (
            f"EXPIRED {self.age_secs - lease_secs:.0f}s ago: another forwarder takes it"
            if self.expired
            else f"renewed {self.age_secs:.0f}s ago, runs out in {max(0.0, lease_secs - self.age_secs):.0f}s"
        )
        return f"{self.owner} (epoch {self.epoch}), lease {state}"


class FleetView:
    """Reads the fleet's objects under *objects*' prefix."""

    def __init__(self, settings: S3Coordination, objects: Objects) -> None:
        self.settings = settings
        self.objects = objects

    def members(self) -> list[tuple[str, float]]:
        """The forwarders whose heartbeat is fresh, with its age in seconds."""
        return Members(self.objects, "", self.settings.lease_secs, self.settings.grace_secs).alive()

    def holder(self, pipeline: str) -> Holder | None:
        """Who holds *pipeline*'s lease (None: nobody)."""
        stored = self.objects.get(lease_key(pipeline))
        if stored is None:
            return None
        data = read_lease(stored.body)
        stale = expired(stored.modified, stored.now, self.settings.lease_secs, self.settings.grace_secs)
        return Holder(
            str(data.get("owner", "?")), int(data.get("epoch", 0)), stored.now - stored.modified, stale
        )

    def checkpoint(self, pipeline: str, source_id: str) -> S3Checkpoint:
        """*pipeline*'s checkpoint, to read (``load``)."""
        return S3Checkpoint(self.objects, pipeline, source_id)

    def dead_letters(self, pipeline: str) -> dict[str, Any]:
        """``{"path", "records", "last"}`` like the dead-letter file's summary: the lines
        counted from the objects' names, the last one read from the newest object."""
        folder = state_key(pipeline, "dead_letters/")
        where = self.objects.url(folder)
        try:
            listed, _ = self.objects.list(folder)
            records = sum(int(item.key.rsplit("-", 1)[-1].split(".")[0]) for item in listed)
            last = None
            if listed:
                newest = max(listed, key=lambda item: item.key)
                stored = self.objects.get(newest.key)
                line = stored.body.rstrip(b"\n").rsplit(b"\n", 1)[-1] if stored is not None else b""
                last = json.loads(line) if line else None
        except (FetchError, ValueError) as exc:
            return {"path": where, "records": None, "last": None, "error": str(exc)}
        return {"path": where, "records": records, "last": last if isinstance(last, dict) else None}
