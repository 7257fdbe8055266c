"""The settings of the Cato API kinds of source: ``events_feed`` and ``audit_feed``.

Both pull Cato's GraphQL API (``POST <endpoint>`` with an ``x-api-key`` header) for one or
several accounts. ``events_feed`` reads ``eventsFeed`` (a queue per account, read with a
marker); ``audit_feed`` reads ``auditFeed`` (the admin audit trail, read by time frame).
The pipeline also reads ``poll_interval_secs`` and the read-only properties below
(``prefetch_files``, the bad-file policy) of every kind's settings.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from forwarder.config.fields import choice, limits
from forwarder.config.tree import describe, join
from forwarder.errors import ConfigError

# Cato's GraphQL endpoint: one path, on the host of the account's region (EU is api.).
GRAPHQL_PATH = "/api/v1/graphql2"
DEFAULT_ENDPOINT = "https://api.catonetworks.com" + GRAPHQL_PATH
REGIONAL_HOSTS = (
    "api.catonetworks.com",
    "api.us1.catonetworks.com",
    "api.in1.catonetworks.com",
    "api.jp1.catonetworks.com",
)
# Peers document that Cato forgets an eventsFeed marker unused for about 3 days.
MARKER_KEPT_SECS = 3 * 86400.0
_ACCOUNT = re.compile(r"\d{1,20}\Z")


@dataclass(frozen=True)
class CatoApiAccess:
    """What both API kinds share: the key, the accounts, the endpoint and the call budget."""

    api_key: str = field(default="", metadata={"required": True, "nonempty": True})
    # One account ID, or a list of them (an MSSP key may read several).
    account_ids: tuple[str, ...] | str | int = field(default=(), metadata={"required": True})
    endpoint: str = DEFAULT_ENDPOINT
    ca_file: str = ""  # the CAs that sign the endpoint's certificate; empty: the system's
    connect_timeout_secs: float = field(default=10.0, metadata=limits(0.1))
    read_timeout_secs: float = field(default=60.0, metadata=limits(0.1))
    # /readyz turns unready, and the log warns, when no call has succeeded for this long:
    # a day leaves two before Cato forgets the marker (MARKER_KEPT_SECS).
    marker_max_age_secs: float = field(default=86400.0, metadata=limits(1, MARKER_KEPT_SECS))
    prefetch_pages: int = field(default=2, metadata=limits(0, 16))
    poll_interval_secs: float = field(default=30.0, metadata=limits(0.1))
    # Calls a minute at most: the account's allowance for the query, shared by all its keys.
    max_calls_per_min: int = field(default=100, metadata=limits(1, 6000))

    @property
    def accounts(self) -> tuple[str, ...]:
        """The account IDs as text (``checked`` made them a tuple)."""
        value = self.account_ids
        return value if isinstance(value, tuple) else (str(value),)

    # What the pipeline reads of every source's settings (compose.build_pipeline).
    @property
    def prefetch_files(self) -> int:
        return self.prefetch_pages

    @property
    def prefetch_bytes(self) -> int:
        return 256 << 20

    @property
    def max_attempts(self) -> int:
        return 5

    @property
    def bad_file_retry_secs(self) -> float:
        return 2.0

    @property
    def on_bad_file(self) -> str:
        return "stop"  # a page is NDJSON the source wrote: it reads, or the page is retried

    def check_access(self, raw: dict[str, Any], path: str) -> CatoApiAccess:
        """The settings with account_ids a tuple of digits and the endpoint checked."""
        given = raw.get("account_ids")
        items = given if isinstance(given, list) else [given]
        where = join(path, "account_ids")
        if not items:
            raise ConfigError(f"{where}: expected an account ID or a list of them, got an empty list")
        accounts = []
        for i, item in enumerate(items):
            text = str(item).strip() if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
            if not _ACCOUNT.match(text):
                at = f"{where}[{i}]" if isinstance(given, list) else where
                raise ConfigError(
                    f"{at}: expected a Cato account ID (digits, as in the CMA's URL), got {describe(item)}"
                )
            accounts.append(text)
        self._check_endpoint(join(path, "endpoint"))
        return dataclasses.replace(self, account_ids=tuple(dict.fromkeys(accounts)))

    def _check_endpoint(self, where: str) -> None:
        parts = urlsplit(self.endpoint)
        example = f'such as "{DEFAULT_ENDPOINT}"'
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigError(f"{where}: expected an https:// URL {example}, got {describe(self.endpoint)}")
        host = parts.hostname
        if host.startswith("cc.") or host.startswith("cc2.") or ".cc." in host:
            raise ConfigError(
                f"{where}: {host} is the management application, not the API; use the API host of "
                f"the account's region ({', '.join(REGIONAL_HOSTS)}), got {describe(self.endpoint)}"
            )
        if parts.path not in ("", "/", GRAPHQL_PATH):
            raise ConfigError(f"{where}: expected the path {GRAPHQL_PATH}, got {describe(self.endpoint)}")

    @property
    def url(self) -> str:
        """The endpoint with Cato's GraphQL path (the host alone may be given)."""
        parts = urlsplit(self.endpoint)
        return f"https://{parts.netloc}{GRAPHQL_PATH}"


@dataclass(frozen=True)
class EventsFeedConfig(CatoApiAccess):
    """``kind: events_feed``: the accounts' events from ``eventsFeed``, read with a marker."""

    kind: str = field(default="events_feed", metadata=choice("events_feed"))
    # latest: the events queued from the first start on; or a marker saved by another client.
    start: str = field(default="latest", metadata={"nonempty": True})
    event_types: tuple[str, ...] = ()  # only these (event_type is one of them); empty: all
    event_sub_types: tuple[str, ...] = ()

    def checked(self, raw: dict[str, Any], path: str) -> EventsFeedConfig:
        """The settings checked across keys (account IDs, endpoint)."""
        settings = self.check_access(raw, path)
        assert isinstance(settings, EventsFeedConfig)
        return settings


@dataclass(frozen=True)
class AuditFeedConfig(CatoApiAccess):
    """``kind: audit_feed``: the accounts' admin audit trail from ``auditFeed``, by time."""

    kind: str = field(default="audit_feed", metadata=choice("audit_feed"))
    # latest: records written from the first start on; or an RFC 3339 time to start from
    # (YAML reads an unquoted time as a timestamp: checked makes it text again).
    start: str | datetime = "latest"
    poll_interval_secs: float = field(default=60.0, metadata=limits(0.1))
    max_calls_per_min: int = field(default=5, metadata=limits(1, 6000))  # auditFeed allows 5 a minute

    def checked(self, raw: dict[str, Any], path: str) -> AuditFeedConfig:
        """The settings checked across keys (account IDs, endpoint, start)."""
        settings = self.check_access(raw, path)
        assert isinstance(settings, AuditFeedConfig)
        if isinstance(settings.start, datetime):
            moment = settings.start if settings.start.tzinfo else settings.start.replace(tzinfo=timezone.utc)
            settings = dataclasses.replace(settings, start=moment.isoformat())
        if not isinstance(settings.start, str) or (
            settings.start != "latest" and start_ms(settings.start) is None
        ):
            raise ConfigError(
                f"{join(path, 'start')}: expected latest or a time such as "
                f'"2026-11-28T07:00:00Z", got {describe(settings.start)}'
            )
        return settings


def start_time(text: str) -> float | None:
    """An RFC 3339 time (``2026-11-28T07:00:00Z``; no zone: UTC) as epoch seconds, or None."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def start_ms(text: str) -> int | None:
    """``start_time`` in epoch ms."""
    seconds = start_time(text)
    return None if seconds is None else int(seconds * 1000)
