"""Prometheus metrics (prometheus-client): one registry per process, a ``pipeline`` label on all.

``Metrics`` owns the counters and reads the gauges from each pipeline's ``Backlog`` and
``Health`` when scraped; ``Metrics.pipeline(name, ...)`` is the observer one pipeline
reports to. Its own ``CollectorRegistry`` (never the library's global one: nothing is
built at import time). The names, all prefixed ``forwarder_``, all labelled ``pipeline``:

=================================  =========  ===========================================
events_read_total                  counter    records read from objects (good and bad)
events_sent_total                  counter    events the collector acknowledged
events_failed_total                counter    events in batches not acknowledged (sent again)
events_dead_lettered_total         counter    records never to be forwarded, by ``reason``:
                                              bad_record (not CEF/JSON, too long), too_big
events_altered_total               counter    events sent with their text changed, by
                                              ``reason``: invalid_utf8 (replaced), truncated,
                                              split (output.oversize)
bytes_sent_total                   counter    syslog message bytes acknowledged (unframed)
files_done_total                   counter    objects delivered completely
files_quarantined_total            counter    objects given up on (on_bad_file: quarantine)
gaps_total, files_missing_total    counter    gaps seen, and the objects missing in them
batch_ack_seconds                  histogram  from sending a batch to its acknowledgement
sqs_messages_ignored_total         counter    queue messages deleted with nothing to deliver, by
                                              ``reason``: test_event, other_event, other_prefix,
                                              duplicate (events_integration, discovery: sqs)
files_pending                      gauge      objects still to deliver (NaN: not listed; SQS:
                                              objects received and not done)
bytes_pending                      gauge      their size
oldest_pending_age_seconds         gauge      now - S3 time of the oldest of them (0: none)
ledger_objects                     gauge      objects the ledger names as done (events_integration)
lag_seconds                        gauge      newest object's time - delivered object's time
newest_file_timestamp_seconds      gauge      S3 LastModified of the newest object seen
delivered_file_timestamp_seconds   gauge      ... of the object delivered last
checkpoint_sequence                gauge      the checkpoint's file sequence number (log
                                              exporter; NaN for other sources)
checkpoint_records                 gauge      records of that object delivered
checkpoint_complete                gauge      1 when that file is done (log exporter)
collector_up{collector}            gauge      1 reachable, 0 not, per collector heard of
                                              (failover: each of output.hosts tried)
bucket_up                          gauge      the same for the source
stuck_seconds                      gauge      time held on an object that cannot be read
ready                              gauge      1 when /readyz says this pipeline is ready
=================================  =========  ===========================================

In a fleet (``coordination.kind: s3``) two more, labelled ``forwarder`` (this forwarder's
id) instead of ``pipeline``:

=================================  =========  ===========================================
pipelines_owned                    gauge      pipelines whose lease this forwarder holds
lease_renew_failures_total         counter    lease renewals S3 did not answer (each one
                                              logged with its pipeline)
=================================  =========  ===========================================

Counters start at zero with each process (Prometheus' ``rate``/``increase`` handle that);
what the checkpoint keeps across restarts (gaps, quarantine) is in ``forwarder status``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from forwarder.core.observer import Observer
from forwarder.observe.gauges import StateCollector
from forwarder.observe.health import Health
from forwarder.observe.progress import Backlog
from forwarder.sources.base import Gap, LogObject

# Measured on loopback (rsyslog, 58 batches of 1000 events): a quarter within 1 ms, median
# ~2.5 ms, all within 25 ms. A WAN adds its round trip; a stalled collector takes up to
# output.ack_timeout_secs (30 s by default).
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
DEAD_REASONS = ("bad_record", "too_big")
IGNORED_REASONS = ("test_event", "other_event", "other_prefix", "duplicate")
ALTERED_REASONS = ("invalid_utf8", "truncated", "split")


class Metrics:
    """The process's metrics; ``registry`` is what /metrics serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"forwarder_{name}", doc, ("pipeline", *labels), registry=self.registry)

        self.read = counter("events_read_total", "Records read from objects (good and bad).")
        self.sent = counter("events_sent_total", "Events the collector acknowledged.")
        self.failed = counter("events_failed_total", "Events in batches not acknowledged (sent again).")
        self.dead = counter(
            "events_dead_lettered_total",
            "Records that will never be forwarded (each one logged), by reason.",
            ("reason",),
        )
        self.altered = counter(
            "events_altered_total",
            "Events sent with their text changed (each one in the dead-letter file), by reason.",
            ("reason",),
        )
        self.bytes = counter("bytes_sent_total", "Syslog message bytes acknowledged (before framing).")
        self.files = counter("files_done_total", "Objects delivered completely.")
        self.quarantined = counter("files_quarantined_total", "Objects given up on (quarantined).")
        self.gaps = counter("gaps_total", "Gaps seen: runs of objects missing from the source.")
        self.missing = counter("files_missing_total", "Objects missing in the gaps seen.")
        self.ignored = counter(
            "sqs_messages_ignored_total",
            "Queue messages deleted with nothing to deliver, by reason.",
            ("reason",),
        )
        self.ack = Histogram(
            "forwarder_batch_ack_seconds",
            "Seconds from sending a batch to its acknowledgement.",
            ("pipeline",),
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        # Each pipeline's gauges: replaced (never changed in place) when a pipeline comes or goes.
        self.state: dict[str, tuple[Backlog, Health]] = {}
        self.registry.register(StateCollector(lambda: self.state))

    def pipeline(self, name: str, backlog: Backlog, health: Health) -> PipelineMetrics:
        """The observer pipeline *name* reports to; its gauges come from *backlog* and *health*."""
        self.state = {**self.state, name: (backlog, health)}
        return PipelineMetrics(self, name)

    def fleet(self, forwarder: str) -> FleetMetrics:
        """The observer of this forwarder's part in a fleet (``forwarder.coordination``)."""
        owned = Gauge(
            "forwarder_pipelines_owned",
            "Pipelines whose lease this forwarder holds.",
            ("forwarder",),
            registry=self.registry,
        )
        failures = Counter(
            "forwarder_lease_renew_failures_total",
            "Lease renewals S3 did not answer.",
            ("forwarder",),
            registry=self.registry,
        )
        return FleetMetrics(owned.labels(forwarder), failures.labels(forwarder))

    def forget(self, name: str) -> None:
        """Pipeline *name* is gone (a reload removed it, or its lease moved to another
        forwarder): its series leave /metrics."""
        self.state = {k: v for k, v in self.state.items() if k != name}
        singles: tuple[Any, ...] = (
            self.read,
            self.sent,
            self.failed,
            self.bytes,
            self.files,
            self.quarantined,
        )
        for metric in (*singles, self.gaps, self.missing, self.ack):
            _remove(metric, (name,))
        for reason in DEAD_REASONS:
            _remove(self.dead, (name, reason))
        for reason in ALTERED_REASONS:
            _remove(self.altered, (name, reason))
        for reason in IGNORED_REASONS:
            _remove(self.ignored, (name, reason))


def _remove(metric: Any, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # never reported
        metric.remove(*labels)


class FleetMetrics:
    """This forwarder's fleet series: pipelines owned, renewals S3 did not answer."""

    def __init__(self, owned: Any, failures: Any) -> None:
        self._owned = owned
        self._failures = failures
        owned.set(0)

    def held(self, count: int) -> None:
        self._owned.set(count)

    def renew_failed(self, pipeline: str) -> None:
        self._failures.inc()


class PipelineMetrics(Observer):
    """The Prometheus side of one pipeline's observers: its children of ``Metrics``' series."""

    def __init__(self, metrics: Metrics, name: str) -> None:
        self._read = metrics.read.labels(name)
        self._sent = metrics.sent.labels(name)
        self._failed = metrics.failed.labels(name)
        self._dead = {reason: metrics.dead.labels(name, reason) for reason in DEAD_REASONS}
        self._altered = {reason: metrics.altered.labels(name, reason) for reason in ALTERED_REASONS}
        self._bytes = metrics.bytes.labels(name)
        self._files = metrics.files.labels(name)
        self._quarantined = metrics.quarantined.labels(name)
        self._gaps = metrics.gaps.labels(name)
        self._missing = metrics.missing.labels(name)
        self._ack = metrics.ack.labels(name)
        self._ignored = {reason: metrics.ignored.labels(name, reason) for reason in IGNORED_REASONS}

    def read(self, count: int) -> None:
        self._read.inc(count)

    def skipped(self, reason: str) -> None:
        self._dead[reason].inc()
        if reason == "bad_record":  # bad records never reach a batch, so read() did not count them
            self._read.inc()

    def altered(self, reason: str) -> None:
        self._altered[reason].inc()

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

    def gap(self, gap: Gap) -> None:
        self._gaps.inc()
        self._missing.inc(gap.missing)

    def message_ignored(self, reason: str) -> None:
        self._ignored[reason].inc()
