"""A bucket and prefix: listing and downloads, shared by the S3 kinds of source.

``Bucket`` lists a prefix (paginated) and downloads an object to a temporary file with one
plain GET streamed in 1 MiB chunks, so memory stays flat whatever the object's size. S3
calls retry with botocore's own retry modes (``s3_retry_mode``, ``s3_max_attempts``); what
still fails becomes a one-line FetchError that says what to check (``s3client``). A
rejected key is a CredentialsError: the client is then built again, which reads the
credentials (file, environment, role) afresh, so a rotated key is picked up without a
restart; so is a changed shared credentials file, at the next listing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import botocore.exceptions

from forwarder.config import S3Access
from forwarder.errors import CredentialsError, FetchError
from forwarder.sources.s3client import describe_s3_error

log = logging.getLogger(__name__)

# Bytes per read of a streamed GET body.
CHUNK_BYTES = 1 << 20
# A body cut short mid-stream (botocore retries requests, not the reading of a body).
STREAM_ERRORS = (
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)


def s3_url(bucket: str, key: str = "") -> str:
    """``s3://bucket/key``: how an object (or a prefix) is named in messages."""
    return f"s3://{bucket}/{key}"


def epoch_of(value: Any) -> float:
    """An S3 LastModified (a datetime) as epoch seconds; 0.0 when there is none."""
    return float(value.timestamp()) if isinstance(value, datetime) else 0.0


def credentials_file_stamp() -> tuple[str, float]:
    """The shared credentials file boto3 reads, and its modification time (0 if absent)."""
    path = os.path.expanduser(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"))
    try:
        return path, os.stat(path).st_mtime
    except OSError:
        return path, 0.0


_DOWNLOAD = re.compile(r"forwarder-(\d+)-.*\.part\Z")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@functools.cache
def remove_stale_downloads(directory: str) -> list[str]:
    """Remove the downloads (``forwarder-<pid>-*.part``) that processes now gone left in
    *directory*: a kill -9 cannot clean up after itself. Once per directory and process;
    returns the names removed."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed  # a missing download_dir is reported when a download needs it
    for entry in entries:
        match = _DOWNLOAD.match(entry.name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    if removed:
        log.info("removed %d downloads left in %s by forwarders that stopped", len(removed), directory)
    return removed


class Bucket:
    """A bucket and prefix: lists and downloads objects, naming them in errors.

    The client is passed in; *client_factory*, when given, builds a fresh one after the
    credentials were rejected or the shared credentials file changed.
    """

    def __init__(
        self,
        client: Any,
        access: S3Access,
        client_factory: Callable[[], Any] | None = None,
        download_dir: str = "",
    ) -> None:
        self.client = client
        self._client_factory = client_factory
        self.name = access.bucket
        self.prefix = access.prefix
        self._download_dir = download_dir or None
        self._max_attempts = access.s3_max_attempts
        self._credentials_stamp = credentials_file_stamp()
        remove_stale_downloads(download_dir or tempfile.gettempdir())

    @property
    def id(self) -> str:
        """``s3://bucket/prefix``."""
        return s3_url(self.name, self.prefix)

    def url(self, key: str) -> str:
        """``s3://bucket/key``."""
        return s3_url(self.name, key)

    def refresh_credentials(self, force: bool = True) -> None:
        """Build the client again (re-reading credentials); without *force*, only if the file changed."""
        stamp = credentials_file_stamp()
        if self._client_factory is None or (not force and stamp == self._credentials_stamp):
            return
        log.info("reading the S3 credentials again%s", "" if force else f" ({stamp[0]} changed)")
        self._credentials_stamp = stamp
        self.client = self._client_factory()

    def failed(self, where: str, exc: Exception) -> FetchError:
        """*exc* in words (describe_s3_error); rejected credentials are read again for next time."""
        error = describe_s3_error(where, exc)
        if isinstance(error, CredentialsError):
            self.refresh_credentials()
        return error

    def listing(self, prefix: str | None = None, start_after: str = "") -> Iterator[dict[str, Any]]:
        """Every object under *prefix* (the bucket's prefix by default), page by page, as
        S3 lists them (by key); FetchError when listing fails."""
        self.refresh_credentials(force=False)
        prefix = self.prefix if prefix is None else prefix
        args = {"Bucket": self.name, "Prefix": prefix, **({"StartAfter": start_after} if start_after else {})}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**args):
                yield from page.get("Contents", [])
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.failed(f"listing {s3_url(self.name, prefix)}", exc) from exc

    def download(self, key: str) -> Path:
        """Download *key* to a new temporary file and return its path; the caller removes it.

        One plain GET streamed in 1 MiB chunks (one request, memory flat: boto3's managed
        download held +72 MB for a 246 MB object and asks HEAD first, which needs more than
        s3:GetObject on some stores). botocore retries the request; a body cut short
        mid-stream, which botocore does not retry, is fetched again from the start, up to
        s3_max_attempts times.
        """
        where = self._download_dir or tempfile.gettempdir()
        try:
            handle = tempfile.NamedTemporaryFile(
                prefix=f"forwarder-{os.getpid()}-", suffix=".part", dir=self._download_dir, delete=False
            )
        except OSError as exc:  # source.download_dir missing or not writable
            raise FetchError(
                f"{self.url(key)}: cannot store the download in {where}: {exc.strerror}"
            ) from exc
        path = Path(handle.name)
        try:
            with handle:
                self._get(key, handle)
        except BaseException as exc:
            path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise FetchError(
                    f"{self.url(key)}: cannot store the download in {where}: {exc.strerror}"
                ) from exc
            if isinstance(exc, Exception) and not isinstance(exc, FetchError):
                raise self.failed(self.url(key), exc) from exc
            raise
        return path

    def _get(self, key: str, handle: Any) -> None:
        for attempt in range(1, self._max_attempts + 1):
            handle.seek(0)
            handle.truncate()
            try:
                body = self.client.get_object(Bucket=self.name, Key=key)["Body"]
                for chunk in body.iter_chunks(CHUNK_BYTES):
                    handle.write(chunk)
                return
            except STREAM_ERRORS as exc:
                if attempt == self._max_attempts:
                    raise
                log.info("%s: download cut short (%s), fetching it again", self.url(key), exc)
