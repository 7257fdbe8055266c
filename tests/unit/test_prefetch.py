"""Unit tests for prefetch (forwarder.sources.prefetch): files downloaded ahead in order,
each started on as it arrives, and nothing left behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from forwarder.sources.base import Cursor, LogObject
from forwarder.sources.prefetch import Prefetcher


class Files:
    """A source of three objects, downloaded as small files under *root*."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = [LogObject(f"k{n}", size=1) for n in range(3)]

    def pending(self, cursor: Cursor) -> Iterator[LogObject]:
        yield from self.objects

    def fetch(self, obj: LogObject) -> Path:
        path = self.root / obj.key
        path.write_text(obj.key)
        return path


class Reading:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_file_whose_reading_cannot_start_ahead_is_handed_over_unstarted(tmp_path: Path) -> None:
    """When starting to read ahead fails (in the prefetch thread), the file still comes in its
    turn, without a reading: the consumer starts it itself and meets the error there."""
    started: list[Reading] = []

    def opened(obj: LogObject, path: Path) -> Reading:
        if obj.key == "k1":
            raise OSError("the worker pool is closed")
        started.append(Reading())
        return started[-1]

    prefetch = Prefetcher(Files(tmp_path), {}, 2, 1 << 20, opened)
    items = []
    for item in prefetch:
        items.append((item.obj.key if item.obj else None, item.path is not None, item.reading is not None))
        item.discard()
    prefetch.close()
    assert items == [("k0", True, True), ("k1", True, False), ("k2", True, True)]
    assert all(reading.closed for reading in started)
    assert list(tmp_path.iterdir()) == []


def test_closing_early_discards_what_was_downloaded_and_started(tmp_path: Path) -> None:
    """A pass that ends after the first file leaves no file on disk and no reading open."""
    started: list[Reading] = []

    def opened(obj: LogObject, path: Path) -> Reading:
        started.append(Reading())
        return started[-1]

    prefetch = Prefetcher(Files(tmp_path), {}, 2, 1 << 20, opened)
    for item in prefetch:
        item.discard()
        break
    prefetch.close()
    assert started and all(reading.closed for reading in started)
    assert list(tmp_path.iterdir()) == []
