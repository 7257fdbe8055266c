"""Unit tests for forwarder.observe.progress: pending objects and lag from the listing, backlog lines."""

from __future__ import annotations

import logging
import math

import pytest

from forwarder.core.checkpoint import Position
from forwarder.observe.progress import Backlog, Progress, _duration
from forwarder.sources.base import LogObject
from tests.support.clock import Clock


def obj(sequence: int, size: int = 100, modified: float = 0.0) -> LogObject:
    return LogObject(f"K/CATO{sequence}.zip", size, modified or 1_000_000.0 + 30 * sequence, sequence)


def test_nothing_known_before_a_listing() -> None:
    """Before the first listing and delivery, pending and lag are NaN (unknown), not 0."""
    state = Backlog().state()
    assert math.isnan(state.pending_files) and math.isnan(state.lag_secs)
    assert state.position is None


@pytest.mark.parametrize(
    ("done", "files", "size"),
    [
        ([], 5, 500),
        ([2], 4, 400),
        ([2, 3], 3, 300),
        ([2, 3, 4, 5, 7], 0, 0),
        ([1], 5, 500),  # not in the listing (delivered before it)
    ],
)
def test_pending_files_and_bytes_are_the_listing_less_what_was_done(
    done: list[int], files: int, size: int
) -> None:
    """The objects (and their bytes) of the last listing of what is still to deliver, less those
    delivered since."""
    backlog = Backlog()
    backlog.listed([obj(s) for s in (2, 3, 4, 5, 7)])
    for sequence in done:
        backlog.file_done(obj(sequence), 1)
    state = backlog.state()
    assert (state.pending_files, state.pending_bytes) == (files, size)


def test_a_quarantined_object_is_no_longer_pending() -> None:
    """An object given up on leaves the pending count like a delivered one."""
    backlog = Backlog()
    backlog.listed([obj(1), obj(2)])
    backlog.quarantined(obj(1))
    assert backlog.state().pending_files == 1


def test_lag_is_the_newest_files_time_minus_the_delivered_ones() -> None:
    """Lag: newest listed object's LastModified minus that of the object delivered last (before
    one is, the first one fetched); 0 when caught up."""
    backlog = Backlog()
    backlog.listed([obj(s) for s in (1, 2, 3)])
    backlog.fetched(obj(1), None)
    assert backlog.state().lag_secs == 60
    backlog.file_done(obj(3), 5)
    assert backlog.state().lag_secs == 0
    backlog.listed([obj(4)])  # a new file appears
    state = backlog.state()
    assert state.lag_secs == 30 and state.pending_files == 1
    assert state.newest_file_time == obj(4).modified and state.delivered_file_time == obj(3).modified


def test_probe_mode_knows_the_files_it_downloaded() -> None:
    """Without listings, the newest file is the newest downloaded; pending stays unknown."""
    backlog = Backlog()
    backlog.fetched(obj(8), None)
    backlog.fetched(obj(9), None)
    backlog.file_done(obj(8), 1)
    state = backlog.state()
    assert state.lag_secs == 30 and math.isnan(state.pending_files)


def test_nothing_delivered_or_fetched_has_no_lag() -> None:
    """Before an object was fetched or delivered, the lag is NaN, never a made-up number."""
    backlog = Backlog()
    backlog.listed([obj(5)])
    backlog.saved(Position({"sequence": 2, "complete": True}, 0))
    assert math.isnan(backlog.state().lag_secs)


def progress_with(files: int, interval: float) -> tuple[Backlog, Progress, Clock, list[str]]:
    backlog, clock, shown = Backlog(), Clock(50.0), []
    backlog.listed([obj(s, size=1000) for s in range(1, files + 1)])
    backlog.fetched(obj(1), None)
    return backlog, Progress(backlog, interval, shown.append, clock), clock, shown


def test_backlog_lines_every_interval_then_caught_up(caplog: pytest.LogCaptureFixture) -> None:
    """While files wait, a line per interval with what is left, the rate and an ETA; then one line."""
    backlog, progress, clock, _ = progress_with(10, 60)
    with caplog.at_level(logging.INFO, "forwarder.observe.progress"):
        for sequence in range(1, 11):
            clock.now += 10
            progress.sent("tcp://c", 100, 5000, 0.001)
            backlog.file_done(obj(sequence, size=1000), 100)
            progress.file_done(obj(sequence, size=1000), 100)
    lines = [r for r in caplog.records if r.getMessage().startswith("backlog: ")]
    assert len(lines) == 1  # 100 s of backlog, first line after 60 s
    line = lines[0]
    assert line.getMessage() == (
        "backlog: 4 files (~400 events, 4.0 KB) remaining, lag 2m0s; 10 events/s; caught up in ~40s"
    )
    assert line.__dict__["files_remaining"] == 4 and line.__dict__["eta_secs"] == 40
    assert line.__dict__["events_per_sec"] == 10 and line.__dict__["lag_secs"] == 120
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("caught up")]
    assert done == ["caught up: 900 events from 10 files in 1m30s"]


def test_no_lines_in_normal_running(caplog: pytest.LogCaptureFixture) -> None:
    """One or two files per poll are not a backlog: no progress lines."""
    backlog, progress, clock, shown = progress_with(2, 1)
    with caplog.at_level(logging.INFO, "forwarder.observe.progress"):
        for _ in range(5):
            clock.now += 100
            progress.sent("tcp://c", 100, 5000, 0.001)
            progress.pass_done()
    assert caplog.records == [] and shown == []


def test_live_line_shows_the_backlog_and_clears(caplog: pytest.LogCaptureFixture) -> None:
    """On a terminal the live line shows files left, rate and ETA, and is cleared when caught up."""
    backlog, progress, clock, shown = progress_with(10, 0)
    for sequence in range(1, 11):
        clock.now += 2
        progress.sent("tcp://c", 100, 5000, 0.001)
        backlog.file_done(obj(sequence, size=1000), 100)
        progress.file_done(obj(sequence, size=1000), 100)
    assert shown[0].startswith("backlog: 9 files (~900 events) left | 50 events/s | ETA 18s | lag ")
    assert shown[-1] == ""
    assert not [r for r in caplog.records if r.getMessage().startswith("backlog")]  # interval 0: no lines


@pytest.mark.parametrize(
    ("secs", "text"),
    [(0.4, "0s"), (42, "42s"), (310, "5m10s"), (3 * 3600 + 720, "3h12m"), (93600, "1d2h"), (math.nan, "?")],
)
def test_durations_read_well(secs: float, text: str) -> None:
    """Durations are short and readable: 42s, 5m10s, 3h12m, 1d2h."""
    assert _duration(secs) == text
