"""Unit tests for forwarder.sources.s3 and .exporter: the exporter's files listed and downloaded over a
fake client (no S3 server), and S3 errors in words."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from botocore.response import StreamingBody

from forwarder.config import SourceConfig, parse_config
from forwarder.errors import ConfigError, FetchError
from forwarder.sources.base import LogObject
from forwarder.sources.exporter import LogExporterSource
from forwarder.sources.s3 import Bucket
from forwarder.sources.s3client import describe_s3_error, make_s3_client


def source_config(extra: str = "") -> SourceConfig:
    return parse_config(f"source:\n  bucket: cato-logs\n  prefix: KEY/\n{extra}", env={}).pipeline().source


def exporter(client: Any, config: SourceConfig) -> LogExporterSource:
    """The log exporter's source (discovery: list) over *client*."""
    return LogExporterSource(Bucket(client, config, download_dir=config.download_dir), config)


def client_error(code: str, operation: str = "ListObjectsV2") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeS3Client:
    """list_objects_v2 pages (two keys each, S3's lexicographic order) and download_fileobj."""

    def __init__(self, objects: dict[str, bytes], error: Exception | None = None) -> None:
        self.objects = objects
        self.error = error
        self.listed: list[tuple[str, str]] = []

    def get_paginator(self, name: str) -> FakeS3Client:
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:  # noqa: N803
        self.listed.append((Bucket, Prefix))
        if self.error:
            raise self.error
        keys = sorted(k for k in self.objects if k.startswith(Prefix))
        if not keys:
            yield {"KeyCount": 0}  # S3 leaves Contents out of an empty page
        for page in range(0, len(keys), 2):
            yield {"Contents": [{"Key": k, "Size": len(self.objects[k])} for k in keys[page : page + 2]]}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        if self.error:
            raise self.error
        if Key not in self.objects:
            raise client_error("NoSuchKey", "GetObject")
        data = self.objects[Key]
        return {"Body": StreamingBody(io.BytesIO(data), len(data))}


def test_objects_are_listed_in_numeric_sequence_order() -> None:
    """Keys are ordered by their number (9999 before 10000), not as S3 lists them."""
    client = FakeS3Client(
        {
            "KEY/CATO10000.zip": b"c",
            "KEY/CATO9999.zip": b"bb",
            "KEY/CATO00000000000000000998.zip": b"a",
            "KEY/CATO100000.zip": b"d",
        }
    )
    objects = exporter(client, source_config()).listing.all()
    assert objects == [
        LogObject("KEY/CATO00000000000000000998.zip", 1, 0.0, 998),
        LogObject("KEY/CATO9999.zip", 2, 0.0, 9999),
        LogObject("KEY/CATO10000.zip", 1, 0.0, 10000),
        LogObject("KEY/CATO100000.zip", 1, 0.0, 100000),
    ]
    assert client.listed == [("cato-logs", "KEY/")]


def test_keys_not_matching_the_pattern_are_ignored() -> None:
    """Only keys whose part after the prefix matches source.key_pattern are exporter files."""
    client = FakeS3Client(
        {
            "KEY/CATO1.zip": b"",
            "KEY/README.txt": b"",
            "KEY/CATO2.zip.tmp": b"",
            "KEY/CATOx.zip": b"",
            "KEY/sub/CATO3.zip": b"",
            "OTHER/CATO4.zip": b"",
        }
    )
    keys = [o.key for o in exporter(client, source_config()).listing.all()]
    assert keys == ["KEY/CATO1.zip", "KEY/sub/CATO3.zip"]


def test_key_pattern_is_searched_after_the_prefix() -> None:
    """The pattern sees the key without the prefix, so a prefix that looks like a file name is no match."""
    config = (
        parse_config("source:\n  bucket: b\n  prefix: CATO77.zip/\n  key_pattern: '^(\\d+)\\.log$'\n", env={})
        .pipeline()
        .source
    )
    client = FakeS3Client({"CATO77.zip/12.log": b"", "CATO77.zip/x12.log": b""})
    assert exporter(client, config).listing.all() == [LogObject("CATO77.zip/12.log", 0, 0.0, 12)]


def test_empty_bucket_lists_nothing() -> None:
    """A prefix with no objects (a page without Contents) lists nothing."""
    assert exporter(FakeS3Client({}), source_config()).listing.all() == []


def test_duplicate_sequence_numbers_are_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    """Two keys with one sequence number are both listed (first by key) and warned about once."""
    client = FakeS3Client({"KEY/CATO5.zip": b"", "KEY/a/CATO5.zip": b""})
    source = exporter(client, source_config())
    with caplog.at_level(logging.WARNING, logger="forwarder"):
        first = source.listing.all()
        source.listing.all()
    assert [o.key for o in first] == ["KEY/CATO5.zip", "KEY/a/CATO5.zip"]
    assert [r.getMessage() for r in caplog.records] == [
        "KEY/CATO5.zip and KEY/a/CATO5.zip have the same sequence number 5; only the first is "
        "forwarded (narrow source.prefix or source.key_pattern)"
    ]


def test_listing_error_is_a_fetch_error_with_a_hint() -> None:
    """An S3 error while listing becomes one FetchError line: where, the code, what to check."""
    source = exporter(FakeS3Client({}, error=client_error("AccessDenied")), source_config())
    with pytest.raises(FetchError) as info:
        source.listing.all()
    assert str(info.value) == (
        "listing s3://cato-logs/KEY/: AccessDenied: access denied (is the access key still valid, "
        "and may it list and read this prefix?); if the key may read files but not list them, "
        "set source.discovery: probe"
    )


