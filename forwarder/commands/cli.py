"""Command line: ``forwarder run|check|demo``.

Only ForwarderError (and its subclasses) is caught and printed as one line; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from forwarder import __version__
from forwarder.config import Config, exposed_secrets_warning, load_config, secret_values
from forwarder.core.checkpoint import CheckpointStore
from forwarder.core.observer import Observer
from forwarder.core.pipeline import Pipeline, Stopped
from forwarder.errors import ConfigError, ForwarderError
from forwarder.formats.encoder import EventEncoder
from forwarder.observe.logs import setup_logging
from forwarder.sources.probe import ProbeSource
from forwarder.sources.s3 import S3Source, make_s3_client
from forwarder.transports.stream import make_transport

log = logging.getLogger("forwarder")

EXIT_OK = 0
EXIT_BUG = 1
EXIT_CONFIG = 2
EXIT_CHECKPOINT = 3
EXIT_INCOMPLETE = 4
EXIT_INTERRUPTED = 130

EPILOG = """\
exit codes:
  0    done (run --once: every available file read, every good event acknowledged)
  1    unexpected internal error (a bug: please report it with the traceback)
  2    bad command line or configuration (the message names the key)
  3    checkpoint problem: corrupt, not writable, or locked by another forwarder
  4    not everything was delivered or fetched (run --once), or check found a problem
  130  interrupted twice (Ctrl-C during shutdown)

examples:
  forwarder demo                                   see it work: local S3 + local collector
  forwarder check --config forwarder.yaml          validate config, reach bucket and collector
  forwarder run --config forwarder.yaml --once     forward what is there now, then exit (cron)
  forwarder run --config forwarder.yaml            keep polling (systemd, container); SIGHUP
                                                   reloads the config and credentials
  forwarder status --config forwarder.yaml         position, pending files, gaps, quarantine
  forwarder import-state --config forwarder.yaml /path/to/storage-file
                                                   switch over from Cato's client script

