"""An S3 client from the source's settings, and S3's errors in words.

Credentials: static keys, a profile, or boto3's chain; with ``role_arn`` those assume the
role (``external_id`` and ``role_session_name`` passed to STS), refreshed by botocore before
they expire — the cross-account pattern of MSSPs and of Cato's own S3 integration. Every
client of the process reads botocore's service models through one shared loader.
"""

from __future__ import annotations

import functools
import logging
import threading
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
# Answers that mean "these credentials are not (or no longer) good": build the client again.
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)


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
        error = kind(f"{where}: {code}: {_HINTS.get(code, exc)}")
        error.code = code
        return error
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


def make_s3_client(access: S3Access, part: str = "source") -> Any:
    """A boto3 S3 client from the settings of config section *part* (boto3's credential chain
    when no keys).

    Settings boto3 refuses (an unknown profile, a malformed region or endpoint URL) are a
    ConfigError naming the key.
    """
    try:
        with BUILDING:
            return _client(access)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"{part}.profile: {exc} (check the name and the shared credentials file)") from None
    except botocore.exceptions.InvalidRegionError as exc:
        raise ConfigError(f"{part}.region: {exc}") from None
    except ValueError as exc:  # botocore: "Invalid endpoint: <url>"
        raise ConfigError(f"{part}.endpoint_url: {exc} (expected a URL such as https://host:port)") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"{part}: cannot set up the S3 client: {exc}") from None