def test_fetch_stores_the_object_in_a_temporary_file(tmp_path: Path) -> None:
    """fetch() stores the object in a new file in download_dir and returns its path."""
    source = exporter(
        FakeS3Client({"KEY/CATO1.zip": b"zip bytes"}), source_config(f"  download_dir: {tmp_path}\n")
    )
    path = source.fetch(LogObject("KEY/CATO1.zip", 9, 0.0, 1))
    assert path.parent == tmp_path
    assert path.read_bytes() == b"zip bytes"
    assert list(tmp_path.iterdir()) == [path]


def test_download_of_a_vanished_object_is_a_fetch_error(tmp_path: Path) -> None:
    """An object deleted since listing is a FetchError naming it; no temporary file is left."""
    source = exporter(FakeS3Client({}), source_config(f"  download_dir: {tmp_path}\n"))
    with pytest.raises(FetchError) as info:
        source.fetch(LogObject("KEY/CATO1.zip", 9, 0.0, 1))
    assert str(info.value) == (
        "s3://cato-logs/KEY/CATO1.zip: NoSuchKey: the object is gone (deleted by the 7-day retention?)"
    )
    assert list(tmp_path.iterdir()) == []


def test_download_dir_that_does_not_exist_is_a_fetch_error(tmp_path: Path) -> None:
    """A missing source.download_dir is a FetchError naming the directory, not an OSError."""
    missing = tmp_path / "missing"
    source = exporter(FakeS3Client({"KEY/CATO1.zip": b"x"}), source_config(f"  download_dir: {missing}\n"))
    with pytest.raises(FetchError) as info:
        source.fetch(LogObject("KEY/CATO1.zip", 1, 0.0, 1))
    assert str(info.value) == (
        f"s3://cato-logs/KEY/CATO1.zip: cannot store the download in {missing}: No such file or directory"
    )


def test_source_id_and_label() -> None:
    """A source is named s3://bucket/prefix, an object s3://bucket/key."""
    source = exporter(FakeS3Client({}), source_config())
    assert source.id == "s3://cato-logs/KEY/"
    assert source.label(LogObject("KEY/CATO1.zip", 0, 0.0, 1)) == "s3://cato-logs/KEY/CATO1.zip"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (client_error("NoSuchBucket"),
         "where: NoSuchBucket: the bucket does not exist (check source.bucket and source.region)"),
        (client_error("InvalidAccessKeyId"),
         "where: InvalidAccessKeyId: the access key was rejected (deleted or rotated?): update "
         "source.access_key_id/secret_access_key, the environment or the credentials file"),
        (client_error("ExpiredToken"),
         "where: ExpiredToken: the session token has expired: refresh the credentials"),
        (client_error("403"), "where: 403: access denied (is the access key still valid?)"),
        (botocore.exceptions.NoCredentialsError(),
         "where: no AWS credentials found: set source.access_key_id and source.secret_access_key, "
         "source.profile, or the AWS_* environment variables"),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
         'where: cannot reach the S3 endpoint (Could not connect to the endpoint URL: "http://127.0.0.1:1"); '
         "check source.endpoint_url and the network"),
    ],
)  # fmt: skip
def test_describe_s3_error(exc: Exception, expected: str) -> None:
    """S3 errors become one line saying where, what, and what to check."""
    assert str(describe_s3_error("where", exc)) == expected


def test_unknown_error_code_keeps_botocores_message() -> None:
    """An error code without a hint keeps the code and botocore's own message."""
    message = str(describe_s3_error("where", client_error("SlowDown")))
    assert message.startswith("where: SlowDown: An error occurred (SlowDown)")


def test_make_s3_client_uses_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client gets the endpoint, region, timeouts and retry settings of the config (no network)."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    config = source_config(
        "  endpoint_url: http://127.0.0.1:9000\n  region: eu-central-1\n  access_key_id: AKIA\n"
        "  secret_access_key: s\n  s3_max_attempts: 3\n  connect_timeout_secs: 2\n"
    )
    client = make_s3_client(config)
    assert client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert client.meta.region_name == "eu-central-1"
    assert client.meta.config.connect_timeout == 2
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}  # first try included


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  profile: no-such-profile\n",
         "source.profile: The config profile (no-such-profile) could not be found"),
        ("  region: 'us east'\n",
         "source.region: Provided region_name 'us east' doesn't match a supported format."),
        ("  endpoint_url: 'not a url'\n", "source.endpoint_url: Invalid endpoint: not a url"),
    ],
)  # fmt: skip
def test_settings_boto3_refuses_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, extra: str, expected: str
) -> None:
    """An unknown profile or a malformed region or endpoint is a ConfigError naming the key."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(ConfigError) as info:
        make_s3_client(source_config(extra))
    assert str(info.value).startswith(expected)


def test_downloads_left_by_a_process_that_is_gone_are_removed(tmp_path: Path) -> None:
    """A kill -9 leaves its temporary downloads behind: the next forwarder removes those of
    processes that no longer run, and keeps those of running ones (another forwarder's)."""
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    stale = tmp_path / f"forwarder-{dead_pid}-abc.part"
    running = tmp_path / f"forwarder-{os.getppid()}-def.part"
    other = tmp_path / "forwarder-notes.txt"
    for path in (stale, running, other):
        path.write_bytes(b"x")
    exporter(FakeS3Client({}), source_config(f"  download_dir: {tmp_path}\n"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, other.name])
