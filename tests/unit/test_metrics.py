"""Unit tests for forwarder.observe.metrics and the observer wiring: counts match what a pipeline did."""

from __future__ import annotations

import io
import math
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from prometheus_client import CollectorRegistry

from forwarder.compose import build_pipeline
from forwarder.config import Config, parse_config
from forwarder.core.checkpoint import Position
from forwarder.core.observer import Fanout, Observer
from forwarder.errors import SendError
from forwarder.observe.health import Health
from forwarder.observe.metrics import Metrics
from forwarder.observe.progress import Backlog
from forwarder.observe.wiring import Observing
from forwarder.samples import make_zip
from forwarder.sources.base import LogObject
from forwarder.sources.exporter import LogExporterSource
from forwarder.sources.s3 import Bucket

BUCKET, PREFIX = "cato-logs", "KEY/"
T0 = datetime(2026, 11, 28, 7, 0, 0, tzinfo=timezone.utc)


def event(i: int) -> bytes:
    return f"CEF:0|Cato Networks|Cato SASE Platform|1.0|Security|e{i}|5|".encode()


class FakeS3Client:
    """The calls the exporter's source makes, over in-memory objects with LastModified times."""

    def __init__(self, objects: dict[str, tuple[bytes, datetime]]) -> None:
        self.objects = objects

    def get_paginator(self, name: str) -> FakeS3Client:
        return self

    def paginate(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:  # noqa: N803
        yield {
            "Contents": [
                {"Key": k, "Size": len(body), "LastModified": at}
                for k, (body, at) in sorted(self.objects.items())
            ]
        }

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        key = Key
        data = self.objects[key][0]
        return {"Body": StreamingBody(io.BytesIO(data), len(data))}


class ListTransport:
    """Acknowledges every batch, after failing the first *failures* attempts."""

    label = "tcp://collector:514"
    max_message_bytes: int | None = None
    paces_itself = False

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.messages: list[bytes] = []
        self.unreported = 0

    def write(self, messages: list[bytes]) -> None:
        if self.failures:
            self.failures -= 1
            raise SendError(f"{self.label}: connection refused")
        self.messages += messages
        self.unreported += 1

    def acknowledged(self, wait_secs: float) -> int:
        count, self.unreported = self.unreported, 0
        return count

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None


def make_config(tmp_path: Path, extra: str = "", output: str = "") -> Config:
    return parse_config(
        f"source:\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n  prefetch_files: 0\n  download_dir: {tmp_path}\n"
        f"output:\n  header: none\n  retry_initial_secs: 0.01\n  retry_max_secs: 0.02\n{output}"
        f"checkpoint:\n  path: {tmp_path / 'cp.json'}\nbatch:\n  max_events: 2\n{extra}",
        env={},
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"pipeline": "default", **labels})
    assert value is not None, name
    return value


def run_pipeline(tmp_path: Path, transport: ListTransport) -> tuple[CollectorRegistry, Health]:
    """Forward a bucket of three files (5, 3 and 1 events; 2 bad lines) with metrics on."""
    files = {
        f"{PREFIX}CATO1.zip": make_zip([("a.log", b"\n".join([event(i) for i in range(5)]) + b"\nbad\n")]),
        f"{PREFIX}CATO2.zip": make_zip([("a.log", b"\n".join([event(i) for i in range(3)]) + b"\nnope\n")]),
        f"{PREFIX}CATO4.zip": make_zip([("a.log", event(9))]),  # 3 is missing: a gap
    }
    client = FakeS3Client({k: (v, T0.replace(minute=i)) for i, (k, v) in enumerate(files.items())})
    config = make_config(tmp_path).pipeline()
    source = LogExporterSource(Bucket(client, config.source, download_dir=str(tmp_path)), config.source)
    backlog, health, metrics = Backlog(), Health(600, 5), Metrics()
    observer = Fanout([backlog, health, metrics.pipeline("default", backlog, health)])
    source.listing.on_listing = observer.listed  # as compose.build_source wires it
    pipeline = build_pipeline(config, source=source, transport=transport, observer=observer)
    pipeline.open()
    try:
        pipeline.run_pass()
    finally:
        pipeline.close()
    return metrics.registry, health


def test_metrics_count_what_the_pipeline_did(tmp_path: Path) -> None:
    """Events read, sent, dead-lettered, bytes, files, gaps, batches and the checkpoint, as they happened."""
    transport = ListTransport()
    registry, health = run_pipeline(tmp_path, transport)
    assert sample(registry, "forwarder_events_sent_total") == len(transport.messages) == 9
    assert sample(registry, "forwarder_bytes_sent_total") == sum(map(len, transport.messages))
    assert sample(registry, "forwarder_events_read_total") == 11  # 9 sent + 2 bad
    assert sample(registry, "forwarder_events_dead_lettered_total", reason="bad_record") == 2
    assert sample(registry, "forwarder_events_failed_total") == 0
    assert sample(registry, "forwarder_files_done_total") == 3
    assert (
        sample(registry, "forwarder_gaps_total") == 1
        and sample(registry, "forwarder_files_missing_total") == 1
    )
    assert sample(registry, "forwarder_batch_ack_seconds_count") == 3 + 2 + 1  # batches of 2
    assert sample(registry, "forwarder_checkpoint_sequence") == 4
    assert sample(registry, "forwarder_checkpoint_complete") == 1
    assert sample(registry, "forwarder_files_pending") == 0 and sample(registry, "forwarder_lag_seconds") == 0
    assert sample(registry, "forwarder_newest_file_timestamp_seconds") == T0.replace(minute=2).timestamp()
    assert sample(registry, "forwarder_collector_up", collector="tcp://collector:514") == 1
    assert sample(registry, "forwarder_bucket_up") == 1
    assert health.checks()["bucket"].ok is True


