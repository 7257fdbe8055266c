"""Unit tests for forwarder.core.pipeline with in-process fakes: ordering, checkpoints, retries."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody

from forwarder.compose import build_pipeline
from forwarder.config import Config, parse_config
from forwarder.core.checkpoint import CheckpointStore, Position
from forwarder.core.delivery import ONCE_SEND_ATTEMPTS, Stopped
from forwarder.core.observer import Observer
from forwarder.core.pipeline import Pipeline
from forwarder.errors import FetchError, SendError
from forwarder.samples import make_zip
from forwarder.sources.base import LogObject
from forwarder.sources.exporter import LogExporterSource
from forwarder.sources.s3 import Bucket

BUCKET = "cato-logs"
PREFIX = "KEY/"
SOURCE_ID = f"s3://{BUCKET}/{PREFIX}"


def event(sequence: int, i: int) -> bytes:
    """Event *i* of file *sequence*, recognisable wherever it turns up."""
    return f"CEF:0|Cato Networks|Cato SASE Platform|1.0|f{sequence}|e{i}|5|".encode()


def events_file(sequence: int, count: int, members: int = 1) -> bytes:
    """A zip of *count* events of file *sequence*, spread over *members* members."""
    per = -(-count // members)
    return make_zip(
        (
            f"m{m}.log",
            b"".join(event(sequence, i) + b"\n" for i in range(m * per, min(count, (m + 1) * per))),
        )
        for m in range(members)
    )


def key(sequence: int) -> str:
    return f"{PREFIX}CATO{sequence:020d}.zip"


def at(sequence: int, records: int, complete: bool = False, name: str | None = None) -> Position:
    """The position: *records* of file *sequence* delivered (all of it, when *complete*)."""
    cursor: dict[str, Any] = {"sequence": sequence, "key": key(sequence) if name is None else name}
    if complete:
        cursor["complete"] = True
    return Position(cursor, records)


class ListingClient:
    """The S3 client calls a bucket listing makes, over FakeSource's objects (by sequence)."""

    def __init__(self, objects: dict[int, bytes]) -> None:
        self.objects = objects

    def get_paginator(self, name: str) -> ListingClient:
        return self

    def paginate(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:  # noqa: N803
        yield {"Contents": [{"Key": key(s), "Size": len(d)} for s, d in sorted(self.objects.items())]}


class FakeSource(LogExporterSource):
    """The log exporter's source over in-memory objects; downloads can be made to fail."""

    def __init__(self, tmp_path: Path, objects: dict[int, bytes], config: Config | None = None) -> None:
        self.objects = dict(objects)
        self.broken: dict[int, int] = {}  # sequence -> downloads that still fail
        self.downloads: list[int] = []
        self._dir = tmp_path
        settings = (config or make_config(tmp_path)).pipeline().source
        super().__init__(Bucket(ListingClient(self.objects), settings), settings)

    def fetch(self, obj: LogObject) -> Path:
        self.downloads.append(obj.ref)
        if self.broken.get(obj.ref, 0):
            self.broken[obj.ref] -= 1
            raise FetchError(f"s3://{BUCKET}/{obj.key}: AccessDenied: access denied")
        path = self._dir / f"download-{obj.ref}-{len(self.downloads)}.part"
        path.write_bytes(self.objects[obj.ref])
        return path


class FakeTransport:
    """Records acknowledged batches; fails the attempts that *fails* says should fail.

    *fails(attempt)* gets the 1-based attempt number; *on_send* sees every attempt first.
    A batch written is acknowledged at once (the next acknowledged() reports it).
    """

    label = "fake://collector"
    paces_itself = False

    def __init__(
        self,
        fails: Callable[[int], bool] = lambda attempt: False,
        on_send: Callable[[list[bytes]], None] | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        self.batches: list[list[bytes]] = []
        self.attempts = 0
        self.unreported = 0
        self._fails = fails
        self._on_send = on_send
        self.max_message_bytes = max_message_bytes

    @property
    def events(self) -> list[bytes]:
        return [m for batch in self.batches for m in batch]

    def write(self, messages: list[bytes]) -> None:
        self.attempts += 1
        if self._on_send:
            self._on_send(messages)
        if self._fails(self.attempts):
            raise SendError("fake://collector: connection refused")
        self.batches.append(list(messages))
        self.unreported += 1

    def acknowledged(self, wait_secs: float) -> int:
        count, self.unreported = self.unreported, 0
        return count

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None


def make_config(
    tmp_path: Path,
    max_events: int = 1000,
    start: str = "earliest",
    source: str = "",
    interval_secs: float = 0,
    output: str = "",
) -> Config:
    """Prefetch is off unless *source* (extra YAML lines of the source section) turns it on;
    the checkpoint is written after every acknowledged batch unless *interval_secs* says."""
    return parse_config(
        f"source:\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n  start: {start}\n"
        "  poll_interval_secs: 0.1\n  prefetch_files: 0\n  max_attempts: 2\n  bad_file_retry_secs: 0.01\n"
        + source
        + "output:\n  header: none\n  retry_initial_secs: 0.01\n  retry_max_secs: 0.02\n"
        + output
        + f"checkpoint:\n  path: {tmp_path / 'state' / 'checkpoint.json'}\n  interval_secs: {interval_secs}\n"
        f"batch:\n  max_events: {max_events}\n",
        env={},
    )


def make_pipeline(
    config: Config,
    source: Any,
    transport: FakeTransport,
    once: bool = True,
    stop: threading.Event | None = None,
    clock: Callable[[], float] | None = None,
    observer: Observer | None = None,
) -> Pipeline:
    """The production pipeline over *source* and *transport*, its checkpoint read. Not locked:
    tests run one pipeline after another on one checkpoint, as restarts do."""
    pipeline = build_pipeline(
        config.pipeline(),
        stop=stop,
        once=once,
        source=source,
        transport=transport,
        clock=clock,
        observer=observer,
    )
    pipeline.open()
    pipeline.store.unlock()
    return pipeline


def saved(config: Config) -> Position | None:
    """The checkpoint as a restarted forwarder would read it from disk."""
    return CheckpointStore(config.pipeline().checkpoint.path, SOURCE_ID).load()


# --- order -----------------------------------------------------------------------------


class FakeS3Client:
    """The two boto3 calls the exporter's source makes, over in-memory objects, listed as S3 does:
    lexicographically by key, a page at a time."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_paginator(self, name: str) -> FakeS3Client:
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:  # noqa: N803
        keys = sorted(k for k in self.objects if k.startswith(Prefix))
        for page in range(0, len(keys), 2):
            yield {"Contents": [{"Key": k, "Size": len(self.objects[k])} for k in keys[page : page + 2]]}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        key = Key
        data = self.objects[key]
        return {"Body": StreamingBody(io.BytesIO(data), len(data))}


def test_files_go_out_in_numeric_order_9999_before_10000(tmp_path: Path) -> None:
    """Files go out by numeric sequence (9999 before 10000), though S3 lists 10000 first."""
    config = parse_config(
        f"source:\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n  download_dir: {tmp_path}\n"
        f"output:\n  header: none\ncheckpoint:\n  path: {tmp_path / 'cp.json'}\n",
        env={},
    )
    client = FakeS3Client(
        {
            f"{PREFIX}CATO10000.zip": events_file(10000, 2),
            f"{PREFIX}CATO9999.zip": events_file(9999, 2),
            f"{PREFIX}CATO10001.zip": events_file(10001, 2),
            f"{PREFIX}CATO998.zip": events_file(998, 2),
            f"{PREFIX}README.txt": b"not an exporter file",
        }
    )
    settings = config.pipeline().source
    source = LogExporterSource(Bucket(client, settings, download_dir=str(tmp_path)), settings)
    transport = FakeTransport()
    pipeline = make_pipeline(config, source, transport)
    assert pipeline.run_pass() == 8
    assert transport.events == [event(s, i) for s in (998, 9999, 10000, 10001) for i in range(2)]
    assert pipeline.position == at(10001, 2, True, name=f"{PREFIX}CATO10001.zip")
    assert list(tmp_path.glob("*.part")) == []  # downloads are removed


def test_records_of_a_file_go_out_in_order_across_members(tmp_path: Path) -> None:
    """Within a file, events go out member by member (in name order), line by line."""
    config = make_config(tmp_path, max_events=3)
    source = FakeSource(tmp_path, {1: events_file(1, 10, members=3)})
    transport = FakeTransport()
    make_pipeline(config, source, transport).run_pass()
    assert transport.events == [event(1, i) for i in range(10)]
    assert [len(b) for b in transport.batches] == [3, 3, 3, 1]


# --- checkpoint and acknowledgement ----------------------------------------------------


def test_checkpoint_moves_only_after_each_batch_is_acknowledged(tmp_path: Path) -> None:
    """While a batch is being sent the checkpoint still names the previous one; then it moves."""
    config = make_config(tmp_path, max_events=2)
    source = FakeSource(tmp_path, {7: events_file(7, 5)})
    seen: list[Position | None] = []
    transport = FakeTransport(on_send=lambda messages: seen.append(saved(config)))
    pipeline = make_pipeline(config, source, transport)
    pipeline.run_pass()
    assert seen == [
        at(7, 0),  # pinned by source.start before anything was sent
        at(7, 2),
        at(7, 4),
    ]
    assert saved(config) == at(7, 5, True)
    assert pipeline.stats.events_sent == 5 and pipeline.stats.files == 1


def test_once_gives_up_after_the_attempts_and_keeps_the_last_acknowledged_position(
    tmp_path: Path,
) -> None:
    """With once, SendError comes after ONCE_SEND_ATTEMPTS refusals and the checkpoint stays put."""
    config = make_config(tmp_path, max_events=2)
    source = FakeSource(tmp_path, {7: events_file(7, 6), 8: events_file(8, 2)})
    transport = FakeTransport(fails=lambda attempt: attempt > 1)  # first batch only
    pipeline = make_pipeline(config, source, transport, once=True)
    with pytest.raises(SendError) as info:
        pipeline.run_pass()
    assert str(info.value) == (
        f"fake://collector: connection refused (gave up after {ONCE_SEND_ATTEMPTS} attempts)"
    )
    assert transport.attempts == 1 + ONCE_SEND_ATTEMPTS
    assert transport.events == [event(7, 0), event(7, 1)]
    assert saved(config) == at(7, 2)
    assert source.downloads == [7]  # file 8 never overtook file 7


def test_failed_batches_are_sent_again_until_acknowledged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused batch is retried with backoff; it arrives once acknowledged, nothing is lost."""
    config = make_config(tmp_path, max_events=2)
    source = FakeSource(tmp_path, {7: events_file(7, 4)})
    transport = FakeTransport(fails=lambda attempt: attempt in (2, 3, 4, 5, 6, 7))
    pipeline = make_pipeline(config, source, transport, once=False)  # retries without limit
    pipeline.run_pass()
    assert transport.events == [event(7, i) for i in range(4)]
    assert transport.attempts == 8
    assert saved(config) == at(7, 4, True)
    assert "batch not delivered, retrying in" in caplog.text


def test_stop_during_retry_wait_raises_stopped_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    """A stop requested while waiting to retry ends the pass; the checkpoint does not move."""
    config = make_config(tmp_path, max_events=2)
    source = FakeSource(tmp_path, {7: events_file(7, 4)})
    stop = threading.Event()

    def refuse_and_stop(attempt: int) -> bool:
        if attempt >= 3:
            stop.set()  # SIGTERM arrives while the collector is down
        return attempt >= 2

    transport = FakeTransport(fails=refuse_and_stop)
    pipeline = make_pipeline(config, source, transport, once=False, stop=stop)
    with pytest.raises(Stopped):
        pipeline.run_pass()
    assert saved(config) == at(7, 2)


def test_stop_between_batches_ends_the_pass_at_a_clean_position(tmp_path: Path) -> None:
    """A stop requested while a batch is in flight lets it finish, saves, and sends no more."""
    config = make_config(tmp_path, max_events=2)
    source = FakeSource(tmp_path, {7: events_file(7, 6), 8: events_file(8, 2)})
    stop = threading.Event()
    transport = FakeTransport(on_send=lambda messages: stop.set())
    pipeline = make_pipeline(config, source, transport, stop=stop)
    pipeline.run_pass()
    assert transport.events == [event(7, 0), event(7, 1)]
    assert saved(config) == at(7, 2)


# --- resuming --------------------------------------------------------------------------


def test_restart_resumes_inside_a_file_and_skips_exactly_the_delivered_records(tmp_path: Path) -> None:
    """After a failed run, a restart sends exactly the records not yet acknowledged, once each."""
    config = make_config(tmp_path, max_events=3)
    objects = {7: events_file(7, 8, members=2), 8: events_file(8, 3)}
    first = FakeTransport(fails=lambda attempt: attempt > 2)
    with pytest.raises(SendError):
        make_pipeline(config, FakeSource(tmp_path, objects), first).run_pass()
    assert saved(config) == at(7, 6)

    second = FakeTransport()
    sent = make_pipeline(config, FakeSource(tmp_path, objects), second).run_pass()
    assert second.events == [event(7, 6), event(7, 7)] + [event(8, i) for i in range(3)]
    assert sent == 5
    assert first.events + second.events == [event(7, i) for i in range(8)] + [event(8, i) for i in range(3)]


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (at(7, 3), [event(7, i) for i in range(3, 5)] + [event(8, 0)]),
        (at(7, 5), [event(8, 0)]),
        (at(7, 5, True), [event(8, 0)]),
        (at(8, 1, True), []),
        (at(6, 0, True), [event(7, i) for i in range(5)] + [event(8, 0)]),
    ],
)
def test_resume_from_a_saved_position(tmp_path: Path, position: Position, expected: list[bytes]) -> None:
    """A saved position skips earlier files and the first `records` records of its own file."""
    config = make_config(tmp_path)
    CheckpointStore(config.pipeline().checkpoint.path, SOURCE_ID).save(position)
    transport = FakeTransport()
    pipeline = make_pipeline(
        config, FakeSource(tmp_path, {7: events_file(7, 5), 8: events_file(8, 1)}), transport
    )
    pipeline.run_pass()
    assert transport.events == expected


