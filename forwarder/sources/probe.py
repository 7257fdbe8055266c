"""``discovery: probe``: find the exporter's files by name, as Cato's client script did.

The next file's key is ``prefix + key_template.format(sequence=N)``. A GET of its first
byte answers "there" (with the size) or, with 404 or 403, "not written yet": a key that
may not list the bucket gets 403 for a missing key. So probing needs only s3:GetObject,
and works with anonymous (unsigned) requests.

When file N is missing, later files may still exist (the 7-day retention deleted N, or it
was never written). Probing N+1, N+2, N+4, ... up to ``max_gap_files`` ahead finds one if
the gap is no wider than the files still kept, then a binary search finds the first file
after the gap. The source sees the jump in sequence numbers and reports the gap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import botocore.exceptions

from forwarder.errors import ConfigError
from forwarder.sources.base import LogObject
from forwarder.sources.s3 import Bucket, epoch_of

log = logging.getLogger(__name__)

# A missing key: 404 NoSuchKey with s3:ListBucket, 403 AccessDenied without it.
MISSING_CODES = frozenset({"NoSuchKey", "404", "AccessDenied", "403"})


class Probing:
    """Finds files by GETting the next sequence number's key; never lists the bucket."""

    countable = False

    def __init__(self, bucket: Bucket, key_template: str, max_gap_files: int) -> None:
        self._bucket = bucket
        self._template = key_template
        self._max_gap = max_gap_files

    def key_of(self, sequence: int) -> str:
        """The key file *sequence* has."""
        return self._bucket.prefix + self._template.format(sequence=sequence)

    def stat(self, sequence: int) -> LogObject | None:
        """File *sequence* with its size, or None when it is not there (403/404)."""
        key = self.key_of(sequence)
        try:
            response = self._bucket.client.get_object(Bucket=self._bucket.name, Key=key, Range="bytes=0-0")
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING_CODES:
                return None
            if code == "InvalidRange":  # an empty object has no byte 0
                return LogObject(key, 0, 0.0, sequence)
            raise self._bucket.failed(self._bucket.url(key), exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._bucket.failed(self._bucket.url(key), exc) from exc
        response["Body"].close()
        total = str(response.get("ContentRange", "")).rpartition("/")[2]
        size = int(total) if total.isdigit() else 0
        return LogObject(key, size, epoch_of(response.get("LastModified")), sequence)

    def objects(self, first: int | None) -> Iterator[LogObject]:
        """Files from *first* on, probing one sequence number after the other."""
        if first is None:
            raise ConfigError(
                "source.start: with discovery: probe there is no listing to find the earliest or "
                "latest file; give the sequence number to start at (source.start: 7008) or import "
                "the client script's storage file (forwarder import-state)"
            )
        sequence = first
        while True:
            found = self.stat(sequence)
            if found is None:
                found = self._after_gap(sequence)
                if found is None:
                    return  # not written yet
            yield found
            sequence = found.ref + 1

    def _after_gap(self, missing: int) -> LogObject | None:
        """The first file after *missing* when later files exist within max_gap_files."""
        step, last_missing = 1, missing
        while step <= self._max_gap:
            found = self.stat(missing + step)
            if found is not None:
                return self._first_between(last_missing, found)
            last_missing = missing + step
            step *= 2
        return None

    def _first_between(self, missing: int, found: LogObject) -> LogObject:
        """Binary search for the first file after *missing* (absent) up to *found* (present)."""
        low, high = missing, found
        while high.ref - low > 1:
            middle = (low + high.ref) // 2
            probe = self.stat(middle)
            if probe is None:
                low = middle
            else:
                high = probe
        return high
