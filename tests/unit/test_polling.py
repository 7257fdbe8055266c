"""Unit tests for kind events_integration with discovery: list, through the real pipeline over an
in-memory bucket: order by LastModified, late objects, the ledger, replaced objects, resuming."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from forwarder.compose import build_pipeline
from forwarder.config import Config, parse_config
from forwarder.core.checkpoint import CheckpointStore
from forwarder.core.pipeline import Pipeline
from forwarder.sources.polling import ListingSource
from forwarder.sources.s3 import Bucket
from forwarder.transports.base import AckedOnWrite
from tests.support.memory_s3 import MemoryS3

BUCKET, PREFIX = "cato-events", "cato/"
T0 = 1_764_313_200  # 2025-11-28T07:00:00Z


def event(obj: str, i: int) -> bytes:
    """Event *i* of object *obj*, a typed NDJSON line as Cato pushes it."""
    line = {"event_type": "Security", "time": (T0 + i) * 1000, "account_id": 20000232, "obj": obj, "i": i}
    return json.dumps(line, separators=(",", ":")).encode()


def body(obj: str, count: int) -> bytes:
    return gzip.compress(b"".join(event(obj, i) + b"\n" for i in range(count)))


class Transport(AckedOnWrite):
    """Takes every batch; *on_send* sees each first."""

    label = "fake://collector"
    paces_itself = False
    max_message_bytes = None

    def __init__(self, on_send: Any = None) -> None:
        self.events: list[bytes] = []
        self._on_send = on_send

    def write(self, messages: list[bytes]) -> None:
        if self._on_send:
            self._on_send(messages)
        self.events += messages
        self._delivered()

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None


def make_config(tmp_path: Path, source: str = "", batch: int = 1000) -> Config:
    return parse_config(
        f"source:\n  kind: events_integration\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n"
        f"  lookback_secs: 3600\n  prefetch_files: 0\n  max_attempts: 1\n{source}"
        f"output:\n  header: none\ncheckpoint:\n  path: {tmp_path / 'state' / 'checkpoint.json'}\n"
        f"batch:\n  max_events: {batch}\n",
        env={},
    )


def pipeline(
    config: Config, client: MemoryS3, transport: Transport, stop: threading.Event | None = None
) -> Pipeline:
    settings = config.pipeline().source
    source = ListingSource(Bucket(client, settings), settings)
    built = build_pipeline(config.pipeline(), once=True, source=source, transport=transport, stop=stop)
    built.open()
    built.store.unlock()  # one pipeline after another on one checkpoint, as restarts do
    return built


def saved(config: Config) -> dict[str, Any]:
    position = CheckpointStore(config.pipeline().checkpoint.path, f"s3://{BUCKET}/{PREFIX}").load()
    assert position is not None
    return {**position.cursor, "records": position.records}


def test_objects_go_out_by_last_modified_whatever_their_keys_and_a_late_one_is_found(tmp_path: Path) -> None:
    """UUID-like keys that do not sort by time go out oldest first; an object that shows up
    later with a key sorting before all of them is found by the next poll; each event once."""
    client = MemoryS3(page_size=2)
    for name, moment in (("f3c1", 10), ("0a9e", 20), ("7b22", 30)):
        client.put(f"{PREFIX}{name}.gz", body(name, 3), T0 + moment)
    config = make_config(tmp_path)
    transport = Transport()
    assert pipeline(config, client, transport).run_pass() == 9
    assert transport.events == [event(n, i) for n in ("f3c1", "0a9e", "7b22") for i in range(3)]

    client.put(f"{PREFIX}00late.gz", body("00late", 2), T0 + 25)  # written before 7b22, listed after
    assert pipeline(config, client, transport).run_pass() == 2
    assert transport.events[9:] == [event("00late", 0), event("00late", 1)]
    assert pipeline(config, client, transport).run_pass() == 0
    assert sorted(saved(config)["ledger"]["done"]) == ["00late.gz", "0a9e.gz", "7b22.gz", "f3c1.gz"]


def test_objects_of_the_same_second_are_each_delivered(tmp_path: Path) -> None:
    """Two objects with the same LastModified second are both delivered (a watermark would lose one)."""
    client = MemoryS3()
    client.put(f"{PREFIX}b.gz", body("b", 1), T0)
    config = make_config(tmp_path)
    transport = Transport()
    pipeline(config, client, transport).run_pass()
    client.put(f"{PREFIX}a.gz", body("a", 1), T0)
    pipeline(config, client, transport).run_pass()
    assert transport.events == [event("b", 0), event("a", 0)]


def test_a_restart_mid_object_resumes_inside_it_even_when_an_older_object_appeared(tmp_path: Path) -> None:
    """Stopped after a batch, the next run resumes inside that object by record count, before
    a late object with an older LastModified that showed up meanwhile."""
    client = MemoryS3()
    client.put(f"{PREFIX}big.gz", body("big", 5), T0 + 100)
    config = make_config(tmp_path, batch=2)
    stop = threading.Event()
    first = Transport(on_send=lambda messages: stop.set())
    pipeline(config, client, first, stop).run_pass()
    assert first.events == [event("big", 0), event("big", 1)]
    assert saved(config)["object"]["key"] == f"{PREFIX}big.gz" and saved(config)["records"] == 2

    client.put(f"{PREFIX}older.gz", body("older", 1), T0 + 50)
    second = Transport()
    pipeline(config, client, second).run_pass()
    assert second.events == [event("big", i) for i in (2, 3, 4)] + [event("older", 0)]


def test_an_object_older_than_the_window_counts_as_delivered(tmp_path: Path) -> None:
    """Once newer objects moved the window on, an object written before it and not in the
    ledger is not sent (the ledger forgot what it did there)."""
    client = MemoryS3()
    client.put(f"{PREFIX}new.gz", body("new", 1), T0 + 7200)
    config = make_config(tmp_path)
    transport = Transport()
    pipeline(config, client, transport).run_pass()
    client.put(f"{PREFIX}ancient.gz", body("ancient", 1), T0)
    pipeline(config, client, transport).run_pass()
    assert transport.events == [event("new", 0)]
    assert saved(config)["ledger"]["since"] == T0 + 3600


def test_an_object_written_again_is_reported_once_and_not_sent_again(tmp_path: Path) -> None:
    """A delivered object replaced (new ETag) goes to the quarantine list with both ETags,
    once; its new content is not sent (on_replaced: report)."""
    client = MemoryS3()
    client.put(f"{PREFIX}a.gz", body("a", 2), T0)
    config = make_config(tmp_path)
    transport = Transport()
    pipeline(config, client, transport).run_pass()
    old = client.objects[f"{PREFIX}a.gz"].etag.strip('"')
    client.put(f"{PREFIX}a.gz", body("a", 3), T0 + 60)
    new = client.objects[f"{PREFIX}a.gz"].etag.strip('"')
    again = pipeline(config, client, transport)
    again.run_pass()
    assert transport.events == [event("a", 0), event("a", 1)]
    assert again.stats.quarantined == 1
    entry = json.loads((tmp_path / "state" / "quarantine.jsonl").read_text())
    assert (entry["key"], entry["etag"]) == (f"{PREFIX}a.gz", new)
    assert f"ETag {old} -> {new}" in entry["reason"] and "not sent again" in entry["reason"]
    third = pipeline(config, client, transport)
    third.run_pass()
    assert third.stats.quarantined == 0


def test_on_replaced_resend_sends_the_new_content(tmp_path: Path) -> None:
    """With on_replaced: resend the object written again is sent again, whole."""
    client = MemoryS3()
    client.put(f"{PREFIX}a.gz", body("a", 1), T0)
    config = make_config(tmp_path, "  on_replaced: resend\n")
    transport = Transport()
    pipeline(config, client, transport).run_pass()
    client.put(f"{PREFIX}a.gz", body("a", 2), T0 + 60)
    pipeline(config, client, transport).run_pass()
    assert transport.events == [event("a", 0), event("a", 0), event("a", 1)]


@pytest.mark.parametrize(
    ("start", "expected"), [("latest", ["new"]), ("2025-11-28T07:00:30Z", ["mid", "new"])]
)
def test_start_latest_or_a_time_skips_what_was_written_before(
    tmp_path: Path, start: str, expected: list[str]
) -> None:  # noqa: E501
    """start: latest sends only objects written after the first poll; a time, those written since."""
    client = MemoryS3()
    client.put(f"{PREFIX}old.gz", body("old", 1), T0)
    client.put(f"{PREFIX}mid.gz", body("mid", 1), T0 + 60)
    config = make_config(tmp_path, f"  start: '{start}'\n")
    transport = Transport()
    pipeline(config, client, transport).run_pass()
    client.put(f"{PREFIX}new.gz", body("new", 1), T0 + 60)  # the same second as mid: still new
    pipeline(config, client, transport).run_pass()
    assert transport.events == [event(name, 0) for name in expected]


def test_a_gz_that_is_text_is_read_and_a_corrupt_gzip_is_a_bad_file(tmp_path: Path) -> None:
    """The gzip signature decides: a .gz holding plain NDJSON is read; a damaged gzip is a bad
    file that on_bad_file: quarantine sets aside with its reason."""
    client = MemoryS3()
    client.put(f"{PREFIX}plain.gz", event("plain", 0) + b"\n", T0)
    client.put(f"{PREFIX}broken.gz", body("broken", 50)[:40], T0 + 1)
    client.put(f"{PREFIX}after.gz", body("after", 1), T0 + 2)
    config = make_config(tmp_path, "  on_bad_file: quarantine\n  bad_file_retry_secs: 0.01\n")
    transport = Transport()
    run = pipeline(config, client, transport)
    run.run_pass()
    assert transport.events == [event("plain", 0), event("after", 0)]
    entry = json.loads((tmp_path / "state" / "quarantine.jsonl").read_text())
    assert entry["key"] == f"{PREFIX}broken.gz" and run.stats.quarantined == 1


def test_status_words_and_backlog_name_the_ledger_and_the_oldest_object(tmp_path: Path) -> None:
    """describe() tells the ledger's size and window; backlog() the objects waiting and the oldest."""
    client = MemoryS3()
    client.put(f"{PREFIX}a.gz", body("a", 1), T0)
    config = make_config(tmp_path)
    run = pipeline(config, client, Transport())
    run.run_pass()
    client.put(f"{PREFIX}b.gz", body("b", 1), T0 + 5)
    client.put(f"{PREFIX}c.gz", body("c", 1), T0 + 9)
    assert run.position is not None
    text = run.source.describe(run.position.cursor)
    assert text.startswith(f"last done s3://{BUCKET}/{PREFIX}a.gz; ledger: 1 objects done since ")
    count, words = run.source.backlog(run.position.cursor) or (0, "")
    assert count == 2 and words.startswith("oldest written 2025-11-28T07:00:05Z") and "cato/b.gz" in words


