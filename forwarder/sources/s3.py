"""The S3 source: find the exporter's files in numeric order and download them.

A source yields ``LogObject``s (key, sequence number, size) from ``pending(expected)``, in
order, and ``fetch``es one to a temporary file, so memory stays bounded whatever the
object's size. This module's S3Source finds files by listing the bucket
(``discovery: list``); ``forwarder.sources.probe`` finds them by name (``discovery: probe``).

S3 calls retry with botocore's own retry modes (``source.s3_retry_mode``,
``source.s3_max_attempts``); what still fails becomes a one-line FetchError that says what
to check. A rejected key is a CredentialsError: the client is then built again, which
reads the credentials (file, environment, role) afresh, so a rotated key is picked up
without a restart.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from botocore import UNSIGNED

from forwarder.config import SourceConfig
from forwarder.errors import ConfigError, CredentialsError, FetchError

log = logging.getLogger(__name__)

_HINTS = {
    "NoSuchBucket": "the bucket does not exist (check source.bucket and source.region)",
    "AccessDenied": "access denied (is the access key still valid, and may it list and read this prefix?)",
    "AllAccessDisabled": "access to the bucket is disabled",
    "InvalidAccessKeyId": "the access key was rejected (deleted or rotated?): update "
    "source.access_key_id/secret_access_key, the environment or the credentials file",
    "SignatureDoesNotMatch": "the secret access key was rejected: update source.secret_access_key, "
    "the environment or the credentials file",
    "ExpiredToken": "the session token has expired: refresh the credentials",
    "NoSuchKey": "the object is gone (deleted by the 7-day retention?)",
    "404": "not found",
    "403": "access denied (is the access key still valid?)",
}
# Bytes per read of a streamed GET body.
CHUNK_BYTES = 1 << 20
# A body cut short mid-stream (botocore retries requests, not the reading of a body).
STREAM_ERRORS = (
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)
# Answers that mean "these credentials are not (or no longer) good": build the client again.
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)


@dataclass(frozen=True)
class LogObject:
    """One exporter file in the bucket."""

    key: str
    sequence: int
    size: int
    modified: float = 0.0  # S3 LastModified, epoch seconds (0: not known)


def epoch_of(value: Any) -> float:
    """An S3 LastModified (a datetime) as epoch seconds; 0.0 when there is none."""
    return float(value.timestamp()) if isinstance(value, datetime) else 0.0


def describe_s3_error(where: str, exc: Exception) -> FetchError:
    """Translate a botocore error into a one-line FetchError naming *where* and what to do."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
        kind = CredentialsError if code in CREDENTIAL_CODES or code in ("AccessDenied", "403") else FetchError
        return kind(f"{where}: {code}: {_HINTS.get(code, exc)}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return CredentialsError(
            f"{where}: no AWS credentials found: set source.access_key_id and "
            "source.secret_access_key, source.profile, or the AWS_* environment variables"
        )
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return FetchError(
            f"{where}: cannot reach the S3 endpoint ({exc}); check source.endpoint_url and the network"
        )
    return FetchError(f"{where}: {type(exc).__name__}: {exc}")


def make_s3_client(source: SourceConfig) -> Any:
    """A boto3 S3 client from the source settings (boto3's credential chain when no keys).

    Settings boto3 refuses (an unknown profile, a malformed region or endpoint URL) are a
    ConfigError naming the key.
    """
    try:
        session = boto3.session.Session(
            aws_access_key_id=source.access_key_id or None,
            aws_secret_access_key=source.secret_access_key or None,
            aws_session_token=source.session_token or None,
            profile_name=source.profile or None,
            region_name=source.region or None,
        )
        # botocore's "max_attempts" counts retries only; s3_max_attempts includes the first try
        retries: Any = {"mode": source.s3_retry_mode, "total_max_attempts": source.s3_max_attempts}
        config = botocore.config.Config(
            retries=retries,
            connect_timeout=source.connect_timeout_secs,
            read_timeout=source.read_timeout_secs,
        )
        if not (source.access_key_id or source.profile) and session.get_credentials() is None:
            log.info("no AWS credentials found: using anonymous (unsigned) requests")
            config = config.merge(botocore.config.Config(signature_version=UNSIGNED))
        return session.client("s3", endpoint_url=source.endpoint_url or None, config=config)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"source.profile: {exc} (check the name and the shared credentials file)") from None
    except botocore.exceptions.InvalidRegionError as exc:
        raise ConfigError(f"source.region: {exc}") from None
    except ValueError as exc:  # botocore: "Invalid endpoint: <url>"
        raise ConfigError(f"source.endpoint_url: {exc} (expected a URL such as https://host:port)") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"source: cannot set up the S3 client: {exc}") from None


