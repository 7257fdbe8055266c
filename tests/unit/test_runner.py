"""Unit tests for forwarder.core.runner: pipelines on their own threads, stopped, reloaded, isolated."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from forwarder.compose import build_pipeline
from forwarder.config import Config, PipelineConfig, parse_config
from forwarder.core.context import PIPELINE
from forwarder.core.observer import Observer
from forwarder.core.pipeline import Pipeline
from forwarder.core.runner import Runner
from forwarder.errors import SendError
from forwarder.samples import make_zip
from forwarder.transports.base import AckedOnWrite
from tests.unit.test_pipeline import FakeSource, event, events_file


class Collector(AckedOnWrite):
    """A transport that takes batches (or refuses all while down), remembering the pipeline it ran for."""

    label = "fake://collector"
    paces_itself = False
    max_message_bytes: int | None = None

    def __init__(self) -> None:
        self.events: list[bytes] = []
        self.down = False
        self.threads: set[str] = set()

    def write(self, messages: list[bytes]) -> None:
        self.threads.add(PIPELINE.get())
        if self.down:
            raise SendError("fake://collector: connection refused")
        self.events += messages
        self._delivered()

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None


def config(tmp_path: Path, names: list[str], extra: str = "") -> Config:
    items = "".join(f"  - {{name: {name}, source: {{prefix: {name}/}}}}\n" for name in names)
    return parse_config(
        "defaults:\n"
        f"  source: {{bucket: b, poll_interval_secs: 0.1, prefetch_files: 0{extra}}}\n"
        "  output: {header: none, retry_initial_secs: 0.01, retry_max_secs: 0.05}\n"
        f"  checkpoint: {{path: '{tmp_path}/{{pipeline}}/cp.json'}}\n"
        f"pipelines:\n{items}",
        env={},
    )


class World:
    """Each pipeline's objects and collector, and a build function handing them out."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.objects: dict[str, dict[int, bytes]] = {}
        self.collectors: dict[str, Collector] = {}
        self.built: list[str] = []

    def build(self, config: PipelineConfig, stop: threading.Event, observer: Observer) -> Pipeline:
        self.built.append(config.name)
        objects = self.objects.setdefault(config.name, {1: events_file(1, 3), 2: events_file(2, 2)})
        downloads = self.tmp_path / "downloads" / config.name  # each its own: the file names repeat
        downloads.mkdir(parents=True, exist_ok=True)
        source = FakeSource(downloads, objects)
        collector = self.collectors.setdefault(config.name, Collector())
        return build_pipeline(config, stop=stop, source=source, transport=collector, observer=observer)


def told(stopped: dict[str, str]) -> type[Observer]:
    """An observer class (made per pipeline name) noting in *stopped* why each one stopped."""

    class Told(Observer):
        def __init__(self, name: str) -> None:
            self.name = name

        def stopped(self, reason: str) -> None:
            stopped[self.name] = reason

    return Told


