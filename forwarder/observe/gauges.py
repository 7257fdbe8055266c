"""The gauges of ``forwarder.observe.metrics``, read at each scrape from every pipeline's
``Backlog`` and ``Health`` (nothing is counted here: these are states)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from forwarder.observe.health import Health
from forwarder.observe.progress import Backlog
from forwarder.sources.ledger import ledger_size

# Each pipeline's backlog and health, as they are at the moment of a scrape.
States = Callable[[], Mapping[str, tuple[Backlog, Health]]]


class StateCollector(Collector):
    """Gauges read from each pipeline's backlog and health at each scrape."""

    def __init__(self, states: States) -> None:
        self._states = states

    def collect(self) -> Iterator[Any]:
        families: dict[str, GaugeMetricFamily] = {}

        def gauge(name: str, doc: str, pipeline: str, value: float, **labels: str) -> None:
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(
                    f"forwarder_{name}", doc, labels=["pipeline", *labels]
                )
            family.add_metric([pipeline, *labels.values()], value)

        for pipeline, (backlog, health) in self._states().items():
            state = backlog.state()
            cursor = state.position.cursor if state.position else {}
            checks = health.checks()
            for name, doc, value in (
                ("files_pending", "Objects still to deliver (NaN: not listed).", state.pending_files),
                ("bytes_pending", "Bytes of the objects still to deliver.", state.pending_bytes),
                ("oldest_pending_age_seconds", "Seconds since the oldest object to deliver was written.",
                 _age(state.oldest_pending_time, state.pending_files)),
                ("ledger_objects", "Objects the ledger names as done (events_integration).",
                 _number(ledger_size(cursor))),
                ("lag_seconds", "Newest object's time minus the delivered object's time.", state.lag_secs),
                ("newest_file_timestamp_seconds", "S3 LastModified of the newest object seen.",
                 _known(state.newest_file_time)),
                ("delivered_file_timestamp_seconds", "S3 LastModified of the object delivered last.",
                 _known(state.delivered_file_time)),
                ("checkpoint_sequence", "Sequence number of the checkpoint's file (log exporter).",
                 _number(cursor.get("sequence"))),
                ("checkpoint_records", "Records of the checkpoint's object delivered.",
                 state.position.records if state.position else math.nan),
                ("checkpoint_complete", "1 when the checkpoint's file is done (log exporter).",
                 float(bool(cursor.get("complete"))) if "sequence" in cursor else math.nan),
                ("bucket_up", "1 when the last listing or download worked.", _flag(checks["bucket"].ok)),
                ("stuck_seconds", "Seconds held on an object that cannot be read.", health.stuck_secs()),
                ("ready", "1 when /readyz says this pipeline is ready.",
                 float(all(c.ok for c in checks.values()))),
            ):  # fmt: skip
                gauge(name, doc, pipeline, value)
            for label, check in list(health.collector_checks.items()):  # one C call: no race
                gauge("collector_up", "1 when the collector acknowledges, 0 when not.", pipeline,
                      _flag(check.ok), collector=label)  # fmt: skip
        yield from families.values()


def _age(epoch: float, pending: float) -> float:
    if math.isnan(pending):
        return math.nan
    return max(0.0, time.time() - epoch) if epoch else 0.0


def _flag(ok: bool | None) -> float:
    return math.nan if ok is None else float(ok)


def _known(epoch: float) -> float:
    return epoch if epoch else math.nan


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else math.nan