def credentials_file_stamp() -> tuple[str, float]:
    """The shared credentials file boto3 reads, and its modification time (0 if absent)."""
    path = os.path.expanduser(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"))
    try:
        return path, os.stat(path).st_mtime
    except OSError:
        return path, 0.0


class S3Source:
    """Lists and downloads the files under one bucket prefix.

    The client is passed in; *client_factory*, when given, builds a fresh one after the
    credentials were rejected or the shared credentials file changed.
    """

    def __init__(
        self, client: Any, source: SourceConfig, client_factory: Callable[[], Any] | None = None
    ) -> None:
        self._client = client
        self._client_factory = client_factory
        self.bucket = source.bucket
        self.prefix = source.prefix
        self._pattern = re.compile(source.key_pattern)
        self._download_dir = source.download_dir or None
        self._max_attempts = source.s3_max_attempts
        self._warned_duplicates: set[int] = set()
        self._credentials_stamp = credentials_file_stamp()
        # Told every full listing (in sequence order), e.g. to count the files pending.
        self.on_listing: Callable[[list[LogObject]], None] | None = None

    @property
    def id(self) -> str:
        """Names this source in checkpoints and messages: ``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}"

    def refresh_credentials(self, force: bool = True) -> None:
        """Build the client again (re-reading credentials); without *force*, only if the file changed."""
        stamp = credentials_file_stamp()
        if self._client_factory is None or (not force and stamp == self._credentials_stamp):
            return
        log.info("reading the S3 credentials again%s", "" if force else f" ({stamp[0]} changed)")
        self._credentials_stamp = stamp
        self._client = self._client_factory()

    def pending(self, expected: int | None) -> Iterator[LogObject]:
        """The files from sequence *expected* on (all when None), in numeric order."""
        for obj in self.list_objects():
            if expected is None or obj.sequence >= expected:
                yield obj

    def bounds(self) -> tuple[LogObject, LogObject] | None:
        """The oldest and newest file now in the bucket, or None when there is none."""
        objects = self.list_objects()
        return (objects[0], objects[-1]) if objects else None

    def list_objects(self) -> list[LogObject]:
        """Every matching object under the prefix, in numeric sequence order."""
        found: list[LogObject] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    match = self._pattern.search(key[len(self.prefix) :])
                    if match and match.group(1) and match.group(1).isdigit():
                        size, modified = int(item.get("Size", 0)), epoch_of(item.get("LastModified"))
                        found.append(LogObject(key, int(match.group(1)), size, modified))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            error = describe_s3_error(f"listing {self.id}", exc)
            if "AccessDenied" in str(error):
                error = CredentialsError(
                    f"{error}; if the key may read files but not list them, set source.discovery: probe"
                )
            raise error from exc
        found.sort(key=lambda o: (o.sequence, o.key))
        self._warn_duplicates(found)
        if self.on_listing is not None:
            self.on_listing(found)
        return found

    def _warn_duplicates(self, objects: list[LogObject]) -> None:
        for before, after in zip(objects, objects[1:], strict=False):
            if before.sequence == after.sequence and after.sequence not in self._warned_duplicates:
                self._warned_duplicates.add(after.sequence)
                log.warning(
                    "%s and %s have the same sequence number %d; only the first is forwarded "
                    "(narrow source.prefix or source.key_pattern)",
                    before.key,
                    after.key,
                    after.sequence,
                )

    def fetch(self, obj: LogObject) -> Path:
        """Download *obj* to a new temporary file and return its path; the caller removes it.

        One plain GET streamed in 1 MiB chunks (one request, memory flat: boto3's managed
        download held +72 MB for a 246 MB object and asks HEAD first, which needs more than
        s3:GetObject on some stores). botocore retries the request; a body cut short
        mid-stream, which botocore does not retry, is fetched again from the start, up to
        source.s3_max_attempts times.
        """

        def download(handle: Any) -> None:
            for attempt in range(1, self._max_attempts + 1):
                handle.seek(0)
                handle.truncate()
                try:
                    body = self._client.get_object(Bucket=self.bucket, Key=obj.key)["Body"]
                    for chunk in body.iter_chunks(CHUNK_BYTES):
                        handle.write(chunk)
                    return
                except STREAM_ERRORS as exc:
                    if attempt == self._max_attempts:
                        raise
                    log.info("%s: download cut short (%s), fetching it again", self.label(obj), exc)

        return self._to_temporary_file(obj, download)

    def _to_temporary_file(self, obj: LogObject, download: Callable[[Any], None]) -> Path:
        """Run *download* into a new temporary file; errors become FetchError naming *obj*."""
        where = self._download_dir or tempfile.gettempdir()
        try:
            handle = tempfile.NamedTemporaryFile(
                prefix="forwarder-", suffix=".part", dir=self._download_dir, delete=False
            )
        except OSError as exc:  # source.download_dir missing or not writable
            raise FetchError(
                f"s3://{self.bucket}/{obj.key}: cannot store the download in {where}: {exc.strerror}"
            ) from exc
        path = Path(handle.name)
        try:
            with handle:
                download(handle)
        except BaseException as exc:
            path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise FetchError(
                    f"s3://{self.bucket}/{obj.key}: cannot store the download in {where}: {exc.strerror}"
                ) from exc
            if isinstance(exc, Exception) and not isinstance(exc, FetchError):
                # botocore's errors, and s3transfer's RetriesExceededError once botocore gave up
                raise describe_s3_error(f"s3://{self.bucket}/{obj.key}", exc) from exc
            raise
        return path

    @contextmanager
    def download(self, obj: LogObject) -> Iterator[Path]:
        """Download *obj* to a temporary file, yield its path, and remove it afterwards."""
        path = self.fetch(obj)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def label(self, obj: LogObject) -> str:
        """How *obj* is named in messages."""
        return f"s3://{self.bucket}/{obj.key}"
