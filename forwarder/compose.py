"""The composition root: config in, wired objects out. ``run``, ``check``, ``status``,
``import-state`` and ``demo`` all build through here, and nothing else builds stages.

- ``build_source``: the source that ``source.kind`` names (each kind's builder in SOURCES);
- ``build_transport``: the transport ``output.protocol`` names (``transports.factory``);
- ``build_pipeline``: a pipeline with its checkpoint, encoder, delivery, dead letters and
  quarantine list. Parts may be passed in ready-made (a test's source or transport), and
  the process' ``core.workers.WorkerPool`` as its reader (``build_reader``: ``workers:``);
- ``build_coordinator``: with ``coordination.kind: s3``, this forwarder's part in the fleet;
  a pipeline built with it (*fleet*) keeps its state in S3 beside its lease, fenced by it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from forwarder.config import (
    AuditFeedConfig,
    CatoApiAccess,
    Config,
    EventsFeedConfig,
    PipelineConfig,
    S3Coordination,
    SourceConfig,
)
from forwarder.config.checks import state_files
from forwarder.config.sources import EventsIntegrationConfig, S3Objects
from forwarder.coordination.coordinator import Coordinator, FleetObserver
from forwarder.coordination.members import default_id
from forwarder.coordination.objects import Objects
from forwarder.coordination.state import S3Checkpoint, S3DeadLetter, S3Quarantine
from forwarder.coordination.view import FleetView
from forwarder.core.badfiles import BadFilePolicy, QuarantineList
from forwarder.core.checkpoint import Checkpoint, CheckpointStore
from forwarder.core.deadletter import DeadLetter
from forwarder.core.delivery import Delivery, DeliverySettings
from forwarder.core.fence import UNFENCED, Fence
from forwarder.core.observer import Observer
from forwarder.core.pipeline import Pipeline, PipelineSettings
from forwarder.core.reading import Reader, ReadSettings
from forwarder.core.standing import Receipt
from forwarder.core.workerprocess import processes_for
from forwarder.core.workers import WorkerPool
from forwarder.errors import LeaseLost
from forwarder.formats.encoder import EventEncoder
from forwarder.sources.auditfeed import AuditFeedSource
from forwarder.sources.base import Source
from forwarder.sources.catoapi import CallBudget, CatoApi
from forwarder.sources.eventsfeed import EventsFeedSource
from forwarder.sources.exporter import LogExporterSource
from forwarder.sources.feedhealth import FeedHealth
from forwarder.sources.polling import ListingSource
from forwarder.sources.probe import Probing
from forwarder.sources.queue import Queue, make_sqs_client
from forwarder.sources.s3 import Bucket
from forwarder.sources.s3client import make_s3_client
from forwarder.sources.sqs import QueueSource
from forwarder.transports.base import Transport
from forwarder.transports.factory import make_transport


def _bucket(settings: S3Objects) -> Bucket:
    """The source's bucket, able to build its S3 client again (rotated credentials)."""

    def client() -> Any:
        return make_s3_client(settings)

    return Bucket(client(), settings, client, settings.download_dir)


def build_log_exporter(
    settings: SourceConfig, observer: Observer, stop: threading.Event
) -> LogExporterSource:
    """``kind: log_exporter``: listing or probing one bucket prefix."""
    bucket = _bucket(settings)
    probing = (
        Probing(bucket, settings.key_template, settings.max_gap_files)
        if settings.discovery == "probe"
        else None
    )
    source = LogExporterSource(bucket, settings, probing)
    source.listing.on_listing = observer.listed
    return source


def build_events_integration(
    settings: EventsIntegrationConfig, observer: Observer, stop: threading.Event
) -> Source:
    """``kind: events_integration``: Cato's objects in the customer's bucket, by listing or SQS."""
    bucket = _bucket(settings)
    if settings.discovery == "sqs":
        queued = QueueSource(bucket, settings, Queue(settings, lambda: make_sqs_client(settings)))
        queued.on_listing, queued.on_ignored = observer.listed, observer.message_ignored
        return queued
    source = ListingSource(bucket, settings)
    source.on_listing = observer.listed
    return source


def _cato_api(settings: CatoApiAccess, operation: str, stop: threading.Event) -> CatoApi:
    """The API client of a Cato API source, with its call budget."""
    return CatoApi(
        settings.url,
        settings.api_key,
        operation,
        CallBudget(settings.max_calls_per_min),
        stop,
        ca_file=settings.ca_file,
        connect_timeout_secs=settings.connect_timeout_secs,
        read_timeout_secs=settings.read_timeout_secs,
    )


def build_events_feed(
    settings: EventsFeedConfig, observer: Observer, stop: threading.Event
) -> EventsFeedSource:
    """``kind: events_feed``: Cato's eventsFeed for the accounts, a page at a time."""
    api = _cato_api(settings, "eventsFeed", stop)
    health = FeedHealth(f"{api.url} (eventsFeed)", settings.marker_max_age_secs, observer.source_reached)
    return EventsFeedSource(settings, api, health)


def build_audit_feed(settings: AuditFeedConfig, observer: Observer, stop: threading.Event) -> AuditFeedSource:
    """``kind: audit_feed``: Cato's auditFeed for the accounts, by time frame."""
    api = _cato_api(settings, "auditFeed", stop)
    health = FeedHealth(f"{api.url} (auditFeed)", settings.marker_max_age_secs, observer.source_reached)
    return AuditFeedSource(settings, api, health)


# source.kind -> how to build that source from its settings, the pipeline's observer and
# its stop event (which cuts a source's own waits short: rate limits, retries).
SOURCES: dict[str, Callable[[Any, Observer, threading.Event], Source]] = {
    "log_exporter": build_log_exporter,
    "events_integration": build_events_integration,
    "events_feed": build_events_feed,
    "audit_feed": build_audit_feed,
}