def test_check_tells_what_is_at_the_top_of_the_prefix_and_which_folders_are_dated(tmp_path: Path) -> None:
    """forwarder check's line: objects and folders under the prefix, the dated ones named."""
    client = MemoryS3()
    client.put(f"{PREFIX}2025/11/28/a.gz", body("a", 1), T0)
    client.put(f"{PREFIX}2026/01/02/b.gz", body("b", 1), T0)
    client.put(f"{PREFIX}loose.gz", body("c", 1), T0)
    settings = make_config(tmp_path).pipeline().source
    passed, text = ListingSource(Bucket(client, settings), settings).check(None)
    assert passed and text == (
        f"s3://{BUCKET}/{PREFIX} is reachable: 1 objects and 2 folders (2 named by date: 2025/, 2026/...) "
        "at the top"
    )


def test_an_object_written_into_an_old_dated_folder_is_found_by_the_full_listing_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Dated polls skip folders older than the window (less a day); the hourly full listing
    still finds an object written late into one, delivers it, and warns."""
    client = MemoryS3()
    client.put(f"{PREFIX}2025/11/28/07/a.gz", body("a", 1), T0)
    config = make_config(tmp_path)
    settings = config.pipeline().source
    now = [0.0]
    source = ListingSource(Bucket(client, settings), settings, clock=lambda: now[0])
    transport = Transport()
    run = build_pipeline(config.pipeline(), once=True, source=source, transport=transport)
    run.open()
    run.run_pass()  # the first poll lists everything
    client.put(f"{PREFIX}2025/11/20/00/late.gz", body("late", 1), T0 + 60)  # 8 days late
    now[0] = 60.0
    run.run_pass()
    assert transport.events == [event("a", 0)]  # a dated poll does not look there
    now[0] = 3700.0  # full_listing_secs (3600) later
    run.run_pass()
    run.close()
    assert transport.events == [event("a", 0), event("late", 0)]
    assert (
        f"s3://{BUCKET}/{PREFIX}2025/11/20/00/late.gz was written into a folder dated before" in caplog.text
    )
