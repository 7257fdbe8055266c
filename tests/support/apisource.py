"""Helpers for tests of the Cato API sources: a config for the local API stand-in, a pipeline
over it with an in-memory transport, and events that say where they belong."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from forwarder.compose import build_pipeline
from forwarder.config import Config, parse_config
from forwarder.core.observer import Observer
from forwarder.core.pipeline import Pipeline
from forwarder.errors import SendError
from forwarder.sources.catoapi import CallBudget, CatoApi
from forwarder.sources.eventsfeed import EventsFeedSource
from forwarder.sources.feedhealth import FeedHealth
from forwarder.transports.base import AckedOnWrite
from tests.support.cato_api import DEFAULT_ACCOUNT, DEFAULT_API_KEY, CatoApiServer, make_event


def numbered(first: int, count: int, account: str = DEFAULT_ACCOUNT, **fields: Any) -> list[dict[str, Any]]:
    """*count* events whose event_id is ``<account>-<n>``, from *first* on."""
    return [
        make_event(event_id=f"{account}-{n}", src_port=n % 65536, **fields)
        for n in range(first, first + count)
    ]


def api_config(
    tmp_path: Path,
    api: CatoApiServer,
    *,
    kind: str = "events_feed",
    accounts: tuple[str, ...] = (DEFAULT_ACCOUNT,),
    key: str = DEFAULT_API_KEY,
    source: str = "",
    max_events: int = 1000,
    encoding: str = "json",
    checkpoint: str = "",
) -> Config:
    """One pipeline reading *api* (prefetch off unless *source* turns it on) to an in-memory
    collector; events rendered as *encoding* with no syslog header."""
    return parse_config(
        f"source:\n  kind: {kind}\n  api_key: {key}\n  account_ids: [{', '.join(accounts)}]\n"
        f"  endpoint: {api.url}\n  ca_file: {api.ca_file}\n  poll_interval_secs: 0.1\n"
        + ("" if "prefetch_pages" in source else "  prefetch_pages: 0\n")
        + source
        + f"output:\n  header: none\n  encoding: {encoding}\n"
        "  retry_initial_secs: 0.01\n  retry_max_secs: 0.02\n"
        f"checkpoint:\n  path: {tmp_path / 'state' / 'checkpoint.json'}\n{checkpoint}"
        f"batch:\n  max_events: {max_events}\n",
        env={},
    )


class Collector(AckedOnWrite):
    """An in-memory transport: acknowledged batches; a send may be made to fail or to look at
    the checkpoint first."""

    label = "memory://collector"
    paces_itself = False
    max_message_bytes = None

    def __init__(self, fails: Callable[[int], bool] = lambda attempt: False) -> None:
        self.batches: list[list[bytes]] = []
        self.attempts = 0
        self._fails = fails
        self.before_send: Callable[[list[bytes]], None] | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(m) for batch in self.batches for m in batch]

    @property
    def ids(self) -> list[str]:
        return [str(e["event_id"]) for e in self.events]

    def write(self, messages: list[bytes]) -> None:
        self.attempts += 1
        if self.before_send is not None:
            self.before_send(messages)
        if self._fails(self.attempts):
            raise SendError("memory://collector: connection refused")
        self.batches.append(list(messages))
        self._delivered()

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None


def events_source(
    config: Config,
    *,
    stop: threading.Event | None = None,
    observer: Observer | None = None,
    clock: Callable[[], float] | None = None,
    budget: CallBudget | None = None,
    rate_limit_first_secs: float = 0.05,
    full_page: int | None = None,
) -> EventsFeedSource:
    """The events_feed source of *config*, with what tests shorten: the first rate-limit wait,
    the call budget, the page size that counts as full, the clock."""
    settings = config.pipeline().source
    api = CatoApi(
        settings.url, settings.api_key, "eventsFeed", budget or CallBudget(settings.max_calls_per_min),
        stop or threading.Event(), ca_file=settings.ca_file, rate_limit_first_secs=rate_limit_first_secs,
        retry_first_secs=0.01,
    )  # fmt: skip
    report = (observer or Observer()).source_reached
    health = FeedHealth(
        "eventsFeed", settings.marker_max_age_secs, report, **({"clock": clock} if clock else {})
    )
    source = EventsFeedSource(settings, api, health, **({"clock": clock} if clock else {}))
    if full_page is not None:
        source.full_page = full_page
    return source


def open_pipeline(
    config: Config,
    source: Any,
    collector: Collector,
    *,
    stop: threading.Event | None = None,
    observer: Observer | None = None,
) -> Pipeline:
    """The production pipeline over *source* and *collector*, its checkpoint read (and the lock
    released: tests run one pipeline after another on one checkpoint, as restarts do)."""
    pipeline = build_pipeline(
        config.pipeline(), stop=stop, once=True, source=source, transport=collector, observer=observer
    )
    pipeline.open()
    pipeline.store.unlock()
    return pipeline
