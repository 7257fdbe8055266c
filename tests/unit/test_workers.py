"""Unit tests for forwarder.core.workers: objects read in worker processes give what reading
them in the pipeline's thread gives, in order, bounded, and dead or stopped workers leave
nothing behind."""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forwarder.compose import build_pipeline
from forwarder.config import parse_config
from forwarder.core import workers
from forwarder.core.reading import Batch, Batches, ReadSettings, read_batches
from forwarder.core.workers import CREDIT, WorkerPool
from forwarder.errors import BadFileError, WorkerDied
from forwarder.formats.encoder import EventEncoder
from forwarder.samples import cef_event, json_event, make_zip
from forwarder.sources.base import Unpack
from tests.unit.test_pipeline import BUCKET, PREFIX, FakeSource, FakeTransport, event, events_file, key

PASSWORD = "s3cret-Zürich"


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2)
    yield workers
    workers.close()


def encoder() -> EventEncoder:
    pipeline = parse_config("source: {bucket: b}\noutput: {hostname: fwd-test}\n", env={}).pipeline()
    return EventEncoder(pipeline.output, pipeline.parser)


def settings(max_events: int = 7, limit: int | None = None) -> ReadSettings:
    return ReadSettings(unpack=Unpack(PASSWORD), max_events=max_events, limit=limit, oversize="split")


def events(first: int, count: int) -> bytes:
    return b"".join(cef_event(i).encode() + b"\n" for i in range(first, first + count))


def objects(tmp_path: Path) -> list[Path]:
    """Objects of every kind: password zip of two members, plain zip with bad records and
    invalid UTF-8, gzip of JSON, text with an event over the size limit."""
    tricky = events(100, 10) + b"not an event\n\xff\xfeCEF:0|broken utf-8|x|1|a|b|5|\n" + events(110, 5)
    contents = {
        "a.zip": make_zip([("b.log", events(0, 30)), ("a.log", events(30, 25))], PASSWORD),
        "b.zip": make_zip([("m.log", tricky)]),
        "c.gz": gzip.compress(b"".join(json_event(i).encode() + b"\n" for i in range(40))),
        "d.txt": events(200, 3)
        + b"CEF:0|a|b|c|d|e|5|rt=1589813380123 msg="
        + b"x" * 3000
        + b"\n"
        + events(203, 3),
    }
    paths = []
    for name, data in contents.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def corrupt_second_member(tmp_path: Path) -> Path:
    """A zip whose second member fails its CRC check when read to its end."""
    data = bytearray(make_zip([("a.log", events(0, 20)), ("b.log", events(20, 20))]))
    entry = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)  # b.log's central directory entry
    data[entry + 16 : entry + 20] = b"\0\0\0\0"
    path = tmp_path / "bad.zip"
    path.write_bytes(bytes(data))
    return path


def in_process(path: Path, read: ReadSettings, first: int = 0) -> tuple[list[Batch], str | None]:
    """What reading *path* in this thread gives: its batches, and the bad-file error if one."""
    batches: list[Batch] = []
    try:
        batches.extend(read_batches(path, str(path), read, encoder(), first))
    except BadFileError as exc:
        return batches, str(exc)
    return batches, None


def taken(job: Iterator[Batch]) -> tuple[list[Batch], str | None]:
    batches: list[Batch] = []
    try:
        batches.extend(job)
    except BadFileError as exc:
        return batches, str(exc)
    return batches, None


def alive(pid: int) -> bool:
    """True while *pid* runs (a zombie no one reaped yet has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(condition: object, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_batches_are_those_read_in_process_in_order(tmp_path: Path, pool: WorkerPool) -> None:
    """Every object's batches (messages, counts, done, last, notes) equal the in-process
    reading's, in order, though all objects are opened at once and read side by side."""
    paths = objects(tmp_path)
    read = settings(limit=1024)
    jobs = [pool.open(path, str(path), read, encoder(), 0) for path in paths]
    resumed = pool.open(paths[0], str(paths[0]), read, encoder(), 23)
    for path, job in zip(paths, jobs, strict=True):
        assert taken(job) == in_process(path, read)
    assert taken(resumed) == in_process(paths[0], read, 23)
    assert any(batch.notes for path in paths for batch in in_process(path, read)[0])  # notes were compared


def test_a_bad_file_fails_after_the_same_batches_with_the_same_message(
    tmp_path: Path, pool: WorkerPool
) -> None:
    """BadFileError surfaces where reading in process raises it: after the same batches, same words."""
    path = corrupt_second_member(tmp_path)
    expected, error = in_process(path, settings())
    assert error is not None and "CRC" in error and expected
    assert taken(pool.open(path, str(path), settings(), encoder(), 0)) == (expected, error)