The config file is YAML; config.example.yaml documents every option. ${VAR} and
${VAR:-default} in values are replaced from the environment.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forwarder",
        description="Forward Cato Networks Log Exporter events from S3 to a syslog collector "
        "(QRadar, ArcSight, rsyslog, ...) over UDP, TCP, TLS or RELP: every event at least once, in order.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"forwarder {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument(
            "--log-level",
            choices=("debug", "info", "warning", "error"),
            help="override log.level from the config",
        )
        sub.add_argument(
            "--log-format",
            choices=("auto", "text", "json"),
            help="override log.format (auto: text on a terminal, JSON otherwise)",
        )
        return sub

    config_help = "the YAML config file (default: $FORWARDER_CONFIG)"
    run = add(
        "run",
        "Forward new files from the bucket to the collector; poll until stopped "
        "(SIGTERM/SIGINT finish the batch in flight, save the checkpoint and exit 0).",
    )
    run.add_argument("--config", "-c", default=os.environ.get("FORWARDER_CONFIG"), help=config_help)
    run.add_argument(
        "--once",
        action="store_true",
        help="forward everything available now, then exit (for cron); exit 4 if "
        "anything could not be fetched or delivered",
    )
    check = add(
        "check",
        "Validate the config, then reach the bucket, the collector, the "
        "checkpoint and the dead-letter file; one line per finding, nothing is sent.",
    )
    check.add_argument("--config", "-c", default=os.environ.get("FORWARDER_CONFIG"), help=config_help)
    status = add(
        "status",
        "Show where forwarding stands: position (file, record), files pending, "
        "gaps seen, quarantined files, the file it is stuck on, the dead-letter file "
        "(records set aside, the last one) and the last error.",
    )
    status.add_argument("--config", "-c", default=os.environ.get("FORWARDER_CONFIG"), help=config_help)
    status.add_argument("--json", action="store_true", help="one JSON object, for machines")
    imp = add(
        "import-state",
        "Start from the vendor client script's storage file (its last entry "
        "downloaded): the first file forwarded is the one after it. Refuses to overwrite an "
        "existing checkpoint unless --force.",
    )
    imp.add_argument("--config", "-c", default=os.environ.get("FORWARDER_CONFIG"), help=config_help)
    imp.add_argument("storage_file", metavar="STORAGE_FILE", help="the client script's storage file")
    imp.add_argument("--force", action="store_true", help="replace an existing checkpoint")
    demo = add(
        "demo",
        "Run the whole job on embedded defaults: a local S3 endpoint holding "
        "sample Cato files and a local syslog listener (needs: pip install 'forwarder[demo]').",
    )
    demo.add_argument("--files", type=int, default=4, help="sample files to generate (default 4)")
    demo.add_argument("--events", type=int, default=6, help="events per member (default 6)")
    return parser


@dataclass
class _Stopper:
    """Turns the first SIGTERM/SIGINT into a graceful stop, a second SIGINT into an abort."""

    event: threading.Event

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("%s received: finishing the batch in flight, then exiting", signal.Signals(signum).name)
        self.event.set()


def _load(args: argparse.Namespace) -> Config:
    if not args.config:
        raise _UsageError("--config FILE is required (or set FORWARDER_CONFIG); see config.example.yaml")
    config = load_config(args.config)
    setup_logging(
        args.log_level or config.log.level,
        args.log_format or config.log.format,
        secrets=secret_values(config),
        repeat_window_secs=config.log.repeat_window_secs,
    )
    if warning := exposed_secrets_warning(args.config):
        log.warning("%s", warning)
    return config


class _UsageError(ForwarderError):
    exit_code = EXIT_CONFIG


def make_source(config: Config) -> S3Source:
    """The source that source.discovery names, able to build its S3 client again."""

    def client() -> Any:
        return make_s3_client(config.source)

    kind = ProbeSource if config.source.discovery == "probe" else S3Source
    return kind(client(), config.source, client)


def build_pipeline(
    config: Config,
    stop: threading.Event,
    once: bool,
    store: CheckpointStore | None = None,
    observer: Observer | None = None,
) -> tuple[Pipeline, CheckpointStore, Any]:
    """Wire the stages from *config*; the checkpoint (*store*, or a new one) is locked on return."""
    source = make_source(config)
    if observer is not None:
        source.on_listing = observer.listed
    if store is None:
        store = CheckpointStore(config.checkpoint.path, source.id)
        store.lock()
    elif store.source_id != source.id or store.path != Path(config.checkpoint.path):
        raise ConfigError(
            f"source/checkpoint: a reload cannot move to another source or checkpoint "
            f"({source.id}, {config.checkpoint.path}); restart the forwarder for that"
        )
    try:
        transport = make_transport(config.output)
        encoder = EventEncoder(config)
        pipeline = Pipeline(config, source, store, encoder, transport, stop, once, observer)
    except BaseException:  # a corrupt checkpoint or bad TLS files: do not keep the lock open
        store.unlock()
        raise
    return pipeline, store, transport


def cmd_run(args: argparse.Namespace) -> int:
    from forwarder.observe.metrics import Observing

    config = _load(args)
    stop = threading.Event()
    _Stopper(stop).install()
    observing = Observing(config)  # metrics.listen: the endpoint listens from here on
    try:
        pipeline, store, transport = build_pipeline(config, stop, args.once, observer=observing.observer)
    except BaseException:
        observing.close()
        raise
    out = config.output
    target = (
        out.path
        if out.protocol == "file"
        else out.protocol
        if out.protocol == "stdout"
        else (f"{out.protocol}://{out.host}:{out.port}")
    )
    log.info(
        "forwarding s3://%s/%s to %s (%s header%s)",
        config.source.bucket,
        config.source.prefix,
        target,
        out.header,
        f", {out.framing} framing" if out.protocol in ("tcp", "tls") else "",
    )
    started = time.monotonic()
    reload = threading.Event()
    signal.signal(signal.SIGHUP, lambda signum, frame: reload.set())
    try:
        if args.once:
            pipeline.run_pass()
        else:
            while True:
                pipeline.run_forever(reload)
                if not reload.is_set() or stop.is_set():
                    break
                reload.clear()
                pipeline, transport = _reloaded(args.config, stop, store, pipeline, transport)
    except Stopped:
        pass
    finally:
        transport.close()
        store.unlock()
        observing.close()
    stats = pipeline.stats
    log.info(
        "done: %d events from %d files in %.1fs%s%s%s%s",
        stats.events_sent,
        stats.files,
        time.monotonic() - started,
        f"; {stats.bad_records} bad records skipped (see warnings above)" if stats.bad_records else "",
        f"; {stats.repaired_records} sent with invalid UTF-8 replaced" if stats.repaired_records else "",
        f"; {dead} noted in {pipeline.dead_letter.path}" if (dead := pipeline.dead_letter.written) else "",
        f"; over output.max_message_bytes: {oversize}" if (oversize := stats.oversize_text()) else "",
    )
    return EXIT_OK


def _reloaded(
    path: str, stop: threading.Event, store: CheckpointStore, pipeline: Pipeline, transport: Any
) -> tuple[Pipeline, Any]:
    """SIGHUP: read the config and credentials again; keep running on the old ones if it fails."""
    try:
        config = load_config(path)
        fresh, _, fresh_transport = build_pipeline(config, stop, False, store, pipeline.observer)
    except ForwarderError as exc:
        log.error("SIGHUP: the reloaded configuration was refused, keeping the running one: %s", exc)
        return pipeline, transport
    setup_logging(
        config.log.level,
        config.log.format,
        secrets=secret_values(config),
        repeat_window_secs=config.log.repeat_window_secs,
    )
    fresh.stats = pipeline.stats
    transport.close()
    log.info("SIGHUP: configuration and credentials reloaded from %s", path)
    return fresh, fresh_transport


def cmd_status(args: argparse.Namespace) -> int:
    from forwarder.commands.status import show_status

    config = _load(args)
    show_status(config, make_source(config), as_json=args.json)
    return EXIT_OK


def cmd_import_state(args: argparse.Namespace) -> int:
    from forwarder.commands.status import import_vendor_state

    config = _load(args)
    source = make_source(config)
    store = CheckpointStore(config.checkpoint.path, source.id)
    store.lock()
    try:
        import_vendor_state(store, source, Path(args.storage_file), force=args.force)
    finally:
        store.unlock()
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from forwarder.commands.check import run_checks

    config = _load(args)
    return EXIT_OK if run_checks(config, args.config) else EXIT_INCOMPLETE


def cmd_demo(args: argparse.Namespace) -> int:
    from forwarder.commands.demo import run_demo

    setup_logging(args.log_level or "info", args.log_format or "text")
    return run_demo(files=args.files, events=args.events)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``forwarder`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_CONFIG
    handler = {
        "run": cmd_run,
        "check": cmd_check,
        "status": cmd_status,
        "import-state": cmd_import_state,
        "demo": cmd_demo,
    }[args.command]
    try:
        return handler(args)
    except ForwarderError as exc:
        if logging.getLogger().handlers:
            log.error("%s", exc)
        else:  # failed before the log was set up (bad config): a plain line
            print(f"forwarder: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
