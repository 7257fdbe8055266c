"""Steering: the runner runs exactly the pipelines whose leases this forwarder holds, and
those that read a shared queue (every forwarder reads it: the queue spreads the work).

``run``'s main loop calls ``step`` a few times a second. When the coordinator's
``wanted()`` changed — a lease taken, one lost, one to let go — the runner is told
(``Runner.reload`` with those pipelines of the config): new ones start, the others stop
after their batch in flight (a lost one has stopped already, at its fence). Then the
coordinator learns which stopped (``Coordinator.stopped``: a lease let go is deleted only
now, after its pipeline saved), and their observers are forgotten (/readyz and /metrics
show only the pipelines held here).

This runs on the main thread, which may wait while a pipeline finishes its batch; the
coordinator renews the leases meanwhile on its own thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from forwarder.config import Config
from forwarder.coordination.coordinator import Coordinator
from forwarder.coordination.lease import Lease
from forwarder.core.runner import Runner


class Steering:
    """Keeps *runner* running what *coordinator* holds; *forget* drops a pipeline's observers."""

    def __init__(self, coordinator: Coordinator, runner: Runner, forget: Callable[[str], None]) -> None:
        self.coordinator = coordinator
        self._runner = runner
        self._forget = forget
        self._running: dict[str, Lease] = {}
        self._started = False  # the first step always tells the runner (queue pipelines start)

    def step(self, config: Config, reason: str = "fleet") -> None:
        """Apply what the coordinator holds now to the runner (*config*'s pipelines)."""
        wanted = self.coordinator.wanted()
        gone = [lease for name, lease in self._running.items() if wanted.get(name) is not lease]
        if self._started and not gone and wanted.keys() == self._running.keys():
            return
        self._started = True
        held = tuple(p for p in config.pipelines if p.name in wanted or p.shared_by_queue)
        self._runner.reload(dataclasses.replace(config, pipelines=held), reason)
        self._running = wanted
        self.coordinator.stopped(gone)
        for lease in gone:
            if lease.pipeline not in wanted:
                self._forget(lease.pipeline)

    def reload(self, config: Config) -> None:
        """SIGHUP: the config's pipelines are the fleet's now; changed ones restart here."""
        self.coordinator.pipelines = [p.name for p in config.pipelines if not p.shared_by_queue]
        self.step(config)
        held = tuple(p for p in config.pipelines if p.name in self._running or p.shared_by_queue)
        self._runner.reload(dataclasses.replace(config, pipelines=held), "SIGHUP")
