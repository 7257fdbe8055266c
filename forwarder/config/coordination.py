"""``coordination:`` — whether forwarders share the config's pipelines, and through what.

``kind: none`` (the default): this forwarder runs every pipeline, its state in local files.
``kind: s3``: every forwarder started on the same config shares its pipelines, each one
owned by exactly one forwarder at a time through a lease object in the bucket and prefix
named here (conditional writes: ``If-None-Match``/``If-Match``), with the pipelines'
checkpoints, dead letters and quarantine lists beside it (``forwarder.coordination``).
The bucket is reached like a source's (``S3Access``: region, endpoint, keys, profile, role).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from forwarder.config.fields import choice, limits
from forwarder.config.sources import S3Access
from forwarder.config.tree import build, describe, join, kind_of
from forwarder.errors import ConfigError

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
# S3 gives Last-Modified and Date in whole seconds: a lease is judged expired this much
# later at the least, so that rounding never lets it go early.
MIN_GRACE_SECS = 1.0


@dataclass(frozen=True)
class NoCoordination:
    """``kind: none``: one forwarder runs all the pipelines."""

    kind: str = field(default="none", metadata=choice("none", "s3"))


@dataclass(frozen=True)
class S3Coordination(S3Access):
    """``kind: s3``: forwarders share the pipelines through leases in a bucket."""

    kind: str = field(default="s3", metadata=choice("none", "s3"))
    # How long a lease lasts without a renewal: a forwarder that stops renewing (killed,
    # paused, cut off) loses its pipelines this long (plus grace_secs) after its last renewal.
    lease_secs: float = field(default=30.0, metadata=limits(1))
    # How often leases are renewed and the fleet looked at; 0 = lease_secs / 3.
    renew_secs: float = field(default=0.0, metadata=limits(0))
    # Added to lease_secs before another forwarder takes a lease over (S3's clock judges,
    # in whole seconds).
    grace_secs: float = field(default=2.0, metadata=limits(MIN_GRACE_SECS))
    # This forwarder's name in the fleet; empty = host name, process id and a random suffix.
    forwarder_id: str = ""

    @property
    def renew_every(self) -> float:
        """renew_secs, or lease_secs / 3 when not given."""
        return self.renew_secs or self.lease_secs / 3

    def checked(self) -> S3Coordination:
        """The settings with the prefix ending in "/"; ConfigError for values that do not fit."""
        path = "coordination"
        self.check_access(path)
        if self.renew_every > self.lease_secs / 2:
            raise ConfigError(
                f"{join(path, 'renew_secs')}: expected at most half of lease_secs ({self.lease_secs / 2:g}), "
                f"so that a lease outlives one failed renewal, got {self.renew_secs:g}"
            )
        if self.forwarder_id and not _ID.match(self.forwarder_id):
            raise ConfigError(
                f"{join(path, 'forwarder_id')}: expected a name of letters, digits, '_', '.' or '-' "
                f"(at most 63: it is part of S3 keys), got {describe(self.forwarder_id)}"
            )
        prefix = self.prefix if not self.prefix or self.prefix.endswith("/") else self.prefix + "/"
        return dataclasses.replace(self, prefix=prefix)


Coordination = NoCoordination | S3Coordination
# coordination.kind -> its settings (the first is the default).
COORDINATION_KINDS: dict[str, type[Any]] = {"none": NoCoordination, "s3": S3Coordination}


def load_coordination(raw: Any) -> Coordination:
    """The ``coordination:`` section (None: kind none)."""
    path = "coordination"
    cls = kind_of(COORDINATION_KINDS, raw, path)
    if cls is NoCoordination and isinstance(raw, dict):
        extra = [key for key in raw if key != "kind"]
        if extra:
            raise ConfigError(
                f"{join(path, extra[0])}: only applies to coordination.kind: s3, but kind is none "
                "(set kind: s3 to share the pipelines among forwarders)"
            )
    settings: Coordination = build(cls, raw, path)
    if isinstance(settings, S3Coordination):
        return settings.checked()
    return settings
