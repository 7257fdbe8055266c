"""forwarder.sources.eventsfeed against the local Cato API stand-in: pages, markers, checkpoints."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forwarder.core.checkpoint import Position
from forwarder.core.delivery import Stopped
from forwarder.core.observer import Observer
from forwarder.errors import CredentialsError, FetchError
from tests.support.apisource import Collector, api_config, events_source, numbered, open_pipeline
from tests.support.cato_api import DAY, DEFAULT_ACCOUNT, DEFAULT_API_KEY, CatoApiServer

PAGE = 100


@pytest.fixture
def api() -> Iterator[CatoApiServer]:
    with CatoApiServer(page_size=PAGE) as server:
        yield server


class Saves(Observer):
    """Every position the pipeline saved, in order."""

    def __init__(self) -> None:
        self.positions: list[Position] = []

    def saved(self, position: Position) -> None:
        self.positions.append(position)


def checkpoint(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    return data


def ids(first: int, count: int, account: str = DEFAULT_ACCOUNT) -> list[str]:
    return [f"{account}-{n}" for n in range(first, first + count)]


def test_every_event_once_in_order_across_full_pages(tmp_path: Path, api: CatoApiServer) -> None:
    """Events queued after the first start go out once each, in order, over several full pages."""
    config = api_config(tmp_path, api, max_events=40)
    collector = Collector()
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), collector)
    assert pipeline.run_pass() == 0  # the baseline: from now on
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 350))
    assert pipeline.run_pass() == 350
    api.add_events(DEFAULT_ACCOUNT, numbered(350, 20))
    assert pipeline.run_pass() == 20
    assert collector.ids == ids(0, 370)


def test_full_pages_are_fetched_at_once_and_a_short_one_ends_the_poll(
    tmp_path: Path, api: CatoApiServer
) -> None:
    """While pages come back full the next call goes at once; a short page ends the pass (no extra call)."""
    config = api_config(tmp_path, api)
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), Collector())
    pipeline.run_pass()
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 3 * PAGE + 10))
    before = api.call_count(DEFAULT_ACCOUNT)
    pipeline.run_pass()
    assert api.call_count(DEFAULT_ACCOUNT) - before == 4


def test_an_empty_marker_is_never_stored(tmp_path: Path, api: CatoApiServer) -> None:
    """Cato answers marker "" when nothing is queued; no checkpoint ever holds it, and nothing is skipped."""
    config = api_config(tmp_path, api)
    saves = Saves()
    collector = Collector()
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), collector, observer=saves)
    for round_ in range(3):
        pipeline.run_pass()  # drained: Cato answers ""
        api.add_events(DEFAULT_ACCOUNT, numbered(round_ * 150, 150))
        pipeline.run_pass()
    pipeline.run_pass()
    assert "" in api.markers_for("eventsFeed")
    assert saves.positions and all(p.cursor["marker"] for p in saves.positions)
    assert checkpoint(tmp_path)["cursor"]["marker"]
    assert collector.ids == ids(0, 450)


def test_start_latest_saves_the_baseline_before_anything_else(tmp_path: Path, api: CatoApiServer) -> None:
    """The first save holds the baseline marker, so events queued before a restart are not skipped."""
    config = api_config(tmp_path, api)
    first = open_pipeline(config, events_source(config, full_page=PAGE), Collector())
    first.run_pass()
    assert checkpoint(tmp_path)["cursor"]["marker"]
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 30))  # while the forwarder is down
    collector = Collector()
    open_pipeline(config, events_source(config, full_page=PAGE), collector).run_pass()
    assert collector.ids == ids(0, 30)


def test_the_checkpoint_moves_only_after_the_collector_acknowledged(
    tmp_path: Path, api: CatoApiServer
) -> None:
    """While a batch is being sent (and refused), the checkpoint still holds the position before it
    (checkpoint written after every acknowledged batch, to see each position)."""
    config = api_config(tmp_path, api, max_events=30, checkpoint="  interval_secs: 0\n")
    collector = Collector(fails=lambda attempt: attempt % 2 == 1)  # every batch refused once
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), collector)
    pipeline.run_pass()
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 250))
    seen: list[tuple[Position | None, int]] = []

    def look(messages: list[bytes]) -> None:
        seen.append((pipeline.store.load(), len(collector.events)))

    collector.before_send = look
    pipeline.run_pass()
    assert collector.ids == ids(0, 250)
    for position, acknowledged in seen:
        assert position is not None
        cursor, records = position.cursor, position.records
        # inside a page: exactly the records acknowledged so far on it; between pages: none on it
        delivered_before = acknowledged - records if "counts" in cursor else acknowledged
        assert delivered_before % PAGE == 0


def test_a_page_stopped_mid_way_is_fetched_again_and_resumed_exactly(
    tmp_path: Path, api: CatoApiServer
) -> None:
    """A stop inside a page: the restart fetches it again from the marker before it and skips
    exactly the records delivered, although the page grew in between."""
    config = api_config(tmp_path, api, max_events=20)
    stop = threading.Event()
    collector = Collector()
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE, stop=stop), collector, stop=stop)
    pipeline.run_pass()
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 150))  # page two: 50 records

    def stop_after_page_two_began(messages: list[bytes]) -> None:
        if len(collector.events) >= PAGE + 20:
            stop.set()

    collector.before_send = stop_after_page_two_began
    pipeline.run_pass()
    cursor = checkpoint(tmp_path)["cursor"]
    assert "counts" in cursor and checkpoint(tmp_path)["records"] > 0
    assert checkpoint(tmp_path)["records"] == 40
    api.add_events(DEFAULT_ACCOUNT, numbered(150, 200))  # the page it is inside has more to give now
    again = Collector()
    open_pipeline(config, events_source(config, full_page=PAGE), again).run_pass()
    assert collector.ids + again.ids == ids(0, 350)


def test_pages_prefetched_but_not_delivered_are_fetched_again(tmp_path: Path, api: CatoApiServer) -> None:
    """With pages fetched ahead, a collector that never acknowledges leaves the checkpoint where it was."""
    config = api_config(tmp_path, api, source="  prefetch_pages: 2\n")
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), Collector())
    pipeline.run_pass()
    before = checkpoint(tmp_path)["cursor"]
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 300))
    refusing = Collector(fails=lambda attempt: True)
    stopped = open_pipeline(config, events_source(config, full_page=PAGE), refusing)
    with pytest.raises(Exception, match="connection refused"):
        stopped.run_pass()
    assert checkpoint(tmp_path)["cursor"] == before
    collector = Collector()
    open_pipeline(config, events_source(config, full_page=PAGE), collector).run_pass()
    assert collector.ids == ids(0, 300)


def test_an_expired_marker_is_a_gap_reported_then_delivery_goes_on(
    tmp_path: Path, api: CatoApiServer
) -> None:
    """A marker Cato forgot (4 days unused): the gap is logged and kept in the checkpoint; new events flow."""
    config = api_config(tmp_path, api)
    open_pipeline(config, events_source(config, full_page=PAGE), Collector()).run_pass()
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 10))  # lost with the marker
    api.clock.advance(4 * DAY)
    collector = Collector()
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), collector)
    pipeline.run_pass()
    api.add_events(DEFAULT_ACCOUNT, numbered(10, 5))
    pipeline.run_pass()
    gaps = checkpoint(tmp_path)["gaps"]
    assert len(gaps) == 1 and gaps[0]["text"].startswith("events queued from ")
    assert api.expired_markers and collector.ids == ids(10, 5)


def test_a_marker_older_than_cato_keeps_is_a_gap_even_when_cato_answers(tmp_path: Path) -> None:
    """Cato restarting an old marker silently from now (expired_marker="reset") is still reported as a gap."""
    with CatoApiServer(page_size=PAGE, expired_marker="reset") as api:
        config = api_config(tmp_path, api)
        open_pipeline(config, events_source(config, full_page=PAGE), Collector()).run_pass()
        api.add_events(DEFAULT_ACCOUNT, numbered(0, 10))
        api.clock.advance(4 * DAY)
        later = api.clock.now

        pipeline = open_pipeline(config, events_source(config, full_page=PAGE, clock=later), Collector())
        pipeline.run_pass()
        assert api.gaps and len(checkpoint(tmp_path)["gaps"]) == 1


def test_a_bad_key_is_one_line_saying_what_to_update(tmp_path: Path, api: CatoApiServer) -> None:
    """A revoked key: CredentialsError in one line naming source.api_key, without the key."""
    config = api_config(tmp_path, api)
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), Collector())
    pipeline.run_pass()
    api.revoke_key(DEFAULT_API_KEY)
    with pytest.raises(CredentialsError) as caught:
        pipeline.run_pass()
    text = str(caught.value)
    assert "\n" not in text and "update source.api_key" in text and DEFAULT_API_KEY not in text


def test_an_account_error_inside_http_200_is_not_taken_for_success(
    tmp_path: Path, api: CatoApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """errorString for one account: the others are delivered, the error is logged, its events wait;
    for every account: the pass fails."""
    api.add_key(DEFAULT_API_KEY, ["777"])
    config = api_config(tmp_path, api, accounts=(DEFAULT_ACCOUNT, "777"))
    collector = Collector()
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), collector)
    pipeline.run_pass()
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 5))
    api.add_events("777", numbered(0, 5, account="777"))
    api.set_account_error("777", "internal error")
    with caplog.at_level(logging.ERROR):
        pipeline.run_pass()
    assert collector.ids == ids(0, 5) and "account 777: internal error" in caplog.text
    api.set_account_error(DEFAULT_ACCOUNT, "internal error")
    with pytest.raises(FetchError, match="account 12345: internal error; account 777"):
        pipeline.run_pass()
    api.set_account_error(DEFAULT_ACCOUNT, None)
    api.set_account_error("777", None)
    pipeline.run_pass()
    assert collector.ids[5:] == ids(0, 5, account="777")


@pytest.mark.parametrize("fault", ["graphql_error", "null_data", "http_503", "reset", "truncate"])
def test_a_passing_fault_is_tried_again(tmp_path: Path, api: CatoApiServer, fault: str) -> None:
    """A GraphQL error, eventsFeed: null, a 503, a reset or a cut body: asked again, nothing lost."""
    config = api_config(tmp_path, api)
    collector = Collector()
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), collector)
    pipeline.run_pass()
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 20))
    api.fail_next(2, fault)
    pipeline.run_pass()
    assert collector.ids == ids(0, 20)


def test_a_fault_that_lasts_fails_the_pass_and_the_checkpoint_stays(
    tmp_path: Path, api: CatoApiServer
) -> None:
    """Four 502s in a row: FetchError for the pass (the pipeline polls again later); nothing moved."""
    config = api_config(tmp_path, api)
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), Collector())
    pipeline.run_pass()
    before = checkpoint(tmp_path)["cursor"]
    api.fail_next(4, "http_502")
    with pytest.raises(FetchError, match="HTTP 502"):
        pipeline.run_pass()
    assert checkpoint(tmp_path)["cursor"] == before


def test_a_rate_limit_answer_is_waited_out(tmp_path: Path, api: CatoApiServer) -> None:
    """The rate-limit answer inside HTTP 200: the source waits and calls again; nothing is lost."""
    config = api_config(tmp_path, api)
    collector = Collector()
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE), collector)
    pipeline.run_pass()
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 250))
    api.fail_next(3, "rate_limit")
    pipeline.run_pass()
    assert collector.ids == ids(0, 250)


def test_a_stop_cuts_a_rate_limit_wait_short(tmp_path: Path, api: CatoApiServer) -> None:
    """A stop while the source waits out a rate limit ends the pass at once, nothing saved past it."""
    config = api_config(tmp_path, api)
    stop = threading.Event()
    source = events_source(config, full_page=PAGE, stop=stop, rate_limit_first_secs=30)
    pipeline = open_pipeline(config, source, Collector(), stop=stop)
    pipeline.run_pass()
    before = checkpoint(tmp_path)["cursor"]
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 5))
    api.fail_next(1, "rate_limit")
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with contextlib.suppress(Stopped):
        pipeline.run_pass()
    assert time.monotonic() - started < 5  # the wait was 15-30 s
    assert checkpoint(tmp_path)["cursor"] == before


def test_the_api_answering_tells_the_observers(tmp_path: Path, api: CatoApiServer) -> None:
    """Each successful call reports its time and source.marker_max_age_secs (for /readyz)."""
    reports: list[tuple[float, float]] = []

    class Reached(Observer):
        def source_reached(self, at: float, stale_after_secs: float) -> None:
            reports.append((at, stale_after_secs))

    config = api_config(tmp_path, api, source="  marker_max_age_secs: 3600\n")
    pipeline = open_pipeline(config, events_source(config, observer=Reached()), Collector())
    pipeline.run_pass()
    assert reports and all(stale == 3600 for _, stale in reports)


def test_while_idle_the_markers_last_use_is_saved_every_hour(tmp_path: Path, api: CatoApiServer) -> None:
    """Nothing queued for over an hour: an empty page moves used_at forward, the marker stays."""
    config = api_config(tmp_path, api)
    now = [api.clock.now()]
    pipeline = open_pipeline(config, events_source(config, full_page=PAGE, clock=lambda: now[0]), Collector())
    pipeline.run_pass()
    first = checkpoint(tmp_path)["cursor"]
    now[0] += 600
    pipeline.run_pass()
    assert checkpoint(tmp_path)["cursor"] == first  # within the hour: nothing written
    now[0] += 3600
    pipeline.run_pass()
    later = checkpoint(tmp_path)["cursor"]
    assert later["marker"] == first["marker"] and later["used_at"] == int(now[0])
