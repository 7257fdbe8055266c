"""Unit tests for kind events_integration with discovery: sqs, through the real pipeline over an
in-memory bucket and queue: what is delivered, what is deleted (and when), what is quarantined."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Any

from forwarder.compose import build_pipeline
from forwarder.config import Config, parse_config
from forwarder.core.checkpoint import CheckpointStore
from forwarder.core.observer import Fanout, Observer
from forwarder.core.pipeline import Pipeline
from forwarder.observe.health import Health
from forwarder.observe.metrics import Metrics
from forwarder.observe.progress import Backlog
from forwarder.sources.queue import Queue
from forwarder.sources.s3 import Bucket
from forwarder.sources.sqs import QueueSource
from forwarder.transports.base import AckedOnWrite
from tests.support.memory_s3 import MemoryS3
from tests.support.memory_sqs import MemorySqs, s3_event

BUCKET, PREFIX = "cato-events", "cato/"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/cato-events"
T0 = 1_764_313_200


def event(obj: str, i: int) -> bytes:
    return json.dumps({"event_type": "Security", "time": (T0 + i) * 1000, "obj": obj, "i": i}).encode()


class Sink(AckedOnWrite):
    """A transport that hands every batch to *take*, acknowledged at once."""

    label = "fake://c"
    paces_itself = False
    max_message_bytes = None

    def __init__(self, take: Any) -> None:
        self._take = take

    def write(self, messages: list[bytes]) -> None:
        self._take(messages)
        self._delivered()

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None


class World:
    """A bucket, a queue, and what arrived; ``put`` writes an object and notifies the queue."""

    def __init__(self, tmp_path: Path, source: str = "", batch: int = 1000) -> None:
        self.s3, self.sqs = MemoryS3(), MemorySqs()
        self.events: list[bytes] = []
        self.ignored: list[str] = []
        self.on_send: Any = None
        self.config: Config = parse_config(
            f"source:\n  kind: events_integration\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n"
            f"  discovery: sqs\n  sqs: {{queue_url: '{QUEUE}', max_messages: 10}}\n  prefetch_files: 0\n"
            f"  max_attempts: 1\n{source}output:\n  header: none\n"
            f"checkpoint:\n  path: {tmp_path / 'state' / 'checkpoint.json'}\nbatch:\n  max_events: {batch}\n",
            env={},
        )
        self.quarantine = tmp_path / "state" / "quarantine.jsonl"

    def put(self, name: str, count: int, notify: bool = True) -> str:
        key = PREFIX + name
        self.s3.put(key, gzip.compress(b"".join(event(name, i) + b"\n" for i in range(count))), T0)
        etag = self.s3.objects[key].etag.strip('"')
        if notify:
            self.sqs.send(s3_event(BUCKET, key, etag))
        return etag

    def send(self, messages: list[bytes]) -> None:
        if self.on_send:
            self.on_send(messages)
        self.events += messages

    def pipeline(self, stop: threading.Event | None = None, observer: Observer | None = None) -> Pipeline:
        settings = self.config.pipeline().source
        source = QueueSource(Bucket(self.s3, settings), settings, Queue(settings, lambda: self.sqs))
        source.on_ignored = self.ignored.append
        transport = Sink(self.send)
        built = build_pipeline(
            self.config.pipeline(),
            once=True,
            source=source,
            transport=transport,
            stop=stop,
            observer=observer,
        )
        built.open()
        built.store.unlock()
        return built

    def run(self, stop: threading.Event | None = None) -> Pipeline:
        pipeline = self.pipeline(stop)
        try:
            pipeline.run_pass()
        finally:
            pipeline.close()
        return pipeline


def test_each_object_is_delivered_and_its_message_deleted_only_after_the_checkpoint_records_it(
    tmp_path: Path,
) -> None:
    """A message is deleted after its object's last batch was acknowledged and a checkpoint
    recording the object done was saved, never before (one save may record several)."""
    world = World(tmp_path, batch=2)
    world.put("a.gz", 3)
    world.put("b.gz", 1)
    store = CheckpointStore(world.config.pipeline().checkpoint.path, f"s3://{BUCKET}/{PREFIX}")
    at_delete: list[dict[str, Any]] = []
    delete = world.sqs.delete_message

    def deleting(QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:  # noqa: N803
        position = store.load()
        assert position is not None
        at_delete.append({"key": ReceiptHandle, "done": sorted(position.cursor["ledger"]["done"])})
        return delete(QueueUrl, ReceiptHandle)

    world.sqs.delete_message = deleting  # type: ignore[method-assign]
    world.run()
    assert world.events == [event("a.gz", i) for i in range(3)] + [event("b.gz", 0)]
    receipts = {"m1-r1": "a.gz", "m2-r1": "b.gz"}  # each message's receipt handle, and its object
    assert sorted(d["key"] for d in at_delete) == sorted(receipts)
    assert all(receipts[d["key"]] in d["done"] for d in at_delete)
    assert world.sqs.messages == [] and world.sqs.deleted == ["m1", "m2"]


def test_test_events_other_prefixes_other_events_and_duplicates_are_deleted_and_counted(
    tmp_path: Path,
) -> None:
    """Nothing to deliver: s3:TestEvent, another prefix, ObjectRemoved, an object already done;
    each message is deleted at once and counted by its reason."""
    world = World(tmp_path)
    etag = world.put("a.gz", 1)
    world.run()
    world.sqs.send({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    world.sqs.send(s3_event(BUCKET, "elsewhere/x.gz", "e1"))
    world.sqs.send(s3_event(BUCKET, f"{PREFIX}a.gz", etag, name="ObjectRemoved:Delete"))
    world.sqs.send(s3_event(BUCKET, f"{PREFIX}a.gz", etag))  # S3 sent it twice
    world.run()
    assert world.events == [event("a.gz", 0)]
    assert world.ignored == ["test_event", "other_prefix", "other_event", "duplicate"]
    assert world.sqs.messages == []


def test_a_message_received_too_often_or_unreadable_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    """Over max_receive_count, or no S3 notification at all: quarantined (reason in the
    list), not read, and deleted."""
    world = World(tmp_path)  # max_receive_count: 5
    world.put("poison.gz", 1)
    world.sqs.send("not json at all")
    for _ in range(5):  # crashed readers: received, never deleted
        world.sqs.receive_message(QUEUE, 10, 0)
    world.run()
    assert world.events == []
    entries = [json.loads(line) for line in world.quarantine.read_text().splitlines()]
    assert [e["key"] for e in entries] == [f"{PREFIX}poison.gz", "sqs-message/m2"]
    assert "received 6 times (source.sqs.max_receive_count: 5)" in entries[0]["reason"]
    assert "received 6 times" in entries[1]["reason"] and "not json at all" in entries[1]["reason"]
    assert world.sqs.messages == []


def test_a_stop_mid_object_hands_its_message_back_and_the_next_run_resumes_inside_it(tmp_path: Path) -> None:
    """Stopped after a batch: the message becomes visible at once (close), and the next run
    receives it again and sends only the records not delivered."""
    world = World(tmp_path, batch=2)
    world.put("big.gz", 5)
    stop = threading.Event()
    world.on_send = lambda messages: stop.set()
    world.run(stop)
    assert world.events == [event("big.gz", 0), event("big.gz", 1)]
    assert world.sqs.changes == [("m1", 0)] and world.sqs.deleted == []
    world.on_send = None
    world.run()
    assert world.events == [event("big.gz", i) for i in range(5)]
    assert world.sqs.deleted == ["m1"]


def test_an_object_written_again_is_reported_and_its_message_deleted(tmp_path: Path) -> None:
    """A notification for a done key with a new ETag: quarantined as written again, not sent."""
    world = World(tmp_path)
    world.put("a.gz", 1)
    world.run()
    world.put("a.gz", 2)
    world.run()
    assert world.events == [event("a.gz", 0)]
    assert "written again after it was delivered" in json.loads(world.quarantine.read_text())["reason"]
    assert world.sqs.messages == []


def test_a_bad_object_under_on_bad_file_stop_keeps_its_message_and_later_objects_go_on(
    tmp_path: Path,
) -> None:
    """A corrupt gzip under stop: its message is held (renewed, not deleted) and offered again
    first by the next pass; with quarantine it is set aside and deleted."""
    world = World(tmp_path)
    world.s3.put(f"{PREFIX}bad.gz", gzip.compress(b"".join(event("bad", i) for i in range(500)))[:200], T0)
    world.sqs.send(s3_event(BUCKET, f"{PREFIX}bad.gz", world.s3.objects[f"{PREFIX}bad.gz"].etag.strip('"')))
    pipeline = world.pipeline()
    for _ in range(2):
        try:
            pipeline.run_pass()
        except Exception as exc:  # FetchError: on_bad_file stop holds the position here
            assert "on_bad_file: stop" in str(exc)
    assert world.sqs.deleted == [] and pipeline.store.failure is not None
    assert pipeline.store.failure.attempts == 2 and pipeline.store.failure.key == f"{PREFIX}bad.gz"
    pipeline.close()
    assert world.sqs.changes == [("m1", 0)]  # handed back when the pipeline closed


def test_an_object_gone_before_it_was_read_is_a_bad_file(tmp_path: Path) -> None:
    """NoSuchKey for a notified object: nothing to retry; on_bad_file: quarantine sets it aside."""
    world = World(tmp_path, "  on_bad_file: quarantine\n")
    world.sqs.send(s3_event(BUCKET, f"{PREFIX}gone.gz", "e1"))
    world.put("after.gz", 1)
    world.run()  # a download that failed ends the pass (nothing overtakes it)
    world.run()
    assert world.events == [event("after.gz", 0)]
    assert "deleted after its notification was sent" in json.loads(world.quarantine.read_text())["reason"]
    assert world.sqs.messages == []


def test_metrics_count_ignored_messages_and_show_the_ledger_and_the_objects_in_flight(tmp_path: Path) -> None:
    """forwarder_sqs_messages_ignored_total{reason}, forwarder_ledger_objects, and
    forwarder_files_pending / oldest_pending_age_seconds for objects received, not done."""
    world = World(tmp_path)
    world.put("a.gz", 1)
    world.sqs.send({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    backlog, health, metrics = Backlog(), Health(600, 5), Metrics()
    observer = Fanout([backlog, health, metrics.pipeline("default", backlog, health)])
    pipeline = world.pipeline(observer=observer)
    source = pipeline.source
    assert isinstance(source, QueueSource)
    source.on_listing, source.on_ignored = observer.listed, observer.message_ignored  # as compose wires them
    pipeline.run_pass()

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"pipeline": "default", **labels})

    assert value("forwarder_sqs_messages_ignored_total", reason="test_event") == 1
    assert value("forwarder_ledger_objects") == 1
    assert value("forwarder_files_pending") == 0 and value("forwarder_oldest_pending_age_seconds") == 0
    world.put("b.gz", 1)
    next(iter(source.pending(pipeline.position.cursor if pipeline.position else {})))  # received, not sent
    assert value("forwarder_files_pending") == 1
    age = value("forwarder_oldest_pending_age_seconds")
    assert age is not None and age > 3600  # written at T0 (2025), by S3's clock
    pipeline.close()


def test_an_object_notified_twice_before_it_is_done_is_delivered_once(tmp_path: Path) -> None:
    """Two notifications of one object received together: one delivery, the second message
    deleted as a duplicate, the first once the object is done."""
    world = World(tmp_path)
    etag = world.put("a.gz", 2)
    world.sqs.send(s3_event(BUCKET, f"{PREFIX}a.gz", etag))
    world.run()
    assert world.events == [event("a.gz", 0), event("a.gz", 1)]
    assert world.ignored == ["duplicate"] and world.sqs.deleted == ["m2", "m1"]


def test_messages_received_while_closing_are_handed_back_at_once(tmp_path: Path) -> None:
    """A long poll that answers after the source was closed (a stop does not wait for it):
    its messages are neither held nor renewed, but made visible to other readers at once."""
    world = World(tmp_path)
    world.put("a.gz", 1)
    settings = world.config.pipeline().source
    source = QueueSource(Bucket(world.s3, settings), settings, Queue(settings, lambda: world.sqs))
    receive = world.sqs.receive_message

    def closing_meanwhile(**args: Any) -> dict[str, Any]:
        answer = receive(**args)
        source.close()  # the pipeline stopped while the long poll waited
        return answer

    world.sqs.receive_message = closing_meanwhile  # type: ignore[method-assign]
    assert list(source.pending(source.start())) == []
    assert world.sqs.changes == [("m1", 0)]
    assert world.sqs.deleted == []
