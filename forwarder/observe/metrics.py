"""Prometheus metrics (prometheus-client), and the wiring of every observer from the config.

``Metrics`` counts what the pipeline reports into its own ``CollectorRegistry`` (never
the library's global one: nothing is built at import time, and several can live in one
process), and reads the gauges from ``progress.Backlog`` and ``health.Health`` when
scraped. The names, all prefixed ``forwarder_``:

=================================  =========  ===========================================
events_read_total                  counter    records read from files (good and bad)
events_sent_total                  counter    events the collector acknowledged
events_failed_total                counter    events in batches not acknowledged (sent again)
events_dead_lettered_total         counter    records never to be forwarded, by ``reason``:
                                              bad_record (not CEF/JSON, too long), too_big
events_altered_total               counter    events sent with their text changed, by
                                              ``reason``: invalid_utf8 (replaced), truncated,
                                              split (output.oversize)
bytes_sent_total                   counter    syslog message bytes acknowledged (unframed)
files_done_total                   counter    files delivered completely
files_quarantined_total            counter    files given up on (on_bad_file: quarantine)
gaps_total, files_missing_total    counter    gaps seen, and the files missing in them
batch_ack_seconds                  histogram  from sending a batch to its acknowledgement
files_pending                      gauge      files after the checkpoint (NaN: probe mode)
bytes_pending                      gauge      their size in the bucket
lag_seconds                        gauge      newest file's time - last delivered file's time
newest_file_timestamp_seconds      gauge      S3 LastModified of the newest file seen
delivered_file_timestamp_seconds   gauge      ... of the file delivered last
checkpoint_sequence                gauge      the checkpoint's file sequence number
checkpoint_records                 gauge      records of that file delivered
checkpoint_complete                gauge      1 when that file is done
collector_up{collector}            gauge      1 reachable, 0 not, per collector heard of
                                              (failover: each of output.hosts tried)
bucket_up                          gauge      the same for the bucket
stuck_seconds                      gauge      time held on a file that cannot be read
ready                              gauge      1 when /readyz says ready
=================================  =========  ===========================================

Counters start at zero with each process (Prometheus' ``rate``/``increase`` handle that);
what the checkpoint keeps across restarts (gaps, quarantine) is in ``forwarder status``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from forwarder.config import Config, split_listen
from forwarder.core.observer import Fanout, Observer
from forwarder.observe.health import Endpoint, Health
from forwarder.observe.logs import show_status
from forwarder.observe.progress import Backlog, Progress
from forwarder.sources.s3 import LogObject

# Measured on loopback (rsyslog, 58 batches of 1000 events): a quarter within 1 ms, median
# ~2.5 ms, all within 25 ms. A WAN adds its round trip; a stalled collector takes up to
# output.ack_timeout_secs (30 s by default).
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics(Observer):
    """The Prometheus side of the observers; ``registry`` is what /metrics serves."""

    def __init__(self, backlog: Backlog, health: Health, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"forwarder_{name}", doc, labels, registry=self.registry)

        self._read = counter("events_read_total", "Records read from files (good and bad).")
        self._sent = counter("events_sent_total", "Events the collector acknowledged.")
        self._failed = counter("events_failed_total", "Events in batches not acknowledged (sent again).")
        self._dead = counter(
            "events_dead_lettered_total",
            "Records that will never be forwarded (each one logged), by reason.",
            ("reason",),
        )
        self._altered = counter(
            "events_altered_total",
            "Events sent with their text changed (each one in the dead-letter file), by reason.",
            ("reason",),
        )
        self._bytes = counter("bytes_sent_total", "Syslog message bytes acknowledged (before framing).")
        self._files = counter("files_done_total", "Files delivered completely.")
        self._quarantined = counter("files_quarantined_total", "Files given up on (on_bad_file: quarantine).")
        self._gaps = counter("gaps_total", "Gaps seen: runs of files missing from the bucket.")
        self._missing = counter("files_missing_total", "Files missing in the gaps seen.")
        self._ack = Histogram(
            "forwarder_batch_ack_seconds",
            "Seconds from sending a batch to its acknowledgement.",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        for reason in ("bad_record", "too_big"):
            self._dead.labels(reason)  # present (at 0) before the first one
        for reason in ("invalid_utf8", "truncated", "split"):
            self._altered.labels(reason)
        self.registry.register(_StateCollector(backlog, health))

    def read(self, count: int) -> None:
        self._read.inc(count)

    def skipped(self, reason: str) -> None:
        self._dead.labels(reason).inc()
        if reason == "bad_record":  # bad records never reach a batch, so read() did not count them
            self._read.inc()

    def altered(self, reason: str) -> None:
        self._altered.labels(reason).inc()

    def sent(self, collector: str, events: int, size: int, ack_secs: float) -> None:
        self._sent.inc(events)
        self._bytes.inc(size)
        self._ack.observe(ack_secs)

    def send_failed(self, collector: str, events: int, reason: str) -> None:
        self._failed.inc(events)

    def file_done(self, obj: LogObject, records: int) -> None:
        self._files.inc()

    def quarantined(self, obj: LogObject) -> None:
        self._quarantined.inc()

    def gap(self, first: int, last: int) -> None:
        self._gaps.inc()
        self._missing.inc(last - first + 1)


class _StateCollector(Collector):
    """Gauges read from the backlog and health state at each scrape."""

    def __init__(self, backlog: Backlog, health: Health) -> None:
        self._backlog = backlog
        self._health = health

    def collect(self) -> Iterator[Any]:
        state = self._backlog.state()
        position = state.position
        health = self._health

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"forwarder_{name}", doc, value=value)

        yield gauge(
            "files_pending", "Files after the checkpoint (NaN with discovery: probe).", state.pending_files
        )
        yield gauge("bytes_pending", "Bytes of the files after the checkpoint.", state.pending_bytes)
        yield gauge("lag_seconds", "Newest file's time minus the last delivered file's time.", state.lag_secs)
        yield gauge(
            "newest_file_timestamp_seconds",
            "S3 LastModified of the newest file seen.",
            _known(state.newest_file_time),
        )
        yield gauge(
            "delivered_file_timestamp_seconds",
            "S3 LastModified of the file delivered last.",
            _known(state.delivered_file_time),
        )
        yield gauge(
            "checkpoint_sequence",
            "Sequence number of the checkpoint's file.",
            position.sequence if position else math.nan,
        )
        yield gauge(
            "checkpoint_records",
            "Records of the checkpoint's file delivered.",
            position.records if position else math.nan,
        )
        yield gauge(
            "checkpoint_complete",
            "1 when the checkpoint's file is done.",
            float(position.complete) if position else math.nan,
        )
        checks = health.checks()
        up = GaugeMetricFamily(
            "forwarder_collector_up",
            "1 when the collector acknowledges, 0 when not, NaN before.",
            labels=["collector"],
        )
        for label, check in list(health.collector_checks.items()):  # one C call: no race with the pipeline
            up.add_metric([label], _flag(check.ok))
        yield up
        yield gauge("bucket_up", "1 when the last listing or download worked.", _flag(checks["bucket"].ok))
        yield gauge("stuck_seconds", "Seconds held on a file that cannot be read.", health.stuck_secs())
        yield gauge("ready", "1 when /readyz says ready.", float(all(c.ok for c in checks.values())))


def _flag(ok: bool | None) -> float:
    return math.nan if ok is None else float(ok)


def _known(epoch: float) -> float:
    return epoch if epoch else math.nan


class Observing:
    """Every observer of a ``run``, built from *config*; ``observer`` goes to the pipeline.

    Backlog tracking and progress lines (and the live line on a terminal: *status*)
    always; with ``metrics.listen``, also health, the Prometheus metrics and the HTTP
    endpoint (listening from construction on).
    """

    def __init__(self, config: Config, status: Callable[[str], None] = show_status) -> None:
        self.backlog = Backlog()
        self.progress = Progress(self.backlog, config.log.progress_interval_secs, status)
        observers: list[Observer] = [self.backlog, self.progress]
        self.health: Health | None = None
        self.metrics: Metrics | None = None
        self.endpoint: Endpoint | None = None
        m = config.metrics
        if m.listen:
            self.health = Health(m.stuck_after_secs, m.probe_interval_secs)
            self.metrics = Metrics(self.backlog, self.health)
            self.endpoint = Endpoint(*split_listen(m.listen), self.metrics.registry, self.health)
            observers += [self.health, self.metrics]
        self.observer = Fanout(observers)

    def close(self) -> None:
        """Stop the endpoint and clear the live line."""
        self.progress.close()
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
