"""The settings of each kind of source (``source.kind``), and their own checks.

A kind is one frozen dataclass here, registered in SOURCE_KINDS; its ``checked`` method
runs the checks that look at several keys at once and returns the final settings.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from forwarder.config.catoapi import AuditFeedConfig, EventsFeedConfig, start_time
from forwarder.config.fields import choice, limits
from forwarder.config.tree import describe, join
from forwarder.errors import ConfigError


@dataclass(frozen=True)
class S3Access:
    """How to reach a bucket: where it is, whose credentials, which role (shared by the S3 kinds)."""

    bucket: str = field(default="", metadata={"required": True, "nonempty": True})
    prefix: str = ""
    region: str = "us-east-1"
    endpoint_url: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""
    profile: str = ""
    # A role to assume (per tenant: the cross-account pattern), with the external ID its
    # trust policy asks for; the credentials above (or boto3's chain) assume it.
    role_arn: str = ""
    external_id: str = ""
    role_session_name: str = field(default="forwarder", metadata={"nonempty": True})
    s3_retry_mode: str = field(default="standard", metadata=choice("standard", "adaptive", "legacy"))
    s3_max_attempts: int = field(default=5, metadata=limits(1, 100))
    connect_timeout_secs: float = field(default=10.0, metadata=limits(0.1))
    read_timeout_secs: float = field(default=60.0, metadata=limits(0.1))

    def check_access(self, path: str) -> None:
        """Credentials that go together are given together."""
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ConfigError(
                f"{join(path, 'access_key_id')}: access_key_id and secret_access_key go together "
                "(give both, or neither to use boto3's credential chain)"
            )
        if self.profile and self.access_key_id:
            raise ConfigError(
                f"{join(path, 'profile')}: give either profile or access_key_id/secret_access_key, not both"
            )
        if self.external_id and not self.role_arn:
            raise ConfigError(
                f"{join(path, 'external_id')}: given without role_arn "
                "(the role whose trust policy asks for it)"
            )
        if self.role_arn and not re.match(r"arn:aws[a-z-]*:iam::\d{12}:role/\S+\Z", self.role_arn):
            raise ConfigError(
                f"{join(path, 'role_arn')}: expected a role ARN such as "
                f'"arn:aws:iam::123456789012:role/cato-events", got {describe(self.role_arn)}'
            )


@dataclass(frozen=True)
class S3Objects(S3Access):
    """How the objects of a bucket are fetched and what happens to one that cannot be read
    (shared by the S3 kinds)."""

    download_dir: str = ""
    max_attempts: int = field(default=5, metadata=limits(1, 1000))
    on_bad_file: str = field(default="stop", metadata=choice("stop", "quarantine"))
    bad_file_retry_secs: float = field(default=2.0, metadata=limits(0.01))
    max_member_bytes: int = field(default=10 << 30, metadata=limits(1))
    prefetch_files: int = field(default=2, metadata=limits(0, 64))
    prefetch_bytes: int = field(default=256 << 20, metadata=limits(0))


@dataclass(frozen=True)
class SourceConfig(S3Objects):
    """``kind: log_exporter``: the Log Exporter's files in an S3 bucket, found by listing or by name."""

    kind: str = field(default="log_exporter", metadata=choice("log_exporter"))
    key_pattern: str = r"CATO(\d+)\.zip$"
    discovery: str = field(default="list", metadata=choice("list", "probe"))
    key_template: str = "CATO{sequence:020d}.zip"
    max_gap_files: int = field(default=100_000, metadata=limits(1))
    zip_password: str = ""
    poll_interval_secs: float = field(default=30.0, metadata=limits(0.1))
    start: int | str = "earliest"

    def checked(self, raw: dict[str, Any], path: str) -> SourceConfig:
        """The settings with ``start`` typed; ConfigError for keys that do not fit together."""
        start = raw.get("start", "earliest")
        if isinstance(start, str) and start.strip().isdigit():
            start = int(start)
        if not (start in ("earliest", "latest") or (type(start) is int and start >= 0)):
            raise ConfigError(
                f"{join(path, 'start')}: expected earliest, latest or a file sequence number, "
                f"got {describe(start)}"
            )
        try:
            pattern = re.compile(self.key_pattern)
        except re.error as exc:
            raise ConfigError(
                f"{join(path, 'key_pattern')}: not a valid regular expression ({exc})"
            ) from None
        if pattern.groups < 1:
            raise ConfigError(
                f"{join(path, 'key_pattern')}: expected a regular expression whose group 1 is the sequence "
                f"number, got {describe(self.key_pattern)} (no group)"
            )
        template = join(path, "key_template")
        try:
            example = self.key_template.format(sequence=7007)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{template}: expected a name with {{sequence}} in it, such as "
                f'"CATO{{sequence:020d}}.zip", got {describe(self.key_template)} ({exc})'
            ) from None
        if example == self.key_template.format(sequence=7008):
            got = describe(self.key_template)
            raise ConfigError(f"{template}: expected a name with {{sequence}} in it, got {got}")
        self.check_access(path)
        return dataclasses.replace(self, start=start)