def test_an_error_in_a_worker_is_raised_with_its_traceback(tmp_path: Path, pool: WorkerPool) -> None:
    """Anything but a bad file (here: the file is gone) is an error naming the object and the cause."""
    job = pool.open(tmp_path / "gone.zip", "s3://b/gone.zip", settings(), encoder(), 0)
    with pytest.raises(RuntimeError, match=r"(?s)s3://b/gone.zip: the worker process.*FileNotFoundError"):
        next(job)


def test_a_worker_killed_mid_object_is_an_error_and_the_others_start_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Killing the worker fails the object being taken with WorkerDied (read again by the
    pipeline), says which process died how, and objects not taken from yet are read whole
    by a new worker."""
    big, other = tmp_path / "big.zip", tmp_path / "other.zip"
    big.write_bytes(make_zip([("m.log", events(0, 2000))]))
    other.write_bytes(make_zip([("m.log", events(5000, 50))]))
    pool = WorkerPool(1)  # one worker: both objects on it
    try:
        job = pool.open(big, "s3://b/big.zip", settings(), encoder(), 0)
        waiting = pool.open(other, "s3://b/other.zip", settings(), encoder(), 0)
        first = next(job)
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        with caplog.at_level(logging.ERROR), pytest.raises(WorkerDied) as died:
            for _ in job:  # what was made before the kill, then the error
                pass
        assert f"s3://b/big.zip: the worker process reading it (pid {pid}) died" in str(died.value)
        assert "killed by signal 9 (SIGKILL)" in str(died.value)
        assert f"worker process 1 (pid {pid}) died (killed by signal 9 (SIGKILL))" in caplog.text
        assert first == in_process(big, settings())[0][0]
        assert taken(waiting) == in_process(other, settings())
        assert pool.pids() and pid not in pool.pids()
    finally:
        pool.close()


def test_a_worker_dying_counts_against_an_object_only_when_it_was_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the job the worker said it was reading (its last "turn") fails as suspect, an
    attempt at that object: here one blocked opening a FIFO that nobody writes. A job on the
    same worker waiting for its next batch (credit given, the worker busy with the other)
    fails as not suspect: the object did not kill it. So does a job whose worker made every
    batch it was allowed and waits, reading nothing. Dead workers leave the pool's list."""
    monkeypatch.setattr(workers, "READ_AHEAD_BYTES", 1)  # credit only as batches are taken
    big, fifo = tmp_path / "big.zip", tmp_path / "fifo.zip"
    big.write_bytes(make_zip([("m.log", events(0, 500))]))
    os.mkfifo(fifo)
    pool = WorkerPool(1)
    try:
        held = pool.open(big, "s3://b/big.zip", settings(), encoder(), 0)
        next(held)
        assert wait_for(lambda: held.outstanding == 0 and pool._processes[0].reading is None)
        os.kill(pool.pids()[0], signal.SIGKILL)
        with pytest.raises(WorkerDied) as died:
            list(held)
        assert died.value.suspect is False  # it made its batch and waited: reading nothing

        waiting = pool.open(big, "s3://b/big.zip#2", settings(), encoder(), 0)
        reading = pool.open(fifo, "s3://b/fifo.zip", settings(), encoder(), 0)
        assert wait_for(lambda: any(p.reading == reading.number for p in pool._processes))
        next(waiting)  # made before the worker turned to the FIFO; taking it gives credit
        assert waiting.outstanding == 1
        for _ in range(2):  # the first death starts the FIFO's job again (nothing taken of it)
            assert wait_for(lambda: any(p.reading == reading.number for p in pool._processes))
            (pid,) = pool.pids()
            os.kill(pid, signal.SIGKILL)
            assert wait_for(lambda pid=pid: pid not in pool.pids())
        with pytest.raises(WorkerDied) as died:
            list(waiting)
        assert died.value.suspect is False  # credit given, but the worker was on the FIFO
        with pytest.raises(WorkerDied) as died:
            next(reading)
        assert died.value.suspect is True
        assert pool._processes == []  # the three dead ones are gone from it
    finally:
        pool.close()


