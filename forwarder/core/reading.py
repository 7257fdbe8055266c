"""An object's bytes to batches of syslog messages: unpack, split, encode, fit to size.

``read_batches`` is the pure middle of the pipeline: it reads a fetched object (zip,
gzip or text: ``formats.archive``), splits it into records (``formats.records``), encodes
each batch (``formats.encoder``) and fits messages over the size limit
(``formats.oversize``). It sends nothing and writes nothing: what happened to records that
are not sent as they were (bad, repaired, truncated, split, dropped) travels with each
batch as ``Note``s, for the pipeline's reporting (``core.reports``). So it can run
wherever the bytes are, given its settings.

A ``Batch`` carries ``done``: how many of the object's records are accounted for (sent or
reported) once it is delivered — the record count the checkpoint keeps.

A ``Reader`` is where that runs: ``InProcess`` (``workers: 1``) in the pipeline's own
thread as it takes each batch; ``core.workers.WorkerPool`` in worker processes, reading
ahead while the pipeline sends. Both hand an object's batches over in order, raise
BadFileError at the same place, and stop reading at ``close()``.
"""

from __future__ import annotations

import itertools
import pickle
from array import array
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from forwarder.errors import BadFileError, FetchError
from forwarder.formats.archive import limit_members, open_members
from forwarder.formats.encoder import EventEncoder
from forwarder.formats.oversize import fit, header_length
from forwarder.formats.records import Record, record_blocks
from forwarder.sources.base import Unpack


@dataclass(frozen=True)
class ReadSettings:
    """Everything ``read_batches`` needs besides the encoder."""

    unpack: Unpack = Unpack()
    format: str = "auto"  # parser.format
    max_record_bytes: int = 1 << 20
    max_events: int = 1000  # batch.max_events
    limit: int | None = None  # the longest message to send: output.max_message_bytes, or less
    limit_name: str = "output.max_message_bytes"  # what sets the limit, for messages
    oversize: str = "truncate"  # output.oversize
    header: str = "rfc5424"  # output.header (to find where the event starts in a message)


class Note(NamedTuple):
    """A record not sent as it was, and why."""

    kind: str  # "bad" (not sent), "repaired" (invalid UTF-8 replaced), "truncated", "split", "dropped"
    record: Record
    reason: str
    size: int = 0  # truncated, split, dropped: the message's size
    pieces: list[bytes] | None = None  # truncated, split: what was sent instead


@dataclass
class Batch:
    """Messages to send together, and what delivering them accounts for."""

    messages: list[bytes]
    events: int  # events the messages carry (the pieces of a split event are one)
    records: int  # records read into it (sent or changed; bad ones are in notes)
    done: int  # records of the object accounted for once it is delivered
    last: bool  # the object's final batch
    notes: list[Note] = field(default_factory=list)

    def packed(self) -> tuple[bytes, tuple[Any, ...]]:
        """The batch as (its messages joined by LF, the rest): what a worker process sends
        (core.worker), its messages as one buffer and not thousands of objects. For 5,000
        messages 0.1 µs a message, both sides together; pickling the list took 1.1 µs."""
        sizes = array("I", map(len, self.messages)).tobytes()
        return b"\n".join(self.messages), (sizes, self.events, self.records, self.done, self.last, self.notes)

    @staticmethod
    def unpacked(joined: bytes, rest: tuple[Any, ...]) -> Batch:
        """The batch that ``packed`` gave (*joined*, *rest*)."""
        sizes, events, records, done, last, notes = rest
        lengths = array("I")
        lengths.frombytes(sizes)
        # A message holds no LF (records are lines; the encodings escape line breaks): cut
        # at them, in C. Should one hold an LF, there are more pieces than lengths: cut by length.
        messages = joined.split(b"\n") if lengths else []
        if len(messages) != len(lengths):
            ends = itertools.accumulate(length + 1 for length in lengths)
            messages = [joined[end - 1 - length : end - 1] for end, length in zip(ends, lengths, strict=True)]
        return Batch(messages, events, records, done, last, notes)


class Batches(Protocol):
    """An object's batches in order (BadFileError where its content cannot be read);
    ``close()`` stops reading it."""

    def __iter__(self) -> Iterator[Batch]: ...

    def __next__(self) -> Batch: ...

    def close(self) -> None: ...


