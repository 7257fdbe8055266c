"""forwarder.sources.auditfeed against the local Cato API stand-in: frames, pages, no duplicates."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forwarder.compose import build_source
from forwarder.core.observer import Observer
from forwarder.sources.auditfeed import AuditFeedSource
from forwarder.sources.catoapi import CallBudget, CatoApi, MarkerRefused
from forwarder.sources.feedhealth import FeedHealth
from tests.support.apisource import Collector, api_config, open_pipeline
from tests.support.cato_api import DEFAULT_ACCOUNT, CatoApiServer, CatoClock, make_audit_record

START = 1_780_000_000.0


@pytest.fixture
def api() -> Iterator[CatoApiServer]:
    with CatoApiServer(
        audit_page_size=50, rate_limits={"auditFeed": 10_000}, clock=CatoClock(START, frozen=True)
    ) as server:
        yield server


def audit_source(tmp_path: Path, api: CatoApiServer) -> tuple[AuditFeedSource, object]:
    config = api_config(tmp_path, api, kind="audit_feed", source="  max_calls_per_min: 1000\n")
    settings = config.pipeline().source
    api_client = CatoApi(
        settings.url,
        settings.api_key,
        "auditFeed",
        CallBudget(1000),
        threading.Event(),
        ca_file=settings.ca_file,
    )
    source = AuditFeedSource(settings, api_client, FeedHealth("auditFeed", 3600), clock=api.clock.now)
    return source, config


def records(api: CatoApiServer, first: int, count: int, at_ms: list[int]) -> None:
    """Audit records named r<first>.. at the given epoch ms (several may share one)."""
    api.add_audit_records(
        DEFAULT_ACCOUNT,
        [make_audit_record(model_name=f"r{first + i}", insertion_date=ms) for i, ms in enumerate(at_ms)],
    )


def names(collector: Collector) -> list[str]:
    return [str(e["model_name"]) for e in collector.events]


def test_paging_through_the_inclusive_marker_sends_each_record_once(
    tmp_path: Path, api: CatoApiServer
) -> None:
    """Pages whose boundary falls inside a millisecond of several records: each record once, in order."""
    source, config = audit_source(tmp_path, api)
    collector = Collector()
    pipeline = open_pipeline(config, source, collector)
    pipeline.run_pass()  # start: latest
    base = int(START * 1000)
    stamps = [base + 1000 + i // 4 for i in range(230)]  # four records per millisecond
    records(api, 0, 230, stamps)
    api.clock.advance(5)
    pipeline.run_pass()
    assert names(collector) == [f"r{i}" for i in range(230)]
    pipeline.run_pass()  # the marker's record comes back again: not sent twice
    api.clock.advance(5)
    records(api, 230, 3, [stamps[-1], stamps[-1] + 1, stamps[-1] + 2])  # one more at the last millisecond
    api.clock.advance(5)
    pipeline.run_pass()
    assert names(collector) == [f"r{i}" for i in range(233)]


def test_a_restart_inside_a_frame_resumes_without_duplicates(tmp_path: Path, api: CatoApiServer) -> None:
    """A stop after the first page of a frame: the restart goes on from that frame's marker, nothing twice."""
    source, config = audit_source(tmp_path, api)
    stop = threading.Event()
    collector = Collector()
    pipeline = open_pipeline(config, source, collector, stop=stop)
    pipeline.run_pass()
    base = int(START * 1000)
    records(api, 0, 120, [base + 2000 + i // 3 for i in range(120)])
    api.clock.advance(10)

    def stop_after_first_page(messages: list[bytes]) -> None:
        if len(collector.events) >= 50:
            stop.set()

    collector.before_send = stop_after_first_page
    pipeline.run_pass()
    cursor = json.loads((tmp_path / "state" / "checkpoint.json").read_text())["cursor"]
    assert "to" in cursor and cursor["marker"]
    again = Collector()
    source2, _ = audit_source(tmp_path, api)
    open_pipeline(config, source2, again).run_pass()
    assert names(collector) + names(again) == [f"r{i}" for i in range(120)]


def test_the_audit_feed_is_built_from_config(tmp_path: Path, api: CatoApiServer) -> None:
    """kind: audit_feed builds an AuditFeedSource named after the endpoint's host."""
    config = api_config(tmp_path, api, kind="audit_feed")
    source = build_source(config.pipeline(), Observer(), threading.Event())
    assert isinstance(source, AuditFeedSource) and source.id == "cato-api://127.0.0.1/auditFeed"


class RefusingApi:
    """A CatoApi stand-in whose every call is refused for the marker."""

    url = "https://api.example"

    def call(self, query: str, variables: dict[str, object]) -> dict[str, object]:
        raise MarkerRefused(f"{self.url}: auditFeed: invalid marker")

    def close(self) -> None:
        pass


def test_a_refused_marker_is_told_to_the_feeds_health(tmp_path: Path, api: CatoApiServer) -> None:
    """auditFeed has no recovery for a refused marker: it is a failed call, which the feed's
    health counts (its loud error once no call succeeded for max_age_secs)."""
    settings = api_config(tmp_path, api, kind="audit_feed").pipeline().source
    failures: list[str] = []

    class Health(FeedHealth):
        def failed(self, why: str) -> None:
            failures.append(why)

    refusing: Any = RefusingApi()
    source = AuditFeedSource(settings, refusing, Health("auditFeed", 3600), clock=api.clock.now)
    start = source.start()
    assert start is not None
    with pytest.raises(MarkerRefused):
        list(source.pending(start))
    assert failures == ["https://api.example: auditFeed: invalid marker"]
