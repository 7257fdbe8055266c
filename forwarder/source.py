"""The S3 source: list the exporter's files in numeric order and download them.

A source yields ``LogObject``s (key, sequence number, size) and downloads one to a
temporary file, so memory stays bounded whatever the object's size. S3 calls retry with
botocore's own retry modes (``source.retry_mode``, ``source.max_attempts``); what still
fails becomes a one-line FetchError that says what to check.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from forwarder.config import SourceConfig
from forwarder.errors import ConfigError, FetchError

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


@dataclass(frozen=True)
class LogObject:
    """One exporter file in the bucket."""

    key: str
    sequence: int
    size: int


def describe_s3_error(where: str, exc: Exception) -> FetchError:
    """Translate a botocore error into a one-line FetchError naming *where* and what to do."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
        return FetchError(f"{where}: {code}: {_HINTS.get(code, exc)}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return FetchError(
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
        # botocore's "max_attempts" counts retries only; source.max_attempts includes the first try
        retries: Any = {"mode": source.retry_mode, "total_max_attempts": source.max_attempts}
        config = botocore.config.Config(
            retries=retries,
            connect_timeout=source.connect_timeout_secs,
            read_timeout=source.read_timeout_secs,
        )
        return session.client("s3", endpoint_url=source.endpoint_url or None, config=config)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"source.profile: {exc} (check the name and the shared credentials file)") from None
    except botocore.exceptions.InvalidRegionError as exc:
        raise ConfigError(f"source.region: {exc}") from None
    except ValueError as exc:  # botocore: "Invalid endpoint: <url>"
        raise ConfigError(f"source.endpoint_url: {exc} (expected a URL such as https://host:port)") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"source: cannot set up the S3 client: {exc}") from None


class S3Source:
    """Lists and downloads the files under one bucket prefix; the client is passed in."""

    def __init__(self, client: Any, source: SourceConfig) -> None:
        self._client = client
        self.bucket = source.bucket
        self.prefix = source.prefix
        self._pattern = re.compile(source.key_pattern)
        self._download_dir = source.download_dir or None
        self._warned_duplicates: set[int] = set()

    @property
    def id(self) -> str:
        """Names this source in checkpoints and messages: ``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}"

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
                        found.append(LogObject(key, int(match.group(1)), int(item.get("Size", 0))))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise describe_s3_error(f"listing {self.id}", exc) from exc
        found.sort(key=lambda o: (o.sequence, o.key))
        self._warn_duplicates(found)
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

    @contextmanager
    def download(self, obj: LogObject) -> Iterator[Path]:
        """Download *obj* to a temporary file, yield its path, and remove it afterwards."""
        where = self._download_dir or tempfile.gettempdir()
        try:
            temporary = tempfile.NamedTemporaryFile(
                prefix="forwarder-", suffix=".part", dir=self._download_dir
            )
        except OSError as exc:  # source.download_dir missing or not writable
            raise FetchError(
                f"s3://{self.bucket}/{obj.key}: cannot store the download in {where}: {exc.strerror}"
            ) from exc
        with temporary as handle:
            try:
                self._client.download_fileobj(self.bucket, obj.key, handle)
                handle.flush()
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise describe_s3_error(f"s3://{self.bucket}/{obj.key}", exc) from exc
            except OSError as exc:
                raise FetchError(
                    f"s3://{self.bucket}/{obj.key}: cannot store the download in {where}: {exc.strerror}"
                ) from exc
            yield Path(handle.name)

    def label(self, obj: LogObject) -> str:
        """How *obj* is named in messages."""
        return f"s3://{self.bucket}/{obj.key}"
