"""Many pipelines in one process: each in its own thread, with its own transport and retries.

A pipeline whose collector is down, whose object is bad or whose key expired waits and
retries on its own; the others go on. ``stop()`` (SIGTERM) asks every pipeline to finish
its batches in flight and save; ``reload(config)`` (SIGHUP) starts the pipelines added,
stops the ones removed, restarts the ones whose settings changed and leaves the rest
alone. A pipeline that stops on an error it cannot get past (a corrupt or unwritable
checkpoint) says so once, in the log and on /readyz; the others go on. A fleet's pipeline
whose lease this forwarder lost (LeaseLost) stops quietly: it is not failing, it moved to
another forwarder; ``forwarder.coordination`` decides which pipelines run here and tells
the runner with ``reload`` (its *reason* names who asked).

Threads, not a process per pipeline: the work is waiting on S3 and collectors, and what
costs CPU (reading files into messages) goes to the process' one pool of workers
(``core.workers``, ``workers:``); ``benchmarks/pipelines.py`` measures 200 idle pipelines
and 20 busy ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from forwarder.config import Config, PipelineConfig
from forwarder.core.context import PIPELINE
from forwarder.core.delivery import Stopped
from forwarder.core.observer import Observer
from forwarder.core.pipeline import Pipeline
from forwarder.core.reports import RunStats
from forwarder.errors import ForwarderError, LeaseLost

log = logging.getLogger(__name__)

# Builds a pipeline from its settings (forwarder.compose.build_pipeline, with the run's options).
Build = Callable[[PipelineConfig, threading.Event, Observer], Pipeline]


@dataclass
class Worker:
    """One pipeline's thread, and how it ended."""

    config: PipelineConfig
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    pipeline: Pipeline | None = None
    error: BaseException | None = None
    observer: Observer = field(default_factory=Observer)


class Runner:
    """Runs the pipelines of a config; see the module docstring."""

    def __init__(self, build: Build, observers: Callable[[str], Observer], once: bool = False) -> None:
        self._build = build
        self._observers = observers
        self._once = once
        self._lock = threading.Lock()
        self.workers: dict[str, Worker] = {}
        self._seen: set[str] = set()  # the names of pipelines started, ever (to log "added")
        # What finished pipelines did; their objects (clients, buffers) are let go, since a
        # fleet's pipelines may come and go for months.
        self._finished_stats = RunStats()

    def start(self, config: Config) -> None:
        """Start every pipeline of *config*."""
        for pipeline in config.pipelines:
            self._start(pipeline)

    def _start(self, config: PipelineConfig) -> None:
        # The observers first, here: /readyz knows the pipeline before its thread runs.
        worker = Worker(config, observer=self._observers(config.name))
        self._seen.add(config.name)
        # daemon: a second Ctrl-C ends the process even while a pipeline waits on its collector
        worker.thread = threading.Thread(
            target=self._run, args=(worker,), name=f"pipeline:{config.name}", daemon=True
        )
        with self._lock:
            self.workers[config.name] = worker
        worker.thread.start()

    def _run(self, worker: Worker) -> None:
        name = worker.config.name
        PIPELINE.set(name)
        observer = worker.observer
        try:
            pipeline = worker.pipeline = self._build(worker.config, worker.stop, observer)
            pipeline.open()
        except LeaseLost as exc:
            log.warning("%s; not started here", exc)
            return
        except ForwarderError as exc:
            self._failed(worker, observer, exc)
            return
        except BaseException as exc:
            self._crashed(worker, observer, exc, starting=True)
            return
        try:
            if self._once:
                pipeline.run_pass()
            else:
                pipeline.run_forever()
        except Stopped:
            pass
        except LeaseLost as exc:
            log.warning("%s; this forwarder sends and saves nothing more for it", exc)
        except ForwarderError as exc:
            self._failed(worker, observer, exc)
        except BaseException as exc:
            self._crashed(worker, observer, exc, starting=False)
        finally:
            try:
                pipeline.close()
            except ForwarderError as exc:
                log.error("%s", exc)

    @staticmethod
    def _failed(worker: Worker, observer: Observer, exc: ForwarderError) -> None:
        worker.error = exc
        log.error("%s", exc)
        observer.stopped(str(exc))

    @staticmethod
    def _crashed(worker: Worker, observer: Observer, exc: BaseException, starting: bool) -> None:
        """A bug: logged with its traceback, and told to the pipeline's health."""
        name, what = worker.config.name, "cannot start, " if starting else ""
        if starting:
            log.exception("pipeline %s: cannot start (a bug: please report it)", name)
        else:
            log.exception("pipeline %s stopped on an unexpected error (a bug: please report it)", name)
        worker.error = exc
        observer.stopped(f"{what}unexpected error (a bug: please report it): {exc!r}")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every pipeline's thread ended (or *timeout*); True when all did."""
        for worker in list(self.workers.values()):
            if worker.thread is not None:
                worker.thread.join(timeout)
        return not self.running()

    def running(self) -> bool:
        """True while any pipeline's thread runs."""
        return any(w.thread is not None and w.thread.is_alive() for w in list(self.workers.values()))

    def stop(self) -> None:
        """Ask every pipeline to finish its batches in flight, save, and stop."""
        for worker in list(self.workers.values()):
            worker.stop.set()

    def reload(self, config: Config, reason: str = "SIGHUP") -> None:
        """Start added pipelines, stop removed ones, restart changed ones (and ones that stopped on
        an error: a reload is how to retry them once fixed); the rest go on. *reason* begins
        the log lines."""
        wanted = {p.name: p for p in config.pipelines}
        going = [
            name
            for name, worker in self.workers.items()
            if wanted.get(name) != worker.config or worker.thread is None or not worker.thread.is_alive()
        ]
        for name in going:
            self.workers[name].stop.set()
        for name in going:
            worker = self.workers[name]
            if worker.thread is not None:
                worker.thread.join()
            with self._lock:
                del self.workers[name]
            if worker.pipeline is not None:
                _add(self._finished_stats, worker.pipeline.stats)
                worker.pipeline = None
            log.info("%s: pipeline %s %s", reason, name, "restarting" if name in wanted else "removed")
        for name, pipeline in wanted.items():
            if name not in self.workers:
                if name not in self._seen:
                    log.info("%s: pipeline %s added", reason, name)
                self._start(pipeline)

    def stats(self) -> RunStats:
        """What every pipeline did, summed (those a reload stopped included)."""
        total = RunStats()
        _add(total, self._finished_stats)
        for worker in list(self.workers.values()):
            if worker.pipeline is not None:
                _add(total, worker.pipeline.stats)
        return total

    def errors(self) -> list[BaseException]:
        """The errors pipelines stopped on (still configured ones)."""
        return [w.error for w in self.workers.values() if w.error is not None]


def _add(total: RunStats, stats: RunStats) -> None:
    """Add *stats*' counts to *total*."""
    for name, value in vars(stats).items():
        if isinstance(value, int) and name != "started":
            setattr(total, name, getattr(total, name) + value)
