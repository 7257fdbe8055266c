"""``forwarder run``: every pipeline, until SIGTERM (or once, with ``--once``).

SIGTERM/SIGINT: each pipeline finishes its batches in flight and saves (a second SIGINT
aborts); SIGHUP: the config is read again and the pipelines added, removed or changed
start, stop or restart (``core.runner``); a config that does not load keeps the running one.

With ``coordination.kind: s3`` the forwarder runs the pipelines whose leases it holds
(``forwarder.coordination``) until SIGTERM, also while it holds none; at the stop it
releases them. ``--once`` then forwards the pipelines no other forwarder holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import threading
import time
from types import FrameType

from forwarder.commands.common import EXIT_OK, chosen, load
from forwarder.compose import build_coordinator, build_pipeline, build_reader
from forwarder.config import Config, PipelineConfig, load_config, secret_values
from forwarder.coordination.coordinator import Coordinator
from forwarder.coordination.steering import Steering
from forwarder.core.observer import Observer
from forwarder.core.pipeline import Pipeline
from forwarder.core.runner import Runner
from forwarder.errors import ForwarderError
from forwarder.observe.logs import setup_logging
from forwarder.observe.wiring import Observing

log = logging.getLogger("forwarder")


class _Signals:
    """SIGTERM/SIGINT stop (a second SIGINT aborts), SIGHUP asks for a reload."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, lambda signum, frame: self.reload.set())

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("%s received: finishing the batches in flight, then exiting", signal.Signals(signum).name)
        self.stop.set()


def _target(config: PipelineConfig) -> str:
    out = config.output
    if out.protocol in ("file", "stdout"):
        return out.path or out.protocol
    hosts = ", ".join(out.hosts) if out.hosts else f"{out.host}:{out.port}"
    return f"{out.protocol}://{hosts}"


def cmd_run(args: argparse.Namespace) -> int:
    config = load(args)
    config = dataclasses.replace(config, pipelines=chosen(config, args))
    signals = _Signals()
    signals.install()
    pool = build_reader(config.workers)  # one for every pipeline; closed after they stopped
    if pool is not None:
        log.info("reading with %d worker processes (workers: %s)", pool.size, config.workers)
    observing = Observing(config)  # metrics.listen: the endpoint listens from here on
    once = bool(args.once)
    fleet = build_coordinator(config, greedy=once)

    def build(config: PipelineConfig, stop: threading.Event, observer: Observer) -> Pipeline:
        leased = fleet if not config.shared_by_queue else None  # a queue's readers keep local state
        pipeline = build_pipeline(config, stop=stop, once=once, observer=observer, fleet=leased, reader=pool)
        out = config.output
        log.info(
            "forwarding %s to %s (%s header%s)",
            pipeline.source.id,
            _target(config),
            out.header,
            f", {out.framing} framing" if out.protocol in ("tcp", "tls") else "",
        )
        return pipeline

    runner = Runner(build, observing.pipeline, once)
    steering = Steering(fleet, runner, observing.forget) if fleet is not None else None
    started = time.monotonic()
    try:
        if steering is None:
            runner.start(config)
        else:
            _join(steering.coordinator, observing, once)
            steering.step(config)
        while runner.running() or (steering is not None and not once and not signals.stop.is_set()):
            if signals.stop.is_set():
                runner.stop()
            elif signals.reload.is_set():
                signals.reload.clear()
                config = _reloaded(args, config, runner, observing, steering)
            elif steering is not None:
                steering.step(config)
            runner.wait(0.2)
    finally:
        runner.stop()
        runner.wait()
        if fleet is not None:
            fleet.close()
        if pool is not None:
            pool.close()
        observing.close()
    stats = runner.stats()
    letters = sum(w.pipeline.dead_letter.written for w in runner.workers.values() if w.pipeline is not None)
    log.info(
        "done: %d events from %d files in %.1fs%s%s%s%s",
        stats.events_sent,
        stats.files,
        time.monotonic() - started,
        f"; {stats.bad_records} bad records skipped (see warnings above)" if stats.bad_records else "",
        f"; {stats.repaired_records} sent with invalid UTF-8 replaced" if stats.repaired_records else "",
        f"; {letters} noted in the dead-letter file" if letters else "",
        f"; over output.max_message_bytes: {oversize}" if (oversize := stats.oversize_text()) else "",
    )
    errors = [e for e in runner.errors() if isinstance(e, ForwarderError)]
    if len(errors) < len(runner.errors()):
        raise next(e for e in runner.errors() if not isinstance(e, ForwarderError))
    return max((e.exit_code for e in errors), default=EXIT_OK)


def _join(fleet: Coordinator, observing: Observing, once: bool) -> None:
    """Take part in the fleet: its metrics and readiness wired, its rounds started."""
    fleet.observer = observing.fleet(fleet.me) or fleet.observer
    observing.coordination = lambda: fleet.status
    fleet.start()
    if once:
        for name in sorted(set(fleet.pipelines) - set(fleet.wanted())):
            log.info("pipeline %s: its lease is held by another forwarder; not run here", name)


def _reloaded(
    args: argparse.Namespace, config: Config, runner: Runner, observing: Observing, steering: Steering | None
) -> Config:
    """SIGHUP: read the config again and apply it; keep running on the old one if it fails."""
    try:
        fresh = load_config(args.config)
        fresh = dataclasses.replace(fresh, pipelines=chosen(fresh, args))
    except ForwarderError as exc:
        log.error("SIGHUP: the reloaded configuration was refused, keeping the running one: %s", exc)
        return config
    setup_logging(
        args.log_level or fresh.log.level,
        args.log_format or fresh.log.format,
        secrets=secret_values(fresh),
        repeat_window_secs=fresh.log.repeat_window_secs,
    )
    if fresh.metrics != config.metrics:
        log.warning("SIGHUP: metrics settings changed; they take effect at the next start")
    if fresh.workers != config.workers:
        log.warning("SIGHUP: workers changed; it takes effect at the next start")
    if fresh.coordination != config.coordination:
        log.warning("SIGHUP: coordination settings changed; they take effect at the next start")
        fresh = dataclasses.replace(fresh, coordination=config.coordination)
    if steering is not None:
        steering.reload(fresh)
    else:
        runner.reload(fresh)
    for name in {p.name for p in config.pipelines} - {p.name for p in fresh.pipelines}:
        observing.forget(name)
    log.info("SIGHUP: configuration and credentials reloaded from %s", args.config)
    return fresh
