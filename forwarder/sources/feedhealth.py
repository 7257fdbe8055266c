"""How long an API source has gone without a successful call, and the warning before it costs events.

Cato forgets an eventsFeed marker unused for about 3 days, and with it the events queued
meanwhile. ``FeedHealth`` keeps when a call last succeeded (or, after a restart, when the
saved marker last worked) and tells the pipeline's observers (``report``: /readyz turns
unready past ``source.marker_max_age_secs``); every failed call past that age logs a loud
error saying how much time is left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from forwarder.config.catoapi import MARKER_KEPT_SECS

log = logging.getLogger(__name__)

# (when the API last answered, epoch seconds; the age at which to turn unready)
Report = Callable[[float, float], None]


def utc_text(epoch: float) -> str:
    """*epoch* as ``2026-11-28T07:25:12Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def span_text(first: float, last: float) -> str:
    """``from 2026-11-28T07:25:12Z to 2026-11-29T10:00:00Z``."""
    return f"from {utc_text(first)} to {utc_text(last)}"


def age_text(secs: float) -> str:
    """``3.2 days``, ``5.1 hours``, ``12 minutes``."""
    if secs >= 86400:
        return f"{secs / 86400:.1f} days"
    if secs >= 3600:
        return f"{secs / 3600:.1f} hours"
    return f"{secs / 60:.0f} minutes"


class FeedHealth:
    """The last successful call of one API source; see the module docstring."""

    def __init__(
        self,
        what: str,
        max_age_secs: float,
        report: Report | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._what = what
        self.max_age_secs = max_age_secs
        self._report = report
        self._clock = clock
        self.last_success = 0.0

    def known(self, at: float) -> None:
        """The saved position last worked at *at* (after a restart, before any call)."""
        if at > self.last_success:
            self._set(at)

    def answered(self) -> None:
        """A call succeeded now."""
        self._set(self._clock())

    def failed(self, why: str) -> None:
        """A call failed: warn loudly once the last success is older than the limit."""
        if not self.last_success:
            return
        age = self._clock() - self.last_success
        if age > self.max_age_secs:
            left = MARKER_KEPT_SECS - age
            when = f"in about {age_text(left)}" if left > 0 else "already, probably"
            log.error(
                "%s has not answered successfully for %s (source.marker_max_age_secs: %g): Cato forgets "
                "a marker unused for ~3 days, and the events queued meanwhile with it (%s); fix this "
                "now: %s",
                self._what, age_text(age), self.max_age_secs, when, why,
            )  # fmt: skip

    def _set(self, at: float) -> None:
        self.last_success = at
        if self._report is not None:
            self._report(at, self.max_age_secs)
