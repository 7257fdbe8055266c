"""A bucket and prefix, reached with boto3: credentials, listing, downloads, errors in words.

Shared by the S3 kinds of source. ``Bucket`` lists a prefix (paginated) and downloads an
object to a temporary file with one plain GET streamed in 1 MiB chunks, so memory stays
flat whatever the object's size. S3 calls retry with botocore's own retry modes
(``s3_retry_mode``, ``s3_max_attempts``); what still fails becomes a one-line FetchError
that says what to check. A rejected key is a CredentialsError: the client is then built
again, which reads the credentials (file, environment, role) afresh, so a rotated key is
picked up without a restart; so is a changed shared credentials file, at the next listing.

Credentials: static keys, a profile, or boto3's chain; with ``role_arn`` those assume the
role (``external_id`` and ``role_session_name`` passed to STS), refreshed by botocore before
they expire — the cross-account pattern of MSSPs and of Cato's own S3 integration.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.loaders
import botocore.session
from botocore import UNSIGNED

from forwarder.config import S3Access
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


def s3_url(bucket: str, key: str = "") -> str:
    """``s3://bucket/key``: how an object (or a prefix) is named in messages."""
    return f"s3://{bucket}/{key}"


def epoch_of(value: Any) -> float:
    """An S3 LastModified (a datetime) as epoch seconds; 0.0 when there is none."""
    return float(value.timestamp()) if isinstance(value, datetime) else 0.0


def describe_s3_error(where: str, exc: Exception) -> FetchError:
    """Translate a botocore error into a one-line FetchError naming *where* and what to do."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
        if getattr(exc, "operation_name", "") == "AssumeRole":
            message = exc.response.get("Error", {}).get("Message", "")
            return CredentialsError(
                f"{where}: cannot assume source.role_arn ({code}: {message}); "
                "check the role's trust policy, source.external_id and the credentials that assume it"
            )
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


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    """One loader of botocore's service models for every session of the process: each session
    would otherwise parse the S3 model for itself (measured: 200 clients took 2.5 GB and 35 s
    with their own loaders, 115 MB and 2.6 s with this one)."""
    return botocore.loaders.create_loader()


# botocore sessions are not safe to build from several threads at once (pipelines start together).
BUILDING = threading.Lock()


def _core_session() -> botocore.session.Session:
    """A new botocore session that reads service models through the shared loader."""
    core = botocore.session.Session()
    core.register_component("data_loader", _shared_loader())
    return core


def aws_session(access: S3Access) -> boto3.session.Session:
    """A boto3 session with the source's credentials; with role_arn, ones that assume it
    (build clients from it under BUILDING)."""
    base = boto3.session.Session(
        botocore_session=_core_session(),
        aws_access_key_id=access.access_key_id or None,
        aws_secret_access_key=access.secret_access_key or None,
        aws_session_token=access.session_token or None,
        profile_name=access.profile or None,
        region_name=access.region or None,
    )
    if not access.role_arn:
        return base
    extra = {"RoleSessionName": access.role_session_name}
    if access.external_id:
        extra["ExternalId"] = access.external_id
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=base._session.create_client,
        source_credentials=base.get_credentials(),
        role_arn=access.role_arn,
        extra_args=extra,
    )
    assumed = _core_session()
    # botocore has no public setter for refreshable credentials; this is how its own
    # assume-role provider hands them to a session.
    assumed._credentials = botocore.credentials.DeferredRefreshableCredentials(  # type: ignore[attr-defined]
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )
    return boto3.session.Session(botocore_session=assumed, region_name=access.region or None)


def _client(access: S3Access) -> Any:
    session = aws_session(access)
    # botocore's "max_attempts" counts retries only; s3_max_attempts includes the first try
    retries: Any = {"mode": access.s3_retry_mode, "total_max_attempts": access.s3_max_attempts}
    config = botocore.config.Config(
        retries=retries,
        connect_timeout=access.connect_timeout_secs,
        read_timeout=access.read_timeout_secs,
    )
    if not (access.access_key_id or access.profile or access.role_arn) and session.get_credentials() is None:
        log.info("no AWS credentials found: using anonymous (unsigned) requests")
        config = config.merge(botocore.config.Config(signature_version=UNSIGNED))
    return session.client("s3", endpoint_url=access.endpoint_url or None, config=config)


def make_s3_client(access: S3Access) -> Any:
    """A boto3 S3 client from the source settings (boto3's credential chain when no keys).

    Settings boto3 refuses (an unknown profile, a malformed region or endpoint URL) are a
    ConfigError naming the key.
    """
    try:
        with BUILDING:
            return _client(access)
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
                prefix="forwarder-", suffix=".part", dir=self._download_dir, delete=False
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
