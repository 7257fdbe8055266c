"""Unit tests for prefetch (forwarder.sources.prefetch): files downloaded ahead in order,
each started on as it arrives, and nothing left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from forwarder.errors import BadFileError, FetchError
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


class Failing(Files):
    """k1 cannot be had: as a bad file (it is gone for good) or as a failed download."""

    def __init__(self, root: Path, error: Exception) -> None:
        super().__init__(root)
        self.error = error

    def fetch(self, obj: LogObject) -> Path:
        if obj.key == "k1":
            raise self.error
        return super().fetch(obj)


def test_the_files_after_a_bad_one_still_come_and_none_after_a_failed_download(tmp_path: Path) -> None:
    """With past_bad (on_bad_file: quarantine), a bad file is handed over in its place and the
    walk goes on; without, or after a download that failed, the walk ends there, so nothing
    overtakes it (and nothing is downloaded for a pass that ends on the file)."""
    bad = BadFileError("k1: deleted after its notification was sent")
    for error, past_bad, expected in [
        (bad, True, ["k0", "k1!", "k2"]),
        (bad, False, ["k0", "k1!"]),
        (FetchError("k1: connection reset"), True, ["k0", "k1!"]),
    ]:
        prefetch = Prefetcher(Failing(tmp_path, error), {}, 2, 1 << 20, past_bad=past_bad)
        got = []
        for item in prefetch:
            assert item.obj is not None
            got.append(item.obj.key + ("!" if item.error is error else ""))
            item.discard()
        prefetch.close()
        assert got == expected
        assert list(tmp_path.iterdir()) == []


class Slow(Files):
    """k1's download takes until *release* is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.release = threading.Event()
        self.fetched = threading.Event()

    def fetch(self, obj: LogObject) -> Path:
        if obj.key == "k1":
            self.release.wait(10)
        path = super().fetch(obj)
        if obj.key == "k1":
            self.fetched.set()
        return path


def test_a_stop_does_not_wait_for_a_download_and_what_it_brings_is_removed(tmp_path: Path) -> None:
    """Once stop is set, the consumer's wait for the next file ends, close() returns without
    waiting for the download under way, and the file it brings later is removed."""
    source, stop = Slow(tmp_path), threading.Event()
    prefetch = Prefetcher(source, {}, 2, 1 << 20, None, stop)
    items = iter(prefetch)
    first = next(items)
    assert first.obj is not None and first.obj.key == "k0"
    first.discard()
    threading.Timer(0.2, stop.set).start()
    began = time.monotonic()
    assert next(items, None) is None  # k1 is still downloading: the stop ends the wait
    prefetch.close()
    assert time.monotonic() - began < 2
    source.release.set()
    assert source.fetched.wait(5)
    deadline = time.monotonic() + 5
    while list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(tmp_path.iterdir()) == []
