"""The objects a fleet shares in S3, written only with conditions: the whole of its consensus.

S3 (since 2024) refuses a write whose condition does not hold, atomically:

- ``If-None-Match: *`` on PUT: create the object only if there is none (412 otherwise);
- ``If-Match: <etag>`` on PUT and DELETE: replace or remove the object only if it is still
  the version with that ETag (412 otherwise; 404 when it is gone). AWS answers 409
  ConditionalRequestConflict to the loser of two conditional writes racing on one key.

A refused condition is ``Refused``; any other failure a FetchError in words. Every answer's
``Date`` header is kept with what it brought: a lease's age is S3's own ``Date`` minus the
object's ``Last-Modified``, one clock, so the forwarders' clocks never have to agree.

An ETag is the MD5 of the content (without KMS encryption): two writers writing the same
bytes would get the same ETag, so every body the fleet writes names its writer and tenure.

Some S3-compatible stores take these headers and ignore them; ``verify_conditions`` writes a
probe object under the prefix and refuses to coordinate through a store that does.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import botocore.exceptions

from forwarder.errors import ConfigError, CredentialsError
from forwarder.sources.s3 import epoch_of, s3_url
from forwarder.sources.s3client import describe_s3_error

log = logging.getLogger(__name__)

# Answers meaning "the condition did not hold": the version is another one (412), another
# conditional write on the key won (409), or there is no object to match (404).
REFUSALS = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey"})
# An ETag no object has: what verify_conditions matches against.
NO_SUCH_ETAG = '"00000000000000000000000000000000"'


class Refused(Exception):
    """S3 refused a conditional write: the object is not (or no longer) what was expected."""


@dataclass(frozen=True)
class Stored:
    """An object as read: its bytes and version, and S3's times (epoch seconds)."""

    body: bytes
    etag: str
    modified: float  # Last-Modified
    now: float  # the answer's Date


@dataclass(frozen=True)
class Listed:
    """An object as listed: its key below the prefix, its version and when it was written."""

    key: str
    etag: str
    modified: float


def server_time(response: dict[str, Any]) -> float:
    """The ``Date`` of an S3 answer, epoch seconds (this machine's clock if it has none)."""
    text = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date", "")
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return time.time()


def document(data: dict[str, Any]) -> bytes:
    """A JSON body as the fleet writes it."""
    return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"


class Objects:
    """The objects under one bucket and prefix; keys are given below the prefix.

    *client_factory* builds a fresh client after rejected credentials (a rotated key).
    """

    def __init__(
        self, client: Any, bucket: str, prefix: str, client_factory: Callable[[], Any] | None = None
    ):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self._client_factory = client_factory

    def url(self, key: str = "") -> str:
        """``s3://bucket/prefix/key``."""
        return s3_url(self.bucket, self.prefix + key)

    def _failed(self, key: str, exc: Exception) -> Exception:
        if isinstance(exc, botocore.exceptions.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in REFUSALS:
                return Refused(f"{self.url(key)}: {code}")
        error = describe_s3_error(self.url(key), exc)
        if isinstance(error, CredentialsError) and self._client_factory is not None:
            self.client = self._client_factory()
        return error

    def get(self, key: str) -> Stored | None:
        """The object at *key*, or None when there is none."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            body = answer["Body"].read()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            error = self._failed(key, exc)
            if isinstance(error, Refused):  # NoSuchKey
                return None
            raise error from exc
        return Stored(body, answer["ETag"], epoch_of(answer.get("LastModified")), server_time(answer))

    def put(self, key: str, body: bytes, *, match: str = "", create: bool = False) -> str:
        """Write *body* at *key* — only if there is no object with *create*, only over the
        version *match* with it — and return the new ETag; Refused when the condition fails."""
        conditions = {"IfNoneMatch": "*"} if create else {"IfMatch": match} if match else {}
        try:
            answer = self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=body,
                ContentType="application/json",
                **conditions,
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._failed(key, exc) from exc
        return str(answer["ETag"])

    def delete(self, key: str, match: str) -> None:
        """Remove *key* only if it is still the version *match*; Refused when it is not."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key, IfMatch=match)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._failed(key, exc) from exc

    def list(self, under: str) -> tuple[list[Listed], float]:
        """The objects whose keys start with *under*, in key order, and S3's time."""
        found: list[Listed] = []
        now = 0.0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + under
            )
            for page in pages:
                now = now or server_time(page)
                for item in page.get("Contents", []):
                    modified = item.get("LastModified")
                    stamp = epoch_of(modified) if isinstance(modified, datetime) else 0.0
                    found.append(Listed(item["Key"][len(self.prefix) :], item.get("ETag", ""), stamp))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._failed(under, exc) from exc
        return found, now or time.time()


def verify_conditions(objects: Objects, forwarder_id: str) -> None:
    """Prove that the store enforces If-None-Match and If-Match (PUT and DELETE) with a probe
    object; ConfigError naming what it ignored (a fleet cannot keep one owner per pipeline
    there), FetchError when the bucket cannot be reached."""
    key = f"probe/{forwarder_id}.json"
    body = document({"forwarder": forwarder_id, "probe": time.time()})
    leftover = objects.get(key)  # a probe a killed forwarder of the same name left
    if leftover is not None:
        objects.delete(key, leftover.etag)
    objects.put(key, body, create=True)
    ignored = []
    try:
        for condition, attempt in (
            ("If-None-Match: * on PUT", lambda: objects.put(key, body + b" ", create=True)),
            ("If-Match on PUT", lambda: objects.put(key, body + b"  ", match=NO_SUCH_ETAG)),
            ("If-Match on DELETE", lambda: objects.delete(key, NO_SUCH_ETAG)),
        ):
            try:
                attempt()
            except Refused:
                continue
            ignored.append(condition)
    finally:
        current = objects.get(key)
        if current is not None:
            objects.delete(key, current.etag)
    if ignored:
        raise ConfigError(
            f"coordination: {objects.url()} ignores {', '.join(ignored)} (a write it had to refuse went "
            "through): forwarders cannot share pipelines safely through this store; "
            "use AWS S3 or a store that enforces conditional writes, or coordination.kind: none"
        )
