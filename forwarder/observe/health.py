"""Readiness, and the HTTP listener for ``/metrics``, ``/healthz`` and ``/readyz``.

``Health`` follows the pipeline's outcomes: the collector is reachable when the last
batch was acknowledged or the last idle check connected; the bucket is reachable when the
last listing or download worked; the pipeline is stuck when it has been held on a file
that cannot be read for more than ``metrics.stuck_after_secs`` (counted from the first
failure, which the checkpoint keeps across restarts). An API source (Cato's eventsFeed)
adds a fourth: its last successful call is no older than ``source.marker_max_age_secs``
(``source_reached``). Readiness is all of them being good.

The collector is not connected to on every scrape: while the pipeline is idle it checks
the connection it keeps (``Transport.probe``: a peer that hung up is noticed, a new
connection made) at most every ``metrics.probe_interval_secs``, and a batch's outcome
counts as a check.

Each pipeline has its own ``Health``; ``forwarder.observe.endpoint`` serves them all.
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from forwarder.core.checkpoint import Failure
from forwarder.core.observer import Observer
from forwarder.sources.base import LogObject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One readiness check: passed or not (None: not known yet), and why."""

    ok: bool | None
    detail: str


class Health(Observer):
    """Collector and bucket reachability and the file the pipeline is held on."""

    def __init__(
        self,
        stuck_after_secs: float,
        probe_interval_secs: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._stuck_after = stuck_after_secs
        self._probe_interval = probe_interval_secs
        self._clock = clock
        self._wall = wall_clock
        self._checked_at = -float("inf")  # when the collector was last sent to or probed
        self.collector_label = ""
        self.collector_check = Check(None, "not contacted yet")
        self.collector_checks: dict[str, Check] = {}  # every collector heard of (failover: several)
        self.bucket_check = Check(None, "not listed yet")
        self.stuck_on: Failure | None = None
        self.stopped_on = ""  # why the pipeline stopped for good (a corrupt checkpoint...)
        self._stuck_since = 0.0
        self._reached: tuple[float, float] | None = None  # an API source: (last answer, stale after)

    # --- the pipeline's outcomes ------------------------------------------------------

    def sent(self, collector: str, events: int, size: int, ack_secs: float) -> None:
        self.collector(collector, True, "")

    def send_failed(self, collector: str, events: int, reason: str) -> None:
        self.collector(collector, False, reason)

    def collectors(self, labels: Sequence[str]) -> None:
        """Forget the collectors no longer configured (a reload): no stale collector_up."""
        checks = self.collector_checks
        self.collector_checks = {label: checks[label] for label in labels if label in checks}
        if self.collector_label not in labels:
            self.collector_label, self.collector_check = "", Check(None, "not contacted yet")

    def collector(self, collector: str, up: bool, reason: str) -> None:
        self.collector_label = collector
        self.collector_check = Check(up, f"{collector} acknowledges" if up else reason)
        self.collector_checks[collector] = self.collector_check
        self._checked_at = self._clock()

    def probe_due(self) -> bool:
        now = self._clock()
        if now - self._checked_at < self._probe_interval:
            return False
        self._checked_at = now
        return True

    def fetched(self, obj: LogObject | None, error: Exception | None) -> None:
        if error is None:
            self.bucket_check = Check(True, "the last download worked")
        else:
            self.bucket_check = Check(False, str(error))

    def pass_done(self) -> None:
        self.bucket_check = Check(True, "the last poll worked")

    def bad_file(self, failure: Failure) -> None:
        if self.stuck_on is None or self.stuck_on.key != failure.key:
            self._stuck_since = _epoch(failure.since, self._wall())
        self.stuck_on = failure

    def file_done(self, obj: LogObject, records: int) -> None:
        self._past(obj)

    def quarantined(self, obj: LogObject) -> None:
        self._past(obj)

    def stopped(self, reason: str) -> None:
        self.stopped_on = reason

    def source_reached(self, at: float, stale_after_secs: float) -> None:
        self._reached = (at, stale_after_secs)  # one assignment: read whole by a scrape

    def _past(self, obj: LogObject) -> None:
        if self.stuck_on is not None and self.stuck_on.key == obj.key:
            self.stuck_on = None  # got past it (delivered, or quarantined)

    # --- what is reported -------------------------------------------------------------

    def stuck_secs(self) -> float:
        """How long the pipeline has been held on a file it cannot read (0: it is not)."""
        return max(0.0, self._wall() - self._stuck_since) if self.stuck_on is not None else 0.0

    def checks(self) -> dict[str, Check]:
        """The readiness checks by name: collector, bucket (the source), stuck, and api for an API
        source."""
        stuck = self.stuck_on
        if stuck is None:
            held = Check(True, "not held on a bad file")
        else:
            secs = self.stuck_secs()
            held = Check(
                secs <= self._stuck_after,
                f"held on {stuck.key} for {secs:.0f}s ({stuck.attempts} failed attempts; "
                f"unready after {self._stuck_after:g}s): {stuck.reason}",
            )
        checks = {"collector": self.collector_check, "bucket": self.bucket_check, "stuck": held}
        if self._reached is not None:
            checks["api"] = self._api_check(*self._reached)
        if self.stopped_on:
            checks["running"] = Check(False, f"stopped: {self.stopped_on}")
        return checks

    def _api_check(self, at: float, stale_after: float) -> Check:
        """An API source answered recently enough that its marker is not at risk."""
        age = max(0.0, self._wall() - at)
        return Check(
            age <= stale_after,
            f"the API last answered {age:.0f}s ago (unready after source.marker_max_age_secs: "
            f"{stale_after:g}s; Cato forgets a marker unused for ~3 days)",
        )

    def ready(self) -> bool:
        """True when every check passed."""
        return all(check.ok for check in self.checks().values())


def _epoch(text: str, default: float) -> float:
    """The checkpoint's UTC time text as epoch seconds (*default* if it is not one)."""
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return default