def test_second_pass_sends_nothing_new(tmp_path: Path) -> None:
    """Everything delivered stays delivered: a second pass over the same bucket sends nothing."""
    config = make_config(tmp_path)
    source = FakeSource(tmp_path, {7: events_file(7, 3)})
    transport = FakeTransport()
    pipeline = make_pipeline(config, source, transport)
    assert pipeline.run_pass() == 3
    assert pipeline.run_pass() == 0
    source.objects[8] = events_file(8, 2)  # the exporter writes a new file
    assert pipeline.run_pass() == 2
    assert transport.events == [event(7, i) for i in range(3)] + [event(8, 0), event(8, 1)]


# --- bad records -----------------------------------------------------------------------


def test_bad_records_are_reported_with_line_numbers_skipped_and_counted_in_the_position(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad record is logged with object, member and line, skipped, and still counted in the position."""
    lines = b"\n".join([event(7, 0), b"garbage one", b"", event(7, 1), b"garbage two"]) + b"\n"
    config = make_config(tmp_path, max_events=1)
    seen: list[Position | None] = []
    transport = FakeTransport(on_send=lambda messages: seen.append(saved(config)))
    pipeline = make_pipeline(config, FakeSource(tmp_path, {7: make_zip([("a.log", lines)])}), transport)
    with caplog.at_level(logging.WARNING, logger="forwarder"):
        pipeline.run_pass()
    assert transport.events == [event(7, 0), event(7, 1)]
    assert seen == [at(7, 0), at(7, 1)]
    assert saved(config) == at(7, 4, True)  # 4 records: 2 good, 2 bad
    assert pipeline.stats.bad_records == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"s3://{BUCKET}/{key(7)} member a.log line 2: not CEF or JSON (starts with b'garbage one'); "
        "record skipped",
        f"s3://{BUCKET}/{key(7)} member a.log line 5: not CEF or JSON (starts with b'garbage two'); "
        "record skipped",
    ]


def test_resume_after_bad_records_does_not_reread_them(tmp_path: Path) -> None:
    """Bad records count in the position, so a restart resumes after them, not on them."""
    lines = b"\n".join([event(7, 0), b"garbage", event(7, 1), event(7, 2)]) + b"\n"
    config = make_config(tmp_path)
    CheckpointStore(config.pipeline().checkpoint.path, SOURCE_ID).save(at(7, 2))
    transport = FakeTransport()
    pipeline = make_pipeline(config, FakeSource(tmp_path, {7: make_zip([("a.log", lines)])}), transport)
    pipeline.run_pass()
    assert transport.events == [event(7, 1), event(7, 2)]
    assert pipeline.stats.bad_records == 0


def test_many_bad_records_are_summed_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Past the first ten, bad records of an object are counted in one summary line."""
    lines = b"".join(b"junk %d\n" % i for i in range(25)) + event(7, 0) + b"\n"
    config = make_config(tmp_path)
    transport = FakeTransport()
    pipeline = make_pipeline(config, FakeSource(tmp_path, {7: make_zip([("a.log", lines)])}), transport)
    with caplog.at_level(logging.WARNING, logger="forwarder"):
        pipeline.run_pass()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 11
    assert warnings[-1] == f"s3://{BUCKET}/{key(7)}: 25 bad records in all (first 10 logged)"
    assert pipeline.stats.bad_records == 25
    assert transport.events == [event(7, 0)]


def oversize_config(tmp_path: Path, output: str) -> Config:
    """A config with an RFC 5424 header and the given extra output lines (YAML, indented)."""
    return parse_config(
        f"source:\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n  prefetch_files: 0\n"
        f"output:\n  hostname: fwd01\n{output}checkpoint:\n  path: {tmp_path / 'state' / 'cp.json'}\n",
        env={},
    )


# A 1.5 KB event of 1-4 byte characters (ü 2, € 3, 😀 4 bytes), CEF severity 5 like event().
BIG = b"CEF:0|Cato Networks|Cato SASE Platform|1.0|big|e|5|msg=" + "Zürich €😀 ".encode() * 100


def test_message_too_large_for_the_transport_is_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """oversize: drop — a message longer than the transport carries is reported with its line, not sent."""
    big = b"CEF:0|" + b"x" * 600
    lines = b"\n".join([event(7, 0), big, event(7, 1)]) + b"\n"
    config = oversize_config(tmp_path, "  header: none\n  oversize: drop\n")
    transport = FakeTransport(max_message_bytes=500)
    pipeline = make_pipeline(config, FakeSource(tmp_path, {7: make_zip([("a.log", lines)])}), transport)
    with caplog.at_level(logging.WARNING, logger="forwarder"):
        pipeline.run_pass()
    assert transport.events == [event(7, 0), event(7, 1)]
    stats = pipeline.stats
    assert (stats.oversize_dropped, stats.bad_records, stats.events_sent) == (1, 0, 2)
    assert pipeline.stats.oversize_text() == "1 dropped"
    assert saved(config) == at(7, 3, True)
    assert (
        f"s3://{BUCKET}/{key(7)} member a.log line 2: message of 606 bytes exceeds what fake://collector "
        "can carry (500): dropped, record skipped (output.oversize: drop)"
    ) in caplog.text


@pytest.mark.parametrize("policy", ["truncate", "split", "drop"])
def test_oversize_policy_applies_to_messages_over_max_message_bytes(tmp_path: Path, policy: str) -> None:
    """Over output.max_message_bytes an event is truncated, split or dropped; its neighbours pass as is."""
    lines = b"\n".join([event(7, 0), BIG, event(7, 1)]) + b"\n"
    config = oversize_config(tmp_path, f"  max_message_bytes: 600\n  oversize: {policy}\n")
    transport = FakeTransport()
    pipeline = make_pipeline(config, FakeSource(tmp_path, {7: make_zip([("a.log", lines)])}), transport)
    pipeline.run_pass()
    sent = transport.events
    header = sent[0][: -len(event(7, 0))]  # the same for all three: same batch, same severity
    assert header.startswith(b"<132>1 ") and header.endswith(b" fwd01 cato - - - ")
    assert sent[0] == header + event(7, 0) and sent[-1] == header + event(7, 1)
    middle = sent[1:-1]
    assert all(len(m) <= 600 and m.startswith(header) for m in middle)
    bodies = [m[len(header) :] for m in middle]
    if policy == "truncate":
        assert len(bodies) == 1 and BIG.startswith(bodies[0]) and len(bodies[0]) >= 600 - len(header) - 3
        bodies[0].decode("utf-8")  # cut between characters
        assert pipeline.stats.oversize_truncated == 1
    elif policy == "split":
        assert len(bodies) == 4 and b"".join(bodies) == BIG  # 1,650 bytes, ~550 a piece
        assert [b.decode("utf-8") for b in bodies]  # every piece cut between characters
        assert (pipeline.stats.oversize_split, pipeline.stats.oversize_pieces) == (1, 4)
        assert pipeline.stats.oversize_text() == "1 split into 4 messages"
    else:
        assert bodies == [] and pipeline.stats.oversize_dropped == 1
    assert pipeline.stats.events_sent == (2 if policy == "drop" else 3)
    assert saved(config) == at(7, 3, True)


def test_oversize_is_logged_once_per_file_then_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first message over the limit in a file is logged with its line; the rest summed up at its end."""
    four = b"\n".join([BIG, event(7, 0), BIG, BIG, BIG]) + b"\n"
    config = oversize_config(tmp_path, "  max_message_bytes: 600\n  oversize: truncate\n")
    source = FakeSource(tmp_path, {7: make_zip([("a.log", four)]), 8: make_zip([("b.log", BIG)])})
    pipeline = make_pipeline(config, source, FakeTransport())
    with caplog.at_level(logging.WARNING, logger="forwarder"):
        pipeline.run_pass()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert warnings[0].startswith(f"s3://{BUCKET}/{key(7)} member a.log line 1: message of ")
    assert warnings[0].endswith(
        "exceeds output.max_message_bytes (600): truncated to 600 bytes (output.oversize: truncate)"
    )
    assert warnings[1] == (
        f"s3://{BUCKET}/{key(7)}: 4 messages over the size limit in all "
        "(output.oversize: truncate; first 1 logged)"
    )
    assert warnings[2].startswith(f"s3://{BUCKET}/{key(8)} member b.log line 1: message of ")
    assert pipeline.stats.oversize_truncated == 5 and pipeline.stats.events_sent == 6


# --- where a fresh start begins --------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "files", "pinned"),
    [
        ("earliest", [5, 6, 7], at(5, 0)),
        ("latest", [7], at(7, 0)),
        ("6", [6, 7], at(6, 0)),
        ("4", [5, 6, 7], at(5, 0)),
        ("0", [5, 6, 7], at(5, 0)),
        ("100", [], at(100, 0, name="")),
    ],
)
def test_start_decides_where_a_fresh_forwarder_begins(
    tmp_path: Path, start: str, files: list[int], pinned: Position
) -> None:
    """Without a checkpoint, source.start picks the first file: earliest, latest, or a number."""
    config = make_config(tmp_path, start=start)
    source = FakeSource(tmp_path, {s: events_file(s, 1) for s in (5, 6, 7)}, config)
    seen: list[Position | None] = []
    transport = FakeTransport(on_send=lambda messages: seen.append(saved(config)))
    make_pipeline(config, source, transport).run_pass()
    assert transport.events == [event(s, 0) for s in files]
    assert (seen[0] if seen else saved(config)) == pinned


def test_start_number_beyond_the_bucket_waits_for_that_file(tmp_path: Path) -> None:
    """A start sequence not yet in the bucket is pinned; files before it never go out."""
    config = make_config(tmp_path, start="100")
    source = FakeSource(tmp_path, {99: events_file(99, 1)}, config)
    transport = FakeTransport()
    pipeline = make_pipeline(config, source, transport)
    pipeline.run_pass()
    source.objects.update({100: events_file(100, 1), 101: events_file(101, 1)})
    pipeline.run_pass()
    assert transport.events == [event(100, 0), event(101, 0)]


def test_empty_bucket_pins_nothing_for_latest(tmp_path: Path) -> None:
    """With latest and an empty bucket nothing is pinned; the newest file at the next poll is used."""
    config = make_config(tmp_path, start="latest")
    source = FakeSource(tmp_path, {}, config)
    transport = FakeTransport()
    pipeline = make_pipeline(config, source, transport)
    assert pipeline.run_pass() == 0
    assert saved(config) is None
    source.objects.update({5: events_file(5, 1), 6: events_file(6, 1)})
    pipeline.run_pass()
    assert transport.events == [event(6, 0)]


def test_checkpoint_wins_over_start(tmp_path: Path) -> None:
    """Once a checkpoint exists, source.start is ignored: restarts agree on the position."""
    config = make_config(tmp_path, start="latest")
    CheckpointStore(config.pipeline().checkpoint.path, SOURCE_ID).save(at(5, 1, True))
    transport = FakeTransport()
    source = FakeSource(tmp_path, {s: events_file(s, 1) for s in (5, 6, 7)}, config)
    make_pipeline(config, source, transport).run_pass()
    assert transport.events == [event(6, 0), event(7, 0)]


# --- files that cannot be fetched ------------------------------------------------------


def test_unreadable_file_stops_the_pass_and_is_not_overtaken(tmp_path: Path) -> None:
    """A file that cannot be read is tried max_attempts times, then (on_bad_file: stop) raises
    FetchError; later files wait; the checkpoint stays before it."""
    config = make_config(tmp_path)
    objects = {1: events_file(1, 2), 2: b"PK\x03\x04 truncated zip", 3: events_file(3, 2)}
    source = FakeSource(tmp_path, objects)
    transport = FakeTransport()
    pipeline = make_pipeline(config, source, transport)
    with pytest.raises(FetchError, match=f"s3://{BUCKET}/{key(2)}: not a readable zip file") as info:
        pipeline.run_pass()
    assert "attempt 2 of 2; on_bad_file: stop holds the position here" in str(info.value)
    assert transport.events == [event(1, 0), event(1, 1)]
    assert saved(config) == at(1, 2, True)
    assert source.downloads == [1, 2, 2]

    source.objects[2] = events_file(2, 1)  # the object is replaced
    pipeline.run_pass()
    assert transport.events[2:] == [event(2, 0), event(3, 0), event(3, 1)]


def test_random_bytes_at_a_zip_key_are_quarantined_durably_before_the_checkpoint_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random bytes named .zip are a bad file, never records: under quarantine the list is fsynced
    before the checkpoint moves past the file, and nothing of it is dead-lettered."""
    config = make_config(tmp_path, source="  on_bad_file: quarantine\n")
    source = FakeSource(tmp_path, {1: events_file(1, 1), 2: os.urandom(4096), 3: events_file(3, 1)})
    transport = FakeTransport()
    pipeline = make_pipeline(config, source, transport)
    quarantine = tmp_path / "state" / "quarantine.jsonl"
    steps: list[str] = []
    real_fsync, real_save = os.fsync, pipeline.store.save

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(quarantine):
            steps.append("quarantine fsynced")
        real_fsync(fd)

    def save(position: Position | None) -> None:
        assert position is not None
        cursor = position.cursor
        steps.append(f"checkpoint {cursor['sequence']} {'done' if cursor.get('complete') else 'at'}")
        real_save(position)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(pipeline.store, "save", save)
    pipeline.run_pass()
    assert transport.events == [event(1, 0), event(3, 0)]
    # in the order each step first happened (failed attempts save the checkpoint where it is)
    assert list(dict.fromkeys(steps)) == [
        "checkpoint 1 at",
        "checkpoint 1 done",
        "quarantine fsynced",
        "checkpoint 2 done",
        "checkpoint 3 done",
    ]
    [entry] = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert entry["key"] == key(2)
    assert entry["reason"].startswith(f"s3://{BUCKET}/{key(2)}: not a zip archive (starts with ")
    assert not pipeline.dead_letter.path.exists()


def test_run_forever_retries_a_failed_fetch_on_the_next_poll(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """run_forever logs a FetchError, polls again, and goes on from the same file."""
    config = make_config(tmp_path)
    source = FakeSource(tmp_path, {1: events_file(1, 1), 2: events_file(2, 1)})
    source.broken[1] = 2  # the first two downloads of file 1 fail
    stop = threading.Event()
    transport = FakeTransport()
    pipeline = make_pipeline(config, source, transport, once=False, stop=stop)

    def stop_when_done() -> None:
        while len(transport.events) < 2 and not stop.is_set():
            time.sleep(0.01)
        stop.set()

    watcher = threading.Thread(target=stop_when_done, daemon=True)
    watcher.start()
    started = time.monotonic()
    pipeline.run_forever()
    stop.set()
    watcher.join(5)
    assert time.monotonic() - started < 5
    assert transport.events == [event(1, 0), event(2, 0)]
    assert source.downloads[:3] == [1, 1, 1]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[:2] == [f"s3://{BUCKET}/{key(1)}: AccessDenied: access denied; trying again in 0.1s"] * 2


# --- what goes to the transport --------------------------------------------------------


def test_messages_carry_the_configured_header(tmp_path: Path) -> None:
    """The pipeline hands the transport encoded messages: header plus the unchanged event."""
    config = parse_config(
        f"source:\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n"
        "output:\n  header: rfc3164\n  hostname: fwd01\n"
        f"checkpoint:\n  path: {tmp_path / 'cp.json'}\n",
        env={},
    )
    transport = FakeTransport()
    source = FakeSource(tmp_path, {7: make_zip([("a.log", event(7, 0) + b"\n" + b'{"a": 1}\n')])})
    make_pipeline(config, source, transport, clock=lambda: 1764314712.0).run_pass()
    assert transport.events == [
        b"<132>Nov 28 07:25:12 fwd01 cato: " + event(7, 0),
        b'<133>Nov 28 07:25:12 fwd01 cato: {"a": 1}',
    ]


def test_max_events_per_sec_paces_delivery(tmp_path: Path) -> None:
    """output.max_events_per_sec spreads batches out so the rate is not exceeded."""
    config = parse_config(
        f"source:\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n"
        "output:\n  header: none\n  max_events_per_sec: 200\n"
        f"checkpoint:\n  path: {tmp_path / 'cp.json'}\nbatch:\n  max_events: 10\n",
        env={},
    )
    transport = FakeTransport()
    pipeline = make_pipeline(config, FakeSource(tmp_path, {7: events_file(7, 40)}), transport)
    started = time.monotonic()
    pipeline.run_pass()
    assert len(transport.events) == 40
    assert time.monotonic() - started >= 0.15  # 40 events at 200/s: 0.2 s, less the first
