"""Unit tests for forwarder.core.reading: an object's records into batches, a block at a time."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from forwarder.config import parse_config
from forwarder.core.reading import Batch, Note, ReadSettings, read_batches
from forwarder.formats import records as records_module
from forwarder.formats.archive import Member
from forwarder.formats.encoder import EventEncoder
from forwarder.formats.records import Record, split_records
from forwarder.samples import cef_event, make_zip
from forwarder.sources.base import Unpack

PROPERTY = settings(
    database=None, max_examples=150, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink]
)


def encoder() -> EventEncoder:
    pipeline = parse_config("source: {bucket: b}\noutput: {header: none}\n", env={}).pipeline()
    return EventEncoder(pipeline.output, pipeline.parser)


def one_by_one(path: Path, read: ReadSettings, first: int) -> list[tuple[list[bytes], int, bool, list[Note]]]:
    """The batches as a record-by-record loop makes them: every record looked at in turn."""
    with zipfile.ZipFile(path) as archive:  # read whole: the reference, not the fast path
        members = [Member(name, io.BytesIO(archive.read(name))) for name in sorted(archive.namelist())]
    batches: list[tuple[list[bytes], int, bool, list[Note]]] = []
    pending: list[Record] = []
    notes: list[Note] = []
    done = first
    for record in split_records(members, str(path), read.format, read.max_record_bytes):
        if record.ordinal < first:
            continue
        done = record.ordinal + 1
        if record.kind == "bad":
            notes.append(Note("bad", record, record.reason))
            continue
        pending.append(record)
        if len(pending) >= read.max_events:
            batches.append(([r.text for r in pending], done, False, notes))
            pending, notes = [], []
    batches.append(([r.text for r in pending], done, True, notes))
    return batches


def shape(batch: Batch) -> tuple[list[bytes], int, bool, list[Note]]:
    return batch.messages, batch.done, batch.last, batch.notes


@PROPERTY
@given(
    kinds=st.lists(st.sampled_from(["good"] * 8 + ["bad", "blank", "crlf"]), max_size=1500),
    max_events=st.integers(1, 700),
    first=st.integers(0, 1600),
    small_blocks=st.booleans(),
)
def test_batches_are_the_record_by_record_ones(
    tmp_path_factory: pytest.TempPathFactory,
    kinds: list[str],
    max_events: int,
    first: int,
    small_blocks: bool,
) -> None:
    """Taking clean blocks in slices makes the batches (messages, done, last, notes) a
    record-by-record loop makes, from any first record, across blocks and members."""
    lines = []
    for i, kind in enumerate(kinds):
        text = cef_event(i).encode()
        lines.append(
            {"good": text + b"\n", "bad": b"garbage %d\n" % i, "blank": b"\n", "crlf": text + b"\r\n"}[kind]
        )
    half = len(lines) // 2
    path = tmp_path_factory.mktemp("reading") / "o.zip"
    path.write_bytes(make_zip([("a.log", b"".join(lines[:half])), ("b.log", b"".join(lines[half:]))]))
    read = ReadSettings(unpack=Unpack(), max_events=max_events)
    saved = records_module.READ_BYTES
    records_module.READ_BYTES = 4096 if small_blocks else saved  # many blocks per member
    try:
        got = [shape(batch) for batch in read_batches(path, str(path), read, encoder(), first)]
    finally:
        records_module.READ_BYTES = saved
    assert got == one_by_one(path, read, first)