def test_an_object_no_worker_can_be_started_for_is_read_in_the_takers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When no worker process can be started (out of processes or memory), the object is
    read by the thread that takes it, from its first record not handed over, as with
    workers: 1: the same batches, a warning that says why, no error and no attempt."""
    path = objects(tmp_path)[0]
    pool = WorkerPool(1)
    try:
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: pool._processes == [])

        def cannot(number: int) -> Any:
            raise OSError(11, "Resource temporarily unavailable")

        monkeypatch.setattr(workers, "WorkerProcess", cannot)
        with caplog.at_level(logging.WARNING):
            whole = pool.open(path, str(path), settings(), encoder(), 0)
            assert taken(whole) == in_process(path, settings())
            later = pool.open(path, str(path), settings(), encoder(), 8)
            assert taken(later) == in_process(path, settings(), first=8)
        assert (
            f"{path}: cannot start a worker process ([Errno 11] Resource temporarily unavailable)"
            in caplog.text
        )
        assert pool.pids() == []
    finally:
        pool.close()


def test_a_stalled_job_makes_a_bounded_few_batches_and_holds_no_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job its pipeline has not taken from reads ahead up to READ_AHEAD_BYTES, and one that
    is taken from stays CREDIT batch ahead; either way a pipeline that stops taking (its
    collector is down) leaves the worker to read for another pipeline meanwhile."""
    monkeypatch.setattr(workers, "READ_AHEAD_BYTES", 20_000)
    big, other = tmp_path / "big.zip", tmp_path / "other.zip"
    big.write_bytes(make_zip([("m.log", events(0, 700))]))  # 100 batches of 7
    other.write_bytes(make_zip([("m.log", events(1000, 300))]))
    pool = WorkerPool(1)
    try:
        ahead = pool.open(big, str(big), settings(), encoder(), 0)
        assert wait_for(lambda: sum(len(joined) for joined, _ in ahead.items) >= 20_000)
        taken_from = pool.open(big, str(big), settings(), encoder(), 0)
        first = next(taken_from)
        assert taken(pool.open(other, str(other), settings(), encoder(), 0)) == in_process(other, settings())
        time.sleep(0.2)
        made = sum(len(joined) for joined, _ in ahead.items)
        assert 20_000 <= made < 20_000 + 2 * 3_000  # up to the bytes, and two batches in credit past them
        # 99 batches left in the object: once taken from, it makes no more than CREDIT ahead
        # beyond what it read ahead before the take
        held = len(taken_from.items)
        assert held >= CREDIT and sum(len(joined) for joined, _ in taken_from.items) < 20_000 + 2 * 3_000
        time.sleep(0.2)
        assert len(taken_from.items) == held
        assert [first, *taken(taken_from)[0]] == taken(ahead)[0] == in_process(big, settings())[0]
    finally:
        pool.close()


def test_jobs_not_taken_from_share_one_read_ahead_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many jobs wait for their pipelines, what they read ahead together stays
    within READ_AHEAD_BYTES (and the batches in credit as it was crossed): memory does not
    grow with the pipelines or the cores. A job that stopped short reads on once taken from."""
    monkeypatch.setattr(workers, "READ_AHEAD_BYTES", 20_000)
    big = tmp_path / "big.zip"
    big.write_bytes(make_zip([("m.log", events(0, 700))]))  # 100 batches of 7, ~300 bytes an event
    pool = WorkerPool(2)
    try:
        jobs = [pool.open(big, f"{big}#{n}", settings(), encoder(), 0) for n in range(4)]

        def made() -> int:
            with pool.lock:
                return sum(len(joined) for job in jobs for joined, _ in job.items)

        assert wait_for(lambda: made() >= 20_000)
        time.sleep(0.3)
        assert 20_000 <= made() < 20_000 + 4 * 2 * 3_000  # each running job's credit at most
        assert all(taken(job) == in_process(big, settings()) for job in jobs)
    finally:
        pool.close()


def test_what_was_read_ahead_counts_until_taken_or_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs that read their whole small object ahead (they are over) still hold its batches
    for their pipelines: the budget counts them until taken or dropped, so however many such
    jobs wait, they hold no more than it (and the batches in credit as it was crossed)."""
    monkeypatch.setattr(workers, "READ_AHEAD_BYTES", 20_000)
    small = tmp_path / "small.zip"
    small.write_bytes(make_zip([("m.log", events(0, 21))]))  # 3 batches of 7
    whole = sum(len(b"\n".join(batch.messages)) for batch in in_process(small, settings())[0])
    biggest = max(len(b"\n".join(batch.messages)) for batch in in_process(small, settings())[0])
    running = workers.READ_AHEAD * 2  # jobs that run at a time, each up to two batches past the budget
    assert 16 * whole > 20_000 + running * 2 * biggest  # were they not counted, they would hold more
    pool = WorkerPool(2)
    try:
        jobs = [pool.open(small, f"{small}#{n}", settings(), encoder(), 0) for n in range(16)]

        def made() -> int:
            with pool.lock:
                return sum(len(item[0]) for job in jobs for item in job.items if isinstance(item, tuple))

        assert wait_for(lambda: made() >= 20_000)
        time.sleep(0.5)
        assert made() < 20_000 + running * 2 * biggest
        first = jobs[0]
        next(first)
        for job in jobs[1:]:
            job.close()  # dropped: the budget is free again for what is left of the first
        assert taken(first)[0] == in_process(small, settings())[0][1:]
        assert pool._ahead == 0
    finally:
        pool.close()


