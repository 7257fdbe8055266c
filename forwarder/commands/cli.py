"""Command line: ``forwarder run|check|status|import-state|demo`` — parse, then dispatch.

Only ForwarderError (and its subclasses) is caught and printed as one line; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from forwarder import __version__
from forwarder.commands import check, demo, import_state, run, status
from forwarder.commands.common import EXIT_CONFIG, EXIT_INTERRUPTED
from forwarder.errors import ForwarderError

log = logging.getLogger("forwarder")

EPILOG = """\
exit codes:
  0    done (run --once: every available object read, every good event acknowledged)
  1    unexpected internal error (a bug: please report it with the traceback)
  2    bad command line or configuration (the message names the key)
  3    checkpoint problem: corrupt, not writable, or locked by another forwarder
  4    not everything was delivered or fetched (run --once), or check found a problem
  130  interrupted twice (Ctrl-C during shutdown)

examples:
  forwarder demo                                   see it work: local S3 + local collector
  forwarder demo --kind events_integration         the same for Cato's Events Integration objects
  forwarder check --config forwarder.yaml          validate config, reach every source and collector
  forwarder run --config forwarder.yaml --once     forward what is there now, then exit (cron)
  forwarder run --config forwarder.yaml            keep polling (systemd, container); SIGHUP
                                                   reloads the config: pipelines added, removed
                                                   or changed start, stop or restart
  forwarder run --config forwarder.yaml --pipeline acme
                                                   run one pipeline of a list
  forwarder status --config forwarder.yaml         position, pending files, gaps, quarantine
  forwarder import-state --config forwarder.yaml /path/to/storage-file
                                                   switch over from Cato's client script

The config file is YAML; config.example.yaml documents every option (source.kind
log_exporter, the default); config.events-integration.example.yaml the Events Integration's
source keys (kind events_integration), config.api.example.yaml the Cato API's (kinds
events_feed and audit_feed). ${VAR} and ${VAR:-default} in values are replaced from the
environment. One file may hold many pipelines (pipelines: with a defaults: block), one per
Cato account; several forwarders running one file share its pipelines, one owner each, with
coordination: {kind: s3, bucket: ...} (README "Running a fleet"): status then shows who
holds which.
"""

CONFIG_HELP = "the YAML config file (default: $FORWARDER_CONFIG)"
PIPELINE_HELP = "only this pipeline of the config's pipelines: list (default: all)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forwarder",
        description="Forward Cato Networks events (Log Exporter files or Events Integration objects in S3, "
        "or the GraphQL API's eventsFeed and auditFeed) to a syslog collector "
        "(QRadar, ArcSight, rsyslog, ...) over UDP, TCP, TLS or RELP: every event at least once, in order.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"forwarder {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, help_text: str, handler: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
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
        if name != "demo":
            sub.add_argument("--config", "-c", default=os.environ.get("FORWARDER_CONFIG"), help=CONFIG_HELP)
        return sub

    runner = add(
        "run",
        "Forward new objects from every pipeline's source to its collector; poll until stopped "
        "(SIGTERM/SIGINT finish the batches in flight, save the checkpoints and exit 0).",
        run.cmd_run,
    )
    runner.add_argument(
        "--once",
        action="store_true",
        help="forward everything available now, then exit (for cron); exit 4 if "
        "anything could not be fetched or delivered",
    )
    runner.add_argument("--pipeline", metavar="NAME", help=PIPELINE_HELP)
    checker = add(
        "check",
        "Validate the config, then reach every pipeline's source, collector, checkpoint and "
        "dead-letter file; one line per finding, nothing is sent.",
        check.cmd_check,
    )
    checker.add_argument("--pipeline", metavar="NAME", help=PIPELINE_HELP)
    shower = add(
        "status",
        "Show where forwarding stands, per pipeline: position, objects pending, gaps seen, "
        "quarantined objects, the object it is stuck on, the dead-letter file (records set "
        "aside, the last one) and the last error.",
        status.cmd_status,
    )
    shower.add_argument("--json", action="store_true", help="one JSON object, for machines")
    shower.add_argument("--pipeline", metavar="NAME", help=PIPELINE_HELP)
    importer = add(
        "import-state",
        "Start from the vendor client script's storage file (its last entry "
        "downloaded): the first file forwarded is the one after it. Refuses to overwrite an "
        "existing checkpoint unless --force.",
        import_state.cmd_import_state,
    )
    importer.add_argument("storage_file", metavar="STORAGE_FILE", help="the client script's storage file")
    importer.add_argument("--force", action="store_true", help="replace an existing checkpoint")
    importer.add_argument("--pipeline", metavar="NAME", help="the pipeline to seed (with several)")
    demo_parser = add(
        "demo",
        "Run the whole job on embedded defaults: a local S3 endpoint holding "
        "sample Cato files and a local syslog listener (needs: pip install 'forwarder[demo]').",
        demo.cmd_demo,
    )
    demo_parser.add_argument(
        "--kind",
        choices=("log_exporter", "events_integration"),
        default="log_exporter",
        help="the source to show: the Log Exporter's zips (default) or the Events Integration's gzip NDJSON",
    )
    demo_parser.add_argument("--files", type=int, default=4, help="sample files to generate (default 4)")
    demo_parser.add_argument("--events", type=int, default=6, help="events per member (default 6)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``forwarder`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_CONFIG
    try:
        code: int = args.handler(args)
        return code
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
