"""Listing a prefix without listing its whole history: date-named folders older than a cutoff.

A poll that lists every object under the prefix costs one request per 1,000 objects and
the parsing of each: it grows with the bucket's history (``benchmarks/listing.py``). Where
the keys below the prefix sit in date-named folders — ``2026/11/28/07/``, ``2026-11-28/``,
``dt=20261128/``, ``year=2026/month=11/`` — a folder whose time span ends
before the cutoff need not be listed. ``Partitioned.objects(cutoff)`` walks the folders
level by level (ListObjectsV2 with ``Delimiter="/"``): a folder of older time is skipped, a
folder that straddles the cutoff is walked into, and the folders after it are listed in
one go with ``StartAfter`` — provably safe there, because the names of dated folders at one
level sort as their times do (checked, else each is listed on its own) and everything
under the straddling folder sorts before ``<folder minus its "/">0``. Folders that are not
dated are listed whole; a level without dated folders is walked into when it has few
(an account folder), else listed whole.

What it assumes: an object is written into a folder no later than a day (PARTITION_MARGIN)
after the folder's time span ends (the cutoff is moved back by that), in UTC or any zone
up to ±14 h. The polling source lists everything every ``source.full_listing_secs`` and
reports an object found there that a dated listing would have skipped.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from forwarder.sources.s3 import Bucket, s3_url

# How long after a dated folder's span objects may still be written into it (and time zones).
PARTITION_MARGIN_SECS = 86_400
# A level without dated folders is walked into when it has at most this many folders.
MAX_FANOUT = 16
MAX_DEPTH = 8

_UNITS = ("year", "month", "day", "hour", "minute")
_HIVE = {"year": 0, "y": 0, "month": 1, "m": 1, "day": 2, "d": 2, "hour": 3, "h": 3, "minute": 4}
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[-T_](\d{2}))?)?)?\Z")
# 20261128 and 2026112807 only as a key=value folder (dt=20261128): a bare 8-digit folder
# name may be an account ID (Cato's are 8 digits) that happens to read as a date.
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})?\Z")


@dataclass(frozen=True)
class Span:
    """The time a dated folder stands for: [start, end) in epoch seconds, and its parts."""

    start: int
    end: int
    parts: tuple[int, ...]  # year, month, day, hour, minute: as many as are known


def _span(parts: tuple[int, ...]) -> Span | None:
    """The span of a date given by its first *parts*; None when it is no date."""
    year, month, day, hour, minute = (*parts, *(1, 1, 0, 0)[len(parts) - 1 :])
    if not (1970 <= year <= 2999 and 1 <= month <= 12 and 0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    start = calendar.timegm((year, month, day, hour, minute, 0))
    if len(parts) == 1:
        end = calendar.timegm((year + 1, 1, 1, 0, 0, 0))
    elif len(parts) == 2:
        end = calendar.timegm((year + month // 12, month % 12 + 1, 1, 0, 0, 0))
    else:
        end = start + (86_400, 3_600, 60)[len(parts) - 3]
    return Span(start, end, parts)


def span_of(segment: str, parent: Span | None) -> Span | None:
    """The span a folder name stands for inside a folder of span *parent* (None: not dated):
    ``2026``; ``11`` in 2026; ``2026-11-28``, ``2026-11-28-07``; ``year=2026``,
    ``dt=2026-11-28``, ``dt=20261128``. None when the name is not a date."""
    name, _, value = segment.rpartition("=")
    unit = _HIVE.get(name.lower()) if name else None
    known = parent.parts if parent else ()
    if value.isdigit() and len(value) <= 2 and known:  # the next part of the parent's date
        if (unit is not None and unit != len(known)) or len(known) >= len(_UNITS):
            return None
        return _span((*known, int(value)))
    match = _DATE.match(value) or (_COMPACT.match(value) if name else None)
    if match is None or (name and unit not in (None, 0)):
        return None
    parts = tuple(int(g) for g in match.groups() if g is not None)
    if known and parts[: len(known)] != known:
        return None
    return _span(parts)


def dated_end(name: str) -> int | None:
    """When the innermost dated folder in an object's *name* (its key after the prefix) ends."""
    span = None
    for segment in name.split("/")[:-1]:
        inner = span_of(segment, span)
        if inner is not None:
            span = inner
    return span.end if span else None


class Partitioned:
    """Lists a bucket's prefix, skipping dated folders older than a cutoff; counts requests."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self.requests = 0  # ListObjectsV2 calls made (pages), for the benchmark and tests

    def objects(self, cutoff: float | None) -> Iterator[dict[str, Any]]:
        """Every object under the prefix (as S3 lists them), but those in dated folders that
        end before *cutoff* - PARTITION_MARGIN_SECS (None: list everything)."""
        self.bucket.refresh_credentials(force=False)
        if cutoff is None:
            yield from self._flat(self.bucket.prefix)
            return
        seen: set[str] = set()
        for item in self._walk(self.bucket.prefix, None, cutoff - PARTITION_MARGIN_SECS, 0):
            if item["Key"] not in seen:
                seen.add(item["Key"])
                yield item

    def _pages(self, prefix: str, **args: str) -> Iterator[dict[str, Any]]:
        """The pages of ListObjectsV2 under *prefix* (with Delimiter, StartAfter...)."""
        args = {"Bucket": self.bucket.name, "Prefix": prefix, **{k: v for k, v in args.items() if v}}
        try:
            for page in self.bucket.client.get_paginator("list_objects_v2").paginate(**args):
                self.requests += 1
                yield page
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.bucket.failed(f"listing {s3_url(self.bucket.name, prefix)}", exc) from exc

    def _flat(self, prefix: str, start_after: str = "") -> Iterator[dict[str, Any]]:
        for page in self._pages(prefix, StartAfter=start_after):
            yield from page.get("Contents", [])

    def level(self, prefix: str) -> tuple[list[dict[str, Any]], list[str]]:
        """The objects right under *prefix* and its folders (one delimited listing)."""
        contents: list[dict[str, Any]] = []
        folders: list[str] = []
        for page in self._pages(prefix, Delimiter="/"):
            contents += page.get("Contents", [])
            folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return contents, folders

    def _walk(self, prefix: str, parent: Span | None, cutoff: float, depth: int) -> Iterator[dict[str, Any]]:
        contents, folders = self.level(prefix)
        yield from contents
        spans = {f: span_of(f[len(prefix) : -1], parent) for f in folders}
        dated = [f for f in folders if spans[f] is not None]
        plain = [f for f in folders if spans[f] is None]
        if not dated:
            if plain and (depth >= MAX_DEPTH or len(plain) > MAX_FANOUT):
                yield from self._flat(prefix)  # one listing for all of them
                return
            for folder in plain:
                yield from self._walk(folder, parent, cutoff, depth + 1)
            return
        for folder in plain:
            yield from self._flat(folder)
        by_time = sorted(dated, key=lambda f: (spans[f].start, spans[f].end))  # type: ignore[union-attr]
        sortable = by_time == sorted(dated) and not any(
            b.startswith(a[:-1]) for a, b in zip(sorted(dated), sorted(dated)[1:], strict=False)
        )
        later: list[str] = []
        for folder in by_time:
            span = spans[folder]
            assert span is not None
            if span.end <= cutoff:
                continue
            if span.start < cutoff:
                yield from self._walk(folder, span, cutoff, depth + 1)
            elif sortable:
                later.append(folder)
            else:
                yield from self._flat(folder)
        if later:  # every key under a folder before them sorts before this
            before = [f for f in by_time if f < later[0]]
            yield from self._flat(prefix, before[-1][:-1] + "0") if before else self._flat(prefix)
