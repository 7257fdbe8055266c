"""Unit tests for forwarder.sources.partitions: dated folders read, old ones not listed."""

from __future__ import annotations

import calendar
import time

import pytest

from forwarder.config import parse_config
from forwarder.sources.partitions import PARTITION_MARGIN_SECS, Partitioned, Span, dated_end, span_of
from forwarder.sources.s3 import Bucket
from tests.support.memory_s3 import MemoryS3


def at(*parts: int) -> int:
    return calendar.timegm((*parts, *(1, 1, 0, 0, 0)[len(parts) - 1 :]))


@pytest.mark.parametrize(
    ("segment", "parent", "span"),
    [
        ("2026", None, (at(2026), at(2027))),
        ("11", (2026,), (at(2026, 11), at(2026, 12))),
        ("12", (2026,), (at(2026, 12), at(2027, 1))),
        ("28", (2026, 11), (at(2026, 11, 28), at(2026, 11, 29))),
        ("07", (2026, 11, 28), (at(2026, 11, 28, 7), at(2026, 11, 28, 8))),
        ("2026-11-28", None, (at(2026, 11, 28), at(2026, 11, 29))),
        ("2026-11-28-07", None, (at(2026, 11, 28, 7), at(2026, 11, 28, 8))),
        ("dt=2026-11-28", None, (at(2026, 11, 28), at(2026, 11, 29))),
        ("dt=20261128", None, (at(2026, 11, 28), at(2026, 11, 29))),
        ("year=2026", None, (at(2026), at(2027))),
        ("month=02", (2026,), (at(2026, 2), at(2026, 3))),
    ],
)
def test_dated_folder_names_read_as_time_spans(
    segment: str, parent: tuple[int, ...] | None, span: tuple[int, int]
) -> None:  # noqa: E501
    """Year/month/day/hour folders, dashed dates and key=value folders give their UTC spans."""
    outer = Span(0, 0, parent) if parent else None
    found = span_of(segment, outer)
    assert found is not None and (found.start, found.end) == span


@pytest.mark.parametrize(
    ("segment", "parent"),
    [
        ("20000131", None),  # 8 digits bare: could be an account ID
        ("1764313200", None),  # epoch seconds
        ("5f0c2b7e-3b1a-4d51-9b43-0d1c9a2e7f10", None),
        ("13", (2026,)),  # no month 13
        ("30", (2026, 2)),  # no 30 February
        ("month=11", None),  # a month of no year
        ("1234", None),
        ("11", None),
    ],
)
def test_names_that_are_no_dates_are_not_read_as_dates(segment: str, parent: tuple[int, ...] | None) -> None:
    """Account IDs, UUIDs, epoch numbers and impossible dates are plain folders."""
    assert span_of(segment, Span(0, 0, parent) if parent else None) is None


def test_the_innermost_dated_folder_of_a_key_gives_its_end() -> None:
    """cato/2026/11/28/07/x.gz ends with its hour; a key outside dated folders has none."""
    assert dated_end("cato/2026/11/28/07/x.gz") == at(2026, 11, 28, 8)
    assert dated_end("20000232/dt=2026-11-28/x.gz") == at(2026, 11, 29)
    assert dated_end("x.gz") is None


def walker(client: MemoryS3, prefix: str = "folder/") -> Partitioned:
    settings = parse_config(f"source:\n  bucket: b\n  prefix: {prefix}\n", env={}).pipeline().source
    return Partitioned(Bucket(client, settings))


def hourly(client: MemoryS3, days: int, first_day: tuple[int, int, int] = (2026, 11, 1)) -> list[str]:
    """An object an hour under folder/20000232/YYYY/MM/DD/HH/ for *days* days."""
    keys = []
    start = at(*first_day)
    for hour in range(days * 24):
        moment = start + hour * 3600
        key = f"folder/20000232/{time.strftime('%Y/%m/%d/%H', time.gmtime(moment))}/obj-{hour}.gz"
        client.put(key, b"x", moment + 60)
        keys.append(key)
    return keys


def test_a_walk_lists_only_the_folders_inside_the_window_and_the_margin() -> None:
    """With hour folders over 40 days, a cutoff on day 30 lists from day 29 (the margin) on,
    in a handful of requests instead of every key."""
    client = MemoryS3(page_size=100)
    keys = hourly(client, 40)
    cutoff = at(2026, 11, 30, 12)
    found = [item["Key"] for item in walker(client).objects(cutoff)]
    wanted = [k for k in keys if client.objects[k].modified >= cutoff - PARTITION_MARGIN_SECS]
    assert set(wanted) <= set(found)
    assert len(found) <= len(wanted) + 48  # at most the folders next to the cutoff's, listed whole
    assert client.pages < 20
    everything = walker(client)
    assert sorted(item["Key"] for item in everything.objects(None)) == sorted(keys)
    assert everything.requests == -(-len(keys) // 100)


def test_folders_listed_in_one_go_use_start_after_only_past_the_straddling_folder() -> None:
    """The dated folders after the cutoff's are listed with StartAfter = that folder minus its
    '/' plus '0': every key under it sorts before, every later folder after."""
    client = MemoryS3()
    hourly(client, 3, (2026, 11, 27))
    list(walker(client).objects(at(2026, 11, 29, 12) + 1800 + PARTITION_MARGIN_SECS))
    starts = [call["StartAfter"] for call in client.listings if call["StartAfter"]]
    assert starts == ["folder/20000232/2026/11/29/120"]


def test_folders_whose_names_do_not_sort_by_time_are_listed_one_by_one() -> None:
    """Month folders written without a leading zero (9, 10, 11) never get a StartAfter."""
    client = MemoryS3()
    for month in (9, 10, 11):
        client.put(f"folder/2026/{month}/x.gz", b"x", at(2026, month, 15))
    found = {item["Key"] for item in walker(client).objects(at(2026, 10, 20) + PARTITION_MARGIN_SECS)}
    assert found == {"folder/2026/10/x.gz", "folder/2026/11/x.gz"}
    assert not any(call["StartAfter"] for call in client.listings)


def test_plain_folders_and_loose_keys_beside_dated_ones_are_always_listed() -> None:
    """A folder that is not dated, and keys next to the dated folders, are never skipped."""
    client = MemoryS3()
    client.put("folder/2020/01/old.gz", b"x", at(2020, 1, 2))
    client.put("folder/2026/11/new.gz", b"x", at(2026, 11, 2))
    client.put("folder/loose.gz", b"x", at(2020, 1, 1))
    client.put("folder/retries/again.gz", b"x", at(2020, 1, 1))
    found = {item["Key"] for item in walker(client).objects(at(2026, 11, 1) + PARTITION_MARGIN_SECS)}
    assert found == {"folder/2026/11/new.gz", "folder/loose.gz", "folder/retries/again.gz"}


def test_a_level_of_many_plain_folders_is_listed_whole() -> None:
    """Folders per object (UUIDs) are not walked one by one: one flat listing of the level."""
    client = MemoryS3()
    for i in range(40):
        client.put(f"folder/{i:08x}-uuid/events.gz", b"x", at(2026, 11, 1))
    walk = walker(client)
    assert len(list(walk.objects(at(2026, 11, 2)))) == 40
    assert walk.requests == 2  # the top level, then all of it
