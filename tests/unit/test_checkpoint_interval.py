"""Unit tests of when the pipeline writes its checkpoint: at most every
checkpoint.interval_secs while batches are acknowledged, and always when delivery waits
(pacing, a backoff), when a pass ends and when it stops."""

from __future__ import annotations

import threading
from pathlib import Path

from forwarder.core.checkpoint import Position
from forwarder.core.observer import Observer
from tests.unit.test_pipeline import (
    FakeSource,
    FakeTransport,
    at,
    event,
    events_file,
    make_config,
    make_pipeline,
    saved,
)


class Saves(Observer):
    """Every position the pipeline wrote."""

    def __init__(self) -> None:
        self.positions: list[Position] = []

    def saved(self, position: Position) -> None:
        self.positions.append(position)


def test_the_checkpoint_waits_for_the_interval_while_batches_are_acknowledged(tmp_path: Path) -> None:
    """With a long interval, ten acknowledged batches move the checkpoint once, at the end of
    the pass; in between it stays where it was (what a crash would send again)."""
    config = make_config(tmp_path, max_events=2, interval_secs=3600)
    source = FakeSource(tmp_path, {7: events_file(7, 12), 8: events_file(8, 8)})
    seen: list[Position | None] = []
    transport = FakeTransport(on_send=lambda messages: seen.append(saved(config)))
    saves = Saves()
    pipeline = make_pipeline(config, source, transport, observer=saves)
    assert pipeline.run_pass() == 20
    assert seen == [at(7, 0)] * 10  # pinned by source.start, then not written again until the end
    assert saves.positions == [at(7, 0), at(8, 8, True)]  # the pin of source.start, and the end
    assert saved(config) == at(8, 8, True)


def test_interval_zero_writes_after_every_acknowledged_batch(tmp_path: Path) -> None:
    """checkpoint.interval_secs: 0 writes the checkpoint after every acknowledged batch."""
    config = make_config(tmp_path, max_events=2, interval_secs=0)
    saves = Saves()
    source = FakeSource(tmp_path, {7: events_file(7, 6)})
    pipeline = make_pipeline(config, source, FakeTransport(), observer=saves)
    pipeline.run_pass()
    assert saves.positions == [at(7, 0), at(7, 2), at(7, 4), at(7, 6), at(7, 6, True)]


def test_pacing_writes_the_checkpoint_in_every_pause(tmp_path: Path) -> None:
    """With max_events_per_sec the checkpoint is written before each pause, whatever the
    interval: a crash while pacing repeats nothing."""
    config = make_config(tmp_path, max_events=2, interval_secs=3600, output="  max_events_per_sec: 10\n")
    source = FakeSource(tmp_path, {7: events_file(7, 6)})
    seen: list[Position | None] = []
    transport = FakeTransport(on_send=lambda messages: seen.append(saved(config)))
    make_pipeline(config, source, transport).run_pass()
    assert seen == [at(7, 0), at(7, 2), at(7, 4)]
    assert saved(config) == at(7, 6, True)


def test_a_stop_saves_what_was_acknowledged(tmp_path: Path) -> None:
    """A stop mid-file ends the pass with the checkpoint at the last acknowledged batch, not at
    the last one written before the interval passed."""
    config = make_config(tmp_path, max_events=2, interval_secs=3600)
    source = FakeSource(tmp_path, {7: events_file(7, 10)})
    stop = threading.Event()

    def stop_at_the_third(attempt: int) -> bool:
        if attempt == 3:
            stop.set()  # SIGTERM while the third batch is in flight
        return False

    transport = FakeTransport(fails=stop_at_the_third)
    make_pipeline(config, source, transport, stop=stop).run_pass()
    assert transport.events == [event(7, i) for i in range(6)]
    assert saved(config) == at(7, 6)


def test_a_failed_batch_saves_what_was_acknowledged_before_the_backoff(tmp_path: Path) -> None:
    """When the collector fails, the checkpoint is written before waiting to send again."""
    config = make_config(tmp_path, max_events=2, interval_secs=3600)
    source = FakeSource(tmp_path, {7: events_file(7, 6)})
    seen: list[Position | None] = []

    def fails(attempt: int) -> bool:
        return attempt == 3

    transport = FakeTransport(fails=fails, on_send=lambda messages: seen.append(saved(config)))
    make_pipeline(config, source, transport, once=False).run_pass()
    assert seen == [at(7, 0), at(7, 0), at(7, 0), at(7, 4)]  # the retry comes after a save
    assert saved(config) == at(7, 6, True)