def build_source(
    config: PipelineConfig, observer: Observer | None = None, stop: threading.Event | None = None
) -> Source:
    """The source that ``source.kind`` names."""
    return SOURCES[config.source.kind](config.source, observer or Observer(), stop or threading.Event())


def build_transport(config: PipelineConfig) -> Transport:
    """The transport that ``output.protocol`` names."""
    return make_transport(config.output)


def read_settings(config: PipelineConfig, source: Source, transport: Transport) -> ReadSettings:
    """How the pipeline reads objects into batches (parser, batch size, message size limit)."""
    output = config.output
    limits = [limit for limit in (output.max_message_bytes, transport.max_message_bytes) if limit]
    limit = min(limits) if limits else None
    carried = transport.max_message_bytes
    name = (
        f"what {transport.label} can carry"
        if limit is not None and limit == carried
        else "output.max_message_bytes"
    )
    return ReadSettings(
        unpack=source.unpack,
        format=config.parser.format,
        max_record_bytes=config.parser.max_record_bytes,
        max_events=config.batch.max_events,
        limit=limit,
        limit_name=name,
        oversize=output.oversize,
        header=output.header,
    )


def build_reader(workers: int | str) -> WorkerPool | None:
    """The process' worker pool for ``workers`` (shared by every pipeline; ``close()`` it at
    exit), or None for ``workers: 1``: each pipeline reads in its own thread."""
    processes = processes_for(workers)
    return WorkerPool(processes) if processes > 1 else None


def build_pipeline(
    config: PipelineConfig,
    *,
    stop: threading.Event | None = None,
    once: bool = False,
    observer: Observer | None = None,
    source: Source | None = None,
    transport: Transport | None = None,
    clock: Callable[[], float] | None = None,
    fleet: Coordinator | None = None,
    reader: Reader | None = None,
) -> Pipeline:
    """A pipeline for *config*, its checkpoint not opened yet (``Pipeline.open``); with
    *fleet*, under the lease it holds for it (LeaseLost when it holds none)."""
    observer = observer or Observer()
    stop = stop or threading.Event()
    source = source or build_source(config, observer, stop)
    transport = transport or build_transport(config)
    if hasattr(transport, "on_attempt"):  # failover: every collector's outcome, not just the active one
        transport.on_attempt = observer.collector
    observer.collectors(getattr(transport, "labels", [transport.label]))
    src, out = config.source, config.output
    encoder = EventEncoder(out, config.parser) if clock is None else EventEncoder(out, config.parser, clock)
    store, letters, quarantine, fence = _state(config, source.id, fleet)
    delivery: Delivery[Receipt] = Delivery(
        transport,
        DeliverySettings(
            out.retry_initial_secs, out.retry_max_secs, out.max_events_per_sec, out.max_unacked_bytes
        ),
        observer,
        stop,
        once,
        fence,
    )
    settings = PipelineSettings(
        poll_interval_secs=src.poll_interval_secs,
        checkpoint_interval_secs=config.checkpoint.interval_secs,
        prefetch_files=src.prefetch_files,
        prefetch_bytes=src.prefetch_bytes,
        bad_files=BadFilePolicy(src.max_attempts, src.bad_file_retry_secs, src.on_bad_file),
        reading=read_settings(config, source, transport),
    )
    return Pipeline(
        config.name,
        source,
        store,
        encoder,
        delivery,
        letters,
        quarantine,
        settings,
        observer,
        stop,
        reader,
    )


def _state(
    config: PipelineConfig, source_id: str, fleet: Coordinator | None
) -> tuple[Checkpoint, DeadLetter, QuarantineList, Fence]:
    """Where a pipeline keeps its state: local files, or (in a fleet) S3 beside its lease."""
    if fleet is None:
        files = state_files(config)
        return (
            CheckpointStore(files["checkpoint.path"], source_id),
            DeadLetter(files["parser.dead_letter_path"]),
            QuarantineList(files["checkpoint.quarantine_path"]),
            UNFENCED,
        )
    lease = fleet.lease(config.name)
    if lease is None:
        raise LeaseLost(f"pipeline {config.name}: lease not held by this forwarder")
    objects = fleet.objects
    return (
        S3Checkpoint(objects, config.name, source_id, lease),
        S3DeadLetter(objects, config.name, lease),
        S3Quarantine(objects, config.name, lease),
        lease,
    )


def coordination_objects(settings: S3Coordination) -> Objects:
    """The fleet's bucket and prefix. Its S3 calls time out within a renewal period: a lease
    renewal that hangs would be worth nothing anyway."""
    every = settings.renew_every
    access = dataclasses.replace(
        settings,
        connect_timeout_secs=min(settings.connect_timeout_secs, every),
        read_timeout_secs=min(settings.read_timeout_secs, every),
    )

    def client() -> Any:
        return make_s3_client(access, "coordination")

    return Objects(client(), settings.bucket, settings.prefix, client)


def build_coordinator(
    config: Config, observer: FleetObserver | None = None, greedy: bool = False
) -> Coordinator | None:
    """This forwarder's part in the fleet sharing *config*'s pipelines (None: kind none)."""
    settings = config.coordination
    if not isinstance(settings, S3Coordination):
        return None
    names = [p.name for p in config.pipelines if not p.shared_by_queue]
    me = settings.forwarder_id or default_id()
    return Coordinator(settings, names, coordination_objects(settings), me, observer, greedy)


def build_fleet_view(config: Config) -> FleetView | None:
    """The fleet's bucket to read (status, check); None with coordination.kind: none."""
    settings = config.coordination
    if not isinstance(settings, S3Coordination):
        return None
    return FleetView(settings, coordination_objects(settings))
