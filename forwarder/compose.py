"""The composition root: config in, wired objects out. ``run``, ``check``, ``status``,
``import-state`` and ``demo`` all build through here, and nothing else builds stages.

- ``build_source``: the source that ``source.kind`` names (each kind's builder in SOURCES);
- ``build_transport``: the transport ``output.protocol`` names (``transports.factory``);
- ``build_pipeline``: a pipeline with its checkpoint, encoder, delivery, dead letters and
  quarantine list. Parts may be passed in ready-made (a test's source or transport), and
  the process' ``core.workers.WorkerPool`` as its reader (``build_reader``: ``workers:``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from forwarder.config import PipelineConfig, SourceConfig
from forwarder.config.checks import state_files
from forwarder.core.badfiles import BadFilePolicy, QuarantineList
from forwarder.core.checkpoint import CheckpointStore
from forwarder.core.deadletter import DeadLetter
from forwarder.core.delivery import Delivery, DeliverySettings
from forwarder.core.observer import Observer
from forwarder.core.pipeline import Pipeline, PipelineSettings
from forwarder.core.reading import Reader, ReadSettings
from forwarder.core.workerprocess import processes_for
from forwarder.core.workers import WorkerPool
from forwarder.formats.encoder import EventEncoder
from forwarder.sources.base import Source
from forwarder.sources.exporter import LogExporterSource
from forwarder.sources.probe import Probing
from forwarder.sources.s3 import Bucket, make_s3_client
from forwarder.transports.base import Transport
from forwarder.transports.factory import make_transport


def build_log_exporter(settings: SourceConfig, observer: Observer) -> LogExporterSource:
    """``kind: log_exporter``: listing or probing one bucket prefix."""

    def client() -> Any:
        return make_s3_client(settings)

    bucket = Bucket(client(), settings, client, settings.download_dir)
    probing = (
        Probing(bucket, settings.key_template, settings.max_gap_files)
        if settings.discovery == "probe"
        else None
    )
    source = LogExporterSource(bucket, settings, probing)
    source.listing.on_listing = observer.listed
    return source


# source.kind -> how to build that source from its settings.
SOURCES: dict[str, Callable[[Any, Observer], Source]] = {"log_exporter": build_log_exporter}


def build_source(config: PipelineConfig, observer: Observer | None = None) -> Source:
    """The source that ``source.kind`` names."""
    return SOURCES[config.source.kind](config.source, observer or Observer())


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
    reader: Reader | None = None,
) -> Pipeline:
    """A pipeline for *config*, its checkpoint not opened yet (``Pipeline.open``)."""
    observer = observer or Observer()
    stop = stop or threading.Event()
    source = source or build_source(config, observer)
    transport = transport or build_transport(config)
    if hasattr(transport, "on_attempt"):  # failover: every collector's outcome, not just the active one
        transport.on_attempt = observer.collector
    observer.collectors(getattr(transport, "labels", [transport.label]))
    files = state_files(config)
    src, out = config.source, config.output
    encoder = EventEncoder(out, config.parser) if clock is None else EventEncoder(out, config.parser, clock)
    delivery = Delivery(
        transport,
        DeliverySettings(out.retry_initial_secs, out.retry_max_secs, out.max_events_per_sec),
        observer,
        stop,
        once,
    )
    settings = PipelineSettings(
        poll_interval_secs=src.poll_interval_secs,
        prefetch_files=src.prefetch_files,
        prefetch_bytes=src.prefetch_bytes,
        bad_files=BadFilePolicy(src.max_attempts, src.bad_file_retry_secs, src.on_bad_file),
        reading=read_settings(config, source, transport),
    )
    return Pipeline(
        config.name,
        source,
        CheckpointStore(files["checkpoint.path"], source.id),
        encoder,
        delivery,
        DeadLetter(files["parser.dead_letter_path"]),
        QuarantineList(files["checkpoint.quarantine_path"]),
        settings,
        observer,
        stop,
        reader,
    )