def test_failed_batches_count_their_events_and_mark_the_collector_down(tmp_path: Path) -> None:
    """A batch the collector did not take counts as failed events; once sent, the collector is up."""
    transport = ListTransport(failures=2)
    registry, _ = run_pipeline(tmp_path, transport)
    assert sample(registry, "forwarder_events_failed_total") == 4  # the first batch (2 events), twice
    assert sample(registry, "forwarder_events_sent_total") == 9
    assert sample(registry, "forwarder_collector_up", collector="tcp://collector:514") == 1


def test_gauges_are_nan_until_known() -> None:
    """Before anything happened, gauges say "unknown" (NaN), never a made-up 0."""
    metrics = Metrics()
    metrics.pipeline("default", Backlog(), Health(600, 5))
    registry = metrics.registry
    for name in ("forwarder_files_pending", "forwarder_lag_seconds", "forwarder_checkpoint_sequence"):
        assert math.isnan(sample(registry, name))
    assert math.isnan(sample(registry, "forwarder_bucket_up"))
    assert sample(registry, "forwarder_ready") == 0
    assert (
        registry.get_sample_value("forwarder_collector_up", {"pipeline": "default", "collector": ""}) is None
    )


def test_each_metrics_has_its_own_registry() -> None:
    """Two Metrics in one process do not collide (no global registry)."""
    one, two = Metrics(), Metrics()
    one.pipeline("default", Backlog(), Health(600, 5)).sent("tcp://c", 5, 50, 0.001)
    two.pipeline("default", Backlog(), Health(600, 5))
    assert sample(one.registry, "forwarder_events_sent_total") == 5
    assert sample(two.registry, "forwarder_events_sent_total") == 0


def test_without_metrics_listen_nothing_listens_and_nothing_probes(tmp_path: Path) -> None:
    """metrics.listen empty: backlog and progress only; no endpoint, no idle probes."""
    observing = Observing(make_config(tmp_path))
    assert observing.endpoint is None and observing.metrics is None
    assert not observing.pipeline("default").probe_due()
    observing.close()


def test_with_metrics_listen_the_endpoint_serves_the_registry(tmp_path: Path) -> None:
    """metrics.listen set: the endpoint serves this run's metrics, and close() frees the port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    observing = Observing(make_config(tmp_path, f'metrics:\n  listen: "127.0.0.1:{port}"\n'))
    try:
        observer = observing.pipeline("default")
        assert observer.probe_due()  # health asks for idle probes
        observer.sent("tcp://c", 7, 70, 0.001)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'forwarder_events_sent_total{pipeline="default"} 7.0' in body
    finally:
        observing.close()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the endpoint itself does
        again.bind(("127.0.0.1", port))
        again.listen()  # nobody listens there any more


class Recorder(Observer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def saved(self, position: Position) -> None:
        self.calls.append(("saved", position))

    def file_done(self, obj: LogObject, records: int) -> None:
        self.calls.append(("file_done", records))

    def probe_due(self) -> bool:
        self.calls.append(("probe_due", None))
        return False


def test_fanout_passes_every_call_on_in_order() -> None:
    """Fanout calls each observer in turn, and asks every one whether a probe is due."""
    first, second = Recorder(), Recorder()
    fanout = Fanout([first, second])
    fanout.saved(Position({"sequence": 1}, 0))
    fanout.file_done(LogObject("k", 1), 5)
    assert not fanout.probe_due()
    assert (
        first.calls
        == second.calls
        == [
            ("saved", Position({"sequence": 1}, 0)),
            ("file_done", 5),
            ("probe_due", None),
        ]
    )


@pytest.mark.parametrize("method", [m for m in vars(Observer) if not m.startswith("_")])
def test_fanout_implements_every_observer_method(method: str) -> None:
    """A new Observer method must be passed on by Fanout too."""
    assert method in vars(Fanout)


@pytest.mark.parametrize("policy", ["truncate", "split"])
def test_events_sent_changed_are_counted_by_reason(tmp_path: Path, policy: str) -> None:
    """Invalid UTF-8 replaced, and a message over max_message_bytes truncated or split: sent,
    and counted in events_altered_total as well as written to the dead-letter file."""
    long_event = event(0) + b"msg=" + b"x" * 700
    lines = [event(1), b"CEF:0|Cato|SASE|1.0|Security|caf\xe9|5|", long_event, event(2)]
    client = FakeS3Client({f"{PREFIX}CATO1.zip": (make_zip([("a.log", b"\n".join(lines))]), T0)})
    config = make_config(tmp_path, output=f"  max_message_bytes: 600\n  oversize: {policy}\n").pipeline()
    source = LogExporterSource(Bucket(client, config.source, download_dir=str(tmp_path)), config.source)
    metrics = Metrics()
    observer = metrics.pipeline("default", Backlog(), Health(600, 5))
    transport = ListTransport()
    pipeline = build_pipeline(config, once=True, source=source, transport=transport, observer=observer)
    pipeline.open()
    pipeline.run_pass()
    pipeline.close()
    registry = metrics.registry
    assert sample(registry, "forwarder_events_altered_total", reason="invalid_utf8") == 1
    assert sample(registry, "forwarder_events_altered_total", reason="truncated") == (policy == "truncate")
    assert sample(registry, "forwarder_events_altered_total", reason="split") == (policy == "split")
    assert sample(registry, "forwarder_events_dead_lettered_total", reason="too_big") == 0
    assert b"caf\xef\xbf\xbd" in b"".join(transport.messages)  # U+FFFD
    letters = (tmp_path / "dead_letter.jsonl").read_text().splitlines()
    assert len(letters) == (2 if policy == "truncate" else 1)  # split pieces carry it all
