"""Every observer of a run, from the config: per pipeline, and the process's endpoint.

Each pipeline gets a ``Fanout`` of its own ``Backlog`` (how far behind), ``Progress``
(backlog log lines) and, with ``metrics.listen``, ``Health`` (readiness) and its child of
the process's ``Metrics``. The process has one HTTP endpoint for all of them: /metrics
with a ``pipeline`` label on every series, /readyz ready only when every pipeline is.
The live status line on a terminal follows the pipeline when there is only one. In a
fleet, ``fleet`` gives the coordinator its metrics and ``coordination`` its readiness.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forwarder.config import Config, split_listen
from forwarder.core.observer import Fanout, Observer
from forwarder.observe.endpoint import Endpoint, readiness
from forwarder.observe.health import Health
from forwarder.observe.logs import show_status
from forwarder.observe.metrics import FleetMetrics, Metrics
from forwarder.observe.progress import Backlog, Progress


class Observing:
    """The observers of one ``run``; ``pipeline(name)`` gives the one a pipeline reports to.

    With ``metrics.listen`` the endpoint listens from construction on.
    """

    def __init__(self, config: Config, status: Callable[[str], None] = show_status) -> None:
        self._config = config
        self._status = status if len(config.pipelines) == 1 else None
        self.metrics: Metrics | None = None
        self.endpoint: Endpoint | None = None
        self.healths: dict[str, Health] = {}
        self.backlogs: dict[str, Backlog] = {}
        self._progress: dict[str, Progress] = {}
        # In a fleet: the coordinator's (ok, detail), for /readyz.
        self.coordination: Callable[[], tuple[bool, str]] | None = None
        m = config.metrics
        if m.listen:
            self.metrics = Metrics()
            self.endpoint = Endpoint(*split_listen(m.listen), self.metrics.registry, self.ready)

    def pipeline(self, name: str) -> Observer:
        """The observers of pipeline *name* (made once; the same again after a reload)."""
        backlog = self.backlogs.get(name) or Backlog()
        progress = self._progress.get(name) or Progress(
            backlog, self._config.log.progress_interval_secs, self._status
        )
        self.backlogs[name], self._progress[name] = backlog, progress
        observers: list[Observer] = [backlog, progress]
        if self.metrics is not None:
            m = self._config.metrics
            health = self.healths.get(name) or Health(m.stuck_after_secs, m.probe_interval_secs)
            self.healths = {**self.healths, name: health}
            observers += [health, self.metrics.pipeline(name, backlog, health)]
        return Fanout(observers)

    def forget(self, name: str) -> None:
        """Pipeline *name* was removed (a reload): its series and checks go."""
        self.healths = {k: v for k, v in self.healths.items() if k != name}
        self.backlogs.pop(name, None)
        progress = self._progress.pop(name, None)
        if progress is not None:
            progress.close()
        if self.metrics is not None:
            self.metrics.forget(name)

    def fleet(self, forwarder: str) -> FleetMetrics | None:
        """The observer of this forwarder's part in a fleet (None without metrics)."""
        return self.metrics.fleet(forwarder) if self.metrics is not None else None

    def ready(self) -> dict[str, Any]:
        """The /readyz body."""
        return readiness(self.healths, self.coordination() if self.coordination is not None else None)

    def close(self) -> None:
        """Stop the endpoint and clear the live line."""
        for progress in self._progress.values():
            progress.close()
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