class Reader(Protocol):
    """Where objects are read into batches (``open`` is called as soon as a file is downloaded)."""

    def open(
        self, path: Path, label: str, settings: ReadSettings, encoder: EventEncoder, first: int
    ) -> Batches:
        """The batches of the object at *path* from its record *first* on (``read_batches``)."""
        ...


class InProcess:
    """``workers: 1``: every object read in the thread that takes its batches, as it takes them."""

    def open(
        self, path: Path, label: str, settings: ReadSettings, encoder: EventEncoder, first: int
    ) -> Batches:
        return read_batches(path, label, settings, encoder, first)


def read_batches(
    path: Path, label: str, settings: ReadSettings, encoder: EventEncoder, first: int = 0
) -> Generator[Batch, None, None]:
    """The batches of the object stored at *path* (named *label*), from its record *first* on.

    Raises BadFileError when the object's content cannot be read (corrupt, wrong password,
    over the member limit, not what its name says).
    """
    unpack = settings.unpack
    members = limit_members(open_members(path, label, unpack.password), unpack.max_member_bytes, label)
    blocks = record_blocks(members, label, settings.format, settings.max_record_bytes)
    pending: list[Record] = []
    notes: list[Note] = []
    done, room = first, settings.max_events
    try:
        for block, clean in blocks:
            if not block or block[-1].ordinal < first:
                continue
            if clean and block[0].ordinal >= first:  # taken in slices: 0.2 µs a record less
                at = 0
                while at < len(block):
                    taken = block[at : at + room - len(pending)]
                    pending += taken
                    at += len(taken)
                    done = taken[-1].ordinal + 1
                    if len(pending) >= room:
                        batch, pending, notes = _batch(pending, notes, done, False, settings, encoder), [], []
                        yield batch  # the records let go first: a worker holds one batch less
                continue
            for record in block:
                if record.ordinal < first:
                    continue
                done = record.ordinal + 1
                if record.kind == "bad":
                    notes.append(Note("bad", record, record.reason))
                    continue
                pending.append(record)
                if len(pending) >= room:
                    batch, pending, notes = _batch(pending, notes, done, False, settings, encoder), [], []
                    yield batch  # the records let go first: a worker holds one batch less
    except BadFileError:
        raise
    except FetchError as exc:  # everything raised while reading a downloaded object is about its content
        raise BadFileError(str(exc)) from exc
    yield _batch(pending, notes, done, True, settings, encoder)


def _batch(
    records: list[Record],
    notes: list[Note],
    done: int,
    last: bool,
    settings: ReadSettings,
    encoder: EventEncoder,
) -> Batch:
    """Encode *records* and fit the messages to the size limit."""
    if not records:
        return Batch([], 0, 0, done, last, notes)
    encoded = encoder.encode(records)
    notes += [Note("bad", record, reason) for record, reason in encoded.rejected]
    notes += [Note("repaired", record, reason) for record, reason in encoded.repaired]
    messages, events = encoded.messages, len(encoded.messages)
    limit = settings.limit
    if limit is not None and messages and max(map(len, messages)) > limit:
        messages, events = _fitted(encoded.records, messages, limit, settings, notes)
    return Batch(messages, events, len(encoded.records), done, last, notes)


_DONE = {"truncate": "truncated", "split": "split", "drop": "dropped"}


def _fitted(
    records: list[Record], messages: list[bytes], limit: int, settings: ReadSettings, notes: list[Note]
) -> tuple[list[bytes], int]:
    """*messages* with those over *limit* truncated, split or dropped (output.oversize), and
    how many events are left."""
    fitted: list[bytes] = []
    events = 0
    for record, message in zip(records, messages, strict=True):
        if len(message) <= limit:
            fitted.append(message)
            events += 1
            continue
        pieces = fit(message, header_length(message, settings.header), limit, settings.oversize)
        fitted += pieces
        events += 1 if pieces else 0
        notes.append(Note(_DONE[settings.oversize], record, "", len(message), pieces))
    return fitted, events


def read_spec(
    spec: bytes, encoder_of: Callable[[EventEncoder], EventEncoder] = lambda encoder: encoder
) -> Generator[Batch, None, None]:
    """``read_batches`` of a worker pool job's spec: pickled (path, label, settings, encoder,
    first record); *encoder_of* may give an equal encoder kept from before instead."""
    path, label, settings, encoder, first = pickle.loads(spec)
    return read_batches(Path(path), label, settings, encoder_of(encoder), first)
