"""Unit tests for the fence (forwarder.core.fence): a pipeline whose lease is lost stops at once,
sending and saving nothing more, and the runner takes that as a move, not a failure."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from forwarder.compose import build_pipeline
from forwarder.core.fence import UNFENCED
from forwarder.core.observer import Observer
from forwarder.core.pipeline import Pipeline
from forwarder.core.runner import Runner
from forwarder.errors import LeaseLost
from tests.unit.test_pipeline import FakeSource, FakeTransport, at, event, events_file, make_config, saved
from tests.unit.test_runner import World, config, wait_for


class Closing:
    """A fence that closes after *open_for* checks, counting every check."""

    def __init__(self, open_for: int) -> None:
        self.open_for = open_for
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.checks > self.open_for:
            raise LeaseLost("pipeline default: lease lost: taken over by fwd-b (epoch 2)")


def fenced(tmp_path: Path, fence: Closing, transport: FakeTransport) -> Pipeline:
    cfg = make_config(tmp_path, max_events=2)
    source = FakeSource(tmp_path, {1: events_file(1, 6)}, cfg)
    pipeline = build_pipeline(cfg.pipeline(), once=True, source=source, transport=transport)
    pipeline.fence = fence  # what its sends and saves ask
    pipeline.open()
    return pipeline


def test_a_lost_lease_stops_sending_and_saving_at_once(tmp_path: Path) -> None:
    """Sends and saves alternate under the fence; once it closes (here before the third save)
    nothing more goes out or is written, and LeaseLost ends the pass."""
    transport = FakeTransport()
    fence = Closing(open_for=5)  # start save, send, save, send, save: the 6th check (a send) fails
    pipeline = fenced(tmp_path, fence, transport)
    with pytest.raises(LeaseLost, match="taken over by fwd-b"):
        pipeline.run_pass()
    pipeline.close()
    assert transport.events == [event(1, i) for i in range(4)]
    assert saved(make_config(tmp_path)) == at(1, 4)  # the last save before the fence closed
    assert fence.checks == 6


def test_a_send_waiting_for_a_retry_asks_the_fence_again(tmp_path: Path) -> None:
    """A batch the collector refused is not sent again once the fence closed meanwhile."""
    transport = FakeTransport(fails=lambda attempt: attempt == 1)
    fence = Closing(open_for=2)  # start save, first send (refused); the retry's check fails
    pipeline = fenced(tmp_path, fence, transport)
    with pytest.raises(LeaseLost):
        pipeline.run_pass()
    pipeline.close()
    assert transport.attempts == 1 and transport.events == []


def test_unfenced_is_always_open() -> None:
    """A pipeline nobody shares is never stopped by its fence."""
    for _ in range(3):
        UNFENCED.check()


def test_the_runner_takes_a_lost_lease_as_a_move_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A pipeline stopped by LeaseLost logs one warning naming it, is no error (exit code, /readyz),
    and its observers are not told it stopped; the other pipeline goes on."""
    world = World(tmp_path)
    stopped: list[str] = []

    class Told(Observer):
        def stopped(self, reason: str) -> None:
            stopped.append(reason)

    def build(cfg: object, stop: threading.Event, observer: Observer) -> Pipeline:
        pipeline = world.build(cfg, stop, observer)  # type: ignore[arg-type]
        if pipeline.name == "beta":
            pipeline.fence = Closing(open_for=0)
        return pipeline

    runner = Runner(build, lambda name: Told())
    with caplog.at_level(logging.WARNING):
        runner.start(config(tmp_path, ["acme", "beta"]))
        wait_for(lambda: "acme" in world.collectors and len(world.collectors["acme"].events) == 5)
        wait_for(lambda: not runner.workers["beta"].thread.is_alive())  # type: ignore[union-attr]
    runner.stop()
    assert runner.wait(10)
    assert runner.errors() == [] and stopped == []
    assert world.collectors["beta"].events == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("lease lost" in w and "sends and saves nothing more" in w for w in warnings), warnings