def test_close_ends_every_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After close() no worker process is left, also with objects half read (whose
    pipelines then get WorkerDied, not a silent end)."""
    monkeypatch.setattr(workers, "READ_AHEAD_BYTES", 10_000)  # none read to its end beforehand
    path = tmp_path / "big.zip"
    path.write_bytes(make_zip([("m.log", events(0, 500))]))
    pool = WorkerPool(2)
    jobs = [pool.open(path, str(path), settings(), encoder(), 0) for _ in range(3)]
    next(jobs[0])
    pids = pool.pids()
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    pool.close()
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(WorkerDied, match="closed"):
        list(jobs[1])


def test_a_job_opened_after_close_ends_as_closed_not_read_in_the_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A prefetch that opens an object while the forwarder stops: WorkerDied (the pool
    closed), not a warning that no worker could start and a read in the pipeline's thread."""
    path = tmp_path / "a.zip"
    path.write_bytes(make_zip([("m.log", events(0, 5))]))
    pool = WorkerPool(1)
    pool.close()
    with pytest.raises(WorkerDied, match="closed"):
        list(pool.open(path, str(path), settings(), encoder(), 0))
    assert "cannot start a worker process" not in caplog.text


def test_workers_end_when_the_forwarder_is_killed(tmp_path: Path) -> None:
    """kill -9 of the process that owns the pool leaves no worker behind: their pipes close."""
    path = tmp_path / "big.zip"
    path.write_bytes(make_zip([("m.log", events(0, 3000))]))
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from forwarder.config import parse_config
        from forwarder.core.reading import ReadSettings
        from forwarder.core.workers import WorkerPool
        from forwarder.formats.encoder import EventEncoder
        p = parse_config("source: {{bucket: b}}\\n", env={{}}).pipeline()
        pool = WorkerPool(2)
        encoder = EventEncoder(p.output, p.parser)
        read = ReadSettings(max_events=10)
        jobs = [pool.open(Path({str(path)!r}), "x", read, encoder, 0) for _ in range(2)]
        next(jobs[0])
        next(jobs[1])
        print(*pool.pids(), flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as owner:
        try:
            assert owner.stdout is not None
            pids = [int(pid) for pid in owner.stdout.readline().split()]
            assert len(pids) == 2 and all(alive(pid) for pid in pids)
            owner.kill()
            owner.wait()
            assert wait_for(lambda: not any(alive(pid) for pid in pids)), "workers outlived their forwarder"
        finally:
            owner.kill()


# --- under a pipeline ------------------------------------------------------------------


def pipeline_run(
    tmp_path: Path, reader: WorkerPool | None, on_send: Any = None
) -> tuple[Any, Any, list[str]]:
    """One pass of the production pipeline over three files (one with bad records), with
    prefetch: the transport's batches, the pipeline, and the dead-letter file's lines."""
    files = {
        7: events_file(7, 40, members=2),
        8: make_zip([("a.log", b"\n".join([event(8, 0), b"garbage", event(8, 1)]) + b"\n")]),
        9: events_file(9, 25),
    }
    config = parse_config(
        f"source:\n  bucket: {BUCKET}\n  prefix: {PREFIX}\n  prefetch_files: 2\n  max_attempts: 2\n"
        "  bad_file_retry_secs: 0.01\noutput:\n  header: none\n"
        f"checkpoint:\n  path: {tmp_path / 'state' / 'checkpoint.json'}\nbatch:\n  max_events: 6\n",
        env={},
    )
    transport = FakeTransport(on_send=on_send)
    pipeline = build_pipeline(
        config.pipeline(), once=True, source=FakeSource(tmp_path, files), transport=transport, reader=reader
    )
    pipeline.open()
    try:
        pipeline.run_pass()
    finally:
        pipeline.close()
    letters = (tmp_path / "state" / "dead_letter.jsonl").read_text().splitlines()
    return transport, pipeline, [json.loads(line)["reason"] for line in letters]


def test_a_pipeline_with_workers_sends_and_saves_what_it_does_without(
    tmp_path: Path, pool: WorkerPool
) -> None:
    """The same batches, in the same order, the same dead letters and the same final
    checkpoint, whether the pipeline reads itself or workers read ahead for it."""
    alone, alone_pipeline, alone_letters = pipeline_run(tmp_path / "alone", None)
    pooled, pooled_pipeline, pooled_letters = pipeline_run(tmp_path / "pooled", pool)
    assert pooled.batches == alone.batches
    assert [m for batch in pooled.batches for m in batch][:3] == [event(7, i) for i in range(3)]
    assert pooled_letters == alone_letters and len(alone_letters) == 1
    assert pooled_pipeline.position == alone_pipeline.position
    assert pooled_pipeline.stats.events_sent == alone_pipeline.stats.events_sent == 40 + 2 + 25


def test_workers_killed_under_a_pipeline_lose_nothing(
    tmp_path: Path, pool: WorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    """Killing every worker while the first file is being sent: each death logged with its
    pid and how, the files read again (from their last batch handed over, or whole when
    nothing of them was taken), every event delivered once, in order, no attempt left
    noted. (Which deaths count as an attempt: the tests above and below.)"""
    killed: list[int] = []

    def kill_workers(messages: list[bytes]) -> None:
        if not killed:
            killed.extend(pool.pids())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    alone, _, _ = pipeline_run(tmp_path / "alone", None)
    with caplog.at_level(logging.WARNING):
        pooled, pipeline, _ = pipeline_run(tmp_path / "pooled", pool, kill_workers)
    assert killed
    sent = [m for batch in pooled.batches for m in batch]
    assert sent == [m for batch in alone.batches for m in batch]  # once each, in order
    logged = caplog.text
    assert all(f"(pid {pid}) died (killed by signal 9 (SIGKILL))" in logged for pid in killed), logged
    assert pipeline.store.failure is None


class DiesOnce:
    """Reads in this process, but the first reading of file 7 ends in WorkerDied (*suspect*)
    after *after* batches (None: after its last batch, before the worker said it is done)."""

    def __init__(self, after: int | None, suspect: bool) -> None:
        self.after, self.suspect, self.died = after, suspect, False

    def open(self, path: Path, label: str, read: ReadSettings, encoder: EventEncoder, first: int) -> Batches:
        batches = read_batches(path, label, read, encoder, first)
        if self.died or not label.endswith(key(7)):
            return batches
        self.died = True
        return self._dying(batches)

    def _dying(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        for number, batch in enumerate(batches):
            if number == self.after:
                break
            yield batch
        raise WorkerDied(f"{key(7)}: the worker process reading it (pid 1) died (exit code 1)", self.suspect)


def test_a_worker_that_died_only_holding_an_object_costs_no_attempt_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A WorkerDied that is not suspect: said in a warning, the object read again from its
    last batch handed over, every event once and in order, no failed attempt noted."""
    alone, _, _ = pipeline_run(tmp_path / "alone", None)
    with caplog.at_level(logging.WARNING):
        again, pipeline, _ = pipeline_run(tmp_path / "again", DiesOnce(after=2, suspect=False))  # type: ignore[arg-type]
    assert [m for batch in again.batches for m in batch] == [m for batch in alone.batches for m in batch]
    lines = [r.getMessage() for r in caplog.records if "died" in r.getMessage()]
    assert len(lines) == 1 and "(not counted as a failed attempt at it; trying again in 0.01s)" in lines[0], (
        lines
    )
    assert pipeline.store.failure is None


def test_a_worker_dying_after_an_objects_last_batch_sends_nothing_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Once an object's last batch is handed over, nothing after it is read: a worker that
    dies then (before saying it is done) neither costs an attempt nor sends the object again."""
    alone, _, _ = pipeline_run(tmp_path / "alone", None)
    with caplog.at_level(logging.WARNING):
        again, pipeline, _ = pipeline_run(tmp_path / "again", DiesOnce(after=None, suspect=True))  # type: ignore[arg-type]
    assert again.batches == alone.batches
    assert not [r for r in caplog.records if "died" in r.getMessage()]
    assert pipeline.store.failure is None and pipeline.stats.events_sent == 40 + 2 + 25