def wait_for(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_every_pipeline_runs_on_its_own_thread_to_its_own_collector(tmp_path: Path) -> None:
    """Each pipeline delivers its objects to its own collector, its thread named for it (the log
    names it too); stop() ends them all with their checkpoints saved."""
    world = World(tmp_path)
    runner = Runner(world.build, lambda name: Observer())
    runner.start(config(tmp_path, ["acme", "beta", "gamma"]))
    wait_for(
        lambda: all(len(world.collectors.get(n, Collector()).events) == 5 for n in ("acme", "beta", "gamma"))
    )
    runner.stop()
    assert runner.wait(10)
    for name, collector in world.collectors.items():
        assert collector.events == [event(1, i) for i in range(3)] + [event(2, i) for i in range(2)]
        assert collector.threads == {name}
        assert (tmp_path / name / "cp.json").exists()


def test_one_collector_down_does_not_hold_the_others(tmp_path: Path) -> None:
    """While one pipeline's collector refuses, the others deliver; it catches up when it is back."""
    world = World(tmp_path)
    down = world.collectors["beta"] = Collector()
    down.down = True
    runner = Runner(world.build, lambda name: Observer())
    runner.start(config(tmp_path, ["acme", "beta", "gamma"]))
    wait_for(lambda: len(world.collectors.get("acme", Collector()).events) == 5)
    wait_for(lambda: len(world.collectors.get("gamma", Collector()).events) == 5)
    assert down.events == []
    down.down = False
    wait_for(lambda: len(down.events) == 5)
    runner.stop()
    assert runner.wait(10)


def test_reload_starts_added_stops_removed_restarts_changed_and_leaves_the_rest(tmp_path: Path) -> None:
    """A reload starts a new pipeline, stops a removed one, restarts a changed one; one unchanged
    keeps its thread (it is not built again)."""
    world = World(tmp_path)
    runner = Runner(world.build, lambda name: Observer())
    runner.start(config(tmp_path, ["acme", "beta", "gamma"]))
    wait_for(
        lambda: all(len(world.collectors.get(n, Collector()).events) == 5 for n in ("acme", "beta", "gamma"))
    )
    threads = {name: worker.thread for name, worker in runner.workers.items()}
    changed = config(tmp_path, ["acme", "beta", "delta"])
    changed = Config(
        tuple(p if p.name != "beta" else p.__class__(**{**p.__dict__, "batch": p.batch.__class__(7)})
              for p in changed.pipelines),
        changed.log,
        changed.metrics,
    )  # fmt: skip
    runner.reload(changed)
    wait_for(lambda: len(world.collectors.get("delta", Collector()).events) == 5)
    assert runner.workers["acme"].thread is threads["acme"]  # untouched
    assert (
        runner.workers["beta"].thread is not threads["beta"]
        and runner.workers["beta"].config.batch.max_events == 7
    )
    assert "gamma" not in runner.workers and threads["gamma"] is not None and not threads["gamma"].is_alive()
    assert world.built.count("acme") == 1 and world.built.count("beta") == 2
    world.objects["gamma"][3] = make_zip([("a.log", event(3, 0) + b"\n")])
    time.sleep(0.3)
    assert len(world.collectors["gamma"].events) == 5  # removed: it sends nothing more
    runner.stop()
    assert runner.wait(10)
    assert runner.stats().events_sent == 20  # what every pipeline sent, those stopped by the reload too


def test_a_pipeline_that_cannot_start_stops_alone(tmp_path: Path) -> None:
    """A corrupt checkpoint stops its pipeline with the error (observers told); the others run; a
    reload once it is fixed starts it again."""
    (tmp_path / "beta").mkdir()
    (tmp_path / "beta" / "cp.json").write_text("{ torn")
    world = World(tmp_path)
    stopped: dict[str, str] = {}
    Told = told(stopped)
    runner = Runner(world.build, Told)
    runner.start(config(tmp_path, ["acme", "beta"]))
    wait_for(lambda: len(world.collectors.get("acme", Collector()).events) == 5)
    wait_for(lambda: "beta" in stopped)
    assert "the checkpoint is corrupt" in stopped["beta"]
    assert [type(e).__name__ for e in runner.errors()] == ["CheckpointError"]
    assert runner.running()  # acme goes on
    (tmp_path / "beta" / "cp.json").unlink()  # fixed
    acme = runner.workers["acme"].thread
    runner.reload(config(tmp_path, ["acme", "beta"]))  # the same config: retries the stopped one
    wait_for(lambda: len(world.collectors.get("beta", Collector()).events) == 5)
    assert runner.workers["acme"].thread is acme and runner.errors() == []
    runner.stop()
    assert runner.wait(10)


def test_a_pipeline_that_stops_on_a_bug_says_so_to_its_observers(tmp_path: Path) -> None:
    """An unexpected error (a bug) in one pipeline's pass stops it alone, with the error logged
    and told to its observers (/readyz shows it), the others going on."""
    world = World(tmp_path)
    stopped: dict[str, str] = {}
    Told = told(stopped)

    class Buggy(Collector):
        def write(self, messages: list[bytes]) -> None:
            raise ZeroDivisionError("a bug")

    world.collectors["beta"] = Buggy()
    runner = Runner(world.build, Told)
    runner.start(config(tmp_path, ["acme", "beta"]))
    wait_for(lambda: "beta" in stopped)
    assert stopped["beta"] == "unexpected error (a bug: please report it): ZeroDivisionError('a bug')"
    assert [type(e).__name__ for e in runner.errors()] == ["ZeroDivisionError"]
    wait_for(lambda: len(world.collectors.get("acme", Collector()).events) == 5)
    assert "acme" not in stopped
    runner.stop()
    assert runner.wait(10)