@dataclass(frozen=True)
class SqsSettings:
    """``source.sqs``: the queue that S3 event notifications of the bucket go to."""

    queue_url: str = ""
    region: str = ""  # empty: the region in queue_url (sqs.REGION.amazonaws.com), else source.region
    endpoint_url: str = ""  # empty: AWS (or queue_url's host when it is not AWS)
    # Long polling: how long one ReceiveMessage waits for a message (SQS allows 0-20).
    wait_time_secs: int = field(default=5, metadata=limits(0, 20))
    # A message received is invisible to other readers this long, renewed while its object is sent.
    visibility_timeout_secs: int = field(default=120, metadata=limits(10, 43200))
    max_messages: int = field(default=1, metadata=limits(1, 10))  # received at a time (SQS: 1-10)
    # A message received more often than this (its readers crashed or lost it) is quarantined.
    max_receive_count: int = field(default=5, metadata=limits(1, 1000))


@dataclass(frozen=True)
class EventsIntegrationConfig(S3Objects):
    """``kind: events_integration``: gzip NDJSON objects Cato pushes into the customer's own
    bucket (Events Integration), found by listing the prefix or through SQS notifications."""

    kind: str = field(default="events_integration", metadata=choice("events_integration"))
    discovery: str = field(default="list", metadata=choice("list", "sqs"))
    sqs: SqsSettings = field(default_factory=SqsSettings)
    # The ledger of objects done keeps those written this long before the newest one done;
    # an object written earlier than that and not in it counts as delivered. S3 dates an
    # object when its upload starts, so one shows up late by its upload's duration (seconds
    # for Cato's objects): an hour covers that with room, at a ledger of an hour's objects.
    lookback_secs: float = field(default=3600.0, metadata=limits(60))
    # list: date-named folders below the prefix (2026/11/28/, dt=2026-11-28/...) older than
    # the look-back are not listed, but every full_listing_secs a poll lists everything.
    partitions: str = field(default="auto", metadata=choice("auto", "none"))
    full_listing_secs: float = field(default=3600.0, metadata=limits(0))
    # An object done and then written again (a new ETag): report (quarantine list) or resend.
    on_replaced: str = field(default="report", metadata=choice("report", "resend"))
    poll_interval_secs: float = field(default=30.0, metadata=limits(0.1))
    start: str = "earliest"  # earliest, latest, or an ISO 8601 time (objects written since)

    # parser.max_record_bytes when not given: XDR events carry raw_data of more than 5 MB,
    # read whole and then fitted to output.max_message_bytes (output.oversize).
    default_max_record_bytes: ClassVar[int] = 64 << 20
    # poll_interval_secs when not given with discovery: sqs (each poll waits on the queue).
    sqs_poll_interval_secs: ClassVar[float] = 1.0

    def checked(self, raw: dict[str, Any], path: str) -> EventsIntegrationConfig:
        """The settings checked across keys: start readable, sqs.queue_url with discovery: sqs."""
        self.check_access(path)
        if self.start not in ("earliest", "latest") and start_time(self.start) is None:
            raise ConfigError(
                f"{join(path, 'start')}: expected earliest, latest or an ISO 8601 time such as "
                f'"2026-11-28T07:00:00Z", got {describe(self.start)}'
            )
        if self.discovery != "sqs":
            if isinstance(raw.get("sqs"), dict) and raw["sqs"]:
                raise ConfigError(
                    f"{join(path, 'sqs')}: only applies to discovery: sqs, but discovery is {self.discovery}"
                )
            return self
        if "start" in raw:
            raise ConfigError(
                f"{join(path, 'start')}: only applies to discovery: list (with sqs, what the queue "
                "holds is what is delivered)"
            )
        url = self.sqs.queue_url
        if not re.match(r"https?://[^/\s]+/\d+/[\w-]+(\.fifo)?\Z", url):
            raise ConfigError(
                f"{join(path, 'sqs.queue_url')}: expected a queue URL such as "
                f'"https://sqs.eu-west-1.amazonaws.com/123456789012/cato-events", got {describe(url)}'
            )
        if "poll_interval_secs" not in raw:
            return dataclasses.replace(self, poll_interval_secs=self.sqs_poll_interval_secs)
        return self


# source.kind -> the settings of that kind of source (the first is the default kind).
SOURCE_KINDS: dict[str, type[Any]] = {
    "log_exporter": SourceConfig,
    "events_feed": EventsFeedConfig,
    "audit_feed": AuditFeedConfig,
    "events_integration": EventsIntegrationConfig,
}
