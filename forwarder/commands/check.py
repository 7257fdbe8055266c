"""``forwarder check``: validate the config and reach every part of every pipeline, one line each.

In a fleet (``coordination.kind: s3``) it also reaches the fleet's bucket — writing and
removing one probe object to prove that the store enforces conditional writes — and reads
each pipeline's checkpoint and dead letters there.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import yaml

from forwarder.commands.common import EXIT_INCOMPLETE, EXIT_OK, checkpoint_to_read, chosen, load
from forwarder.compose import build_fleet_view, build_source, build_transport
from forwarder.config import Config, PipelineConfig, redacted, secret_values
from forwarder.config.checks import state_files
from forwarder.coordination.objects import verify_conditions
from forwarder.coordination.view import FleetView
from forwarder.core.checkpoint import Checkpoint, CheckpointStore, Position
from forwarder.core.deadletter import summary
from forwarder.errors import ForwarderError
from forwarder.observe.logs import mask
from forwarder.sources.base import Source


def _dead_letters(path: Path) -> tuple[bool, str]:
    """(writable, what is there) for the dead-letter file, created on first use with its
    directories: so the file, else the nearest directory that exists, must be writable."""
    if path.is_dir():
        return False, f"{path} is a directory (parser.dead_letter_path names the file to append to)"
    if path.exists():
        if not os.access(path, os.W_OK):
            return False, f"{path} is not writable (records that cannot be sent would stop the forwarder)"
        try:
            count, _ = summary(path)
        except OSError as exc:
            return False, f"{path} cannot be read ({exc.strerror})"
        return True, f"{path}: {count} records set aside so far (each line says why)"
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not directory.is_dir():
        return False, f"{path}: {directory} is not a directory"
    if not os.access(directory, os.W_OK):
        return (
            False,
            f"{path}: {directory} is not writable (records that cannot be sent would stop the forwarder)",
        )
    return True, f"{path}: none yet"


def _checkpoint(
    store: Checkpoint, source: Source, start: object, position: Position | None
) -> tuple[bool, str]:
    if isinstance(store, CheckpointStore):
        directory = store.path.parent
        if directory.exists() and not os.access(directory, os.W_OK):
            return False, f"{directory} is not writable"
    if position is None:
        return True, f"{store.where}: none yet; will start at {start}"
    return True, f"{store.where}: at {source.describe(position.cursor, position.records)}"


def _fleet_letters(fleet: FleetView, name: str) -> tuple[bool, str]:
    letters = fleet.dead_letters(name)
    if letters.get("error"):
        return False, f"{letters['path']}: {letters['error']}"
    return True, f"{letters['path']}: {letters['records']} records set aside so far"


def check_pipeline(
    config: PipelineConfig,
    report: Callable[[bool, str, str], None],
    prefix: str = "",
    fleet: FleetView | None = None,
) -> None:
    """One line per part of pipeline *config*: source, checkpoint, dead letters, collector
    (in a *fleet*: read from S3)."""
    source = build_source(config)
    store = checkpoint_to_read(config, source.id, fleet)
    try:
        position, error = store.load(), None
    except ForwarderError as exc:
        position, error = None, exc  # the checkpoint line says why
    passed, detail = source.check(position.cursor if position else None)
    report(passed, prefix + ("bucket" if hasattr(config.source, "bucket") else "api"), detail)
    if error is not None:  # unreadable: the line says why
        passed, detail = False, str(error)
    else:
        passed, detail = _checkpoint(store, source, getattr(config.source, "start", ""), position)
    report(passed, f"{prefix}checkpoint", detail)
    if fleet is None:
        passed, detail = _dead_letters(state_files(config)["parser.dead_letter_path"])
    else:
        passed, detail = _fleet_letters(fleet, config.name)
    report(passed, f"{prefix}dead letters", detail)
    o = config.output
    try:
        transport = build_transport(config)
        try:
            transport.probe()
            note = " (UDP is connectionless: reachability cannot be confirmed)" if o.protocol == "udp" else ""
            report(True, f"{prefix}collector", f"{transport.label} accepts connections{note}")
        finally:
            transport.close()
    except ForwarderError as exc:
        report(False, f"{prefix}collector", str(exc))


def run_checks(config: Config, config_path: str, out: IO[str] | None = None) -> bool:
    """Print a line per check, then the effective config, to *out* (stdout); True when all passed.

    No secret value is printed: the config's secrets show as ``***``, and every line is
    masked as the log is (an error message could quote a value).
    """
    out = out or sys.stdout
    ok = True
    secrets = secret_values(config)

    def report(passed: bool, what: str, detail: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(mask(f"{'ok  ' if passed else 'FAIL'} {what}: {detail}", secrets), file=out)

    names = ", ".join(p.name for p in config.pipelines)
    if len(config.pipelines) == 1:
        o = config.pipelines[0].output
        target = (
            o.path if o.protocol == "file" else o.protocol if o.protocol == "stdout" else f"{o.host}:{o.port}"
        )
        report(True, "config", f"{config_path} is valid ({o.protocol} to {target}, header {o.header})")
    else:
        report(True, "config", f"{config_path} is valid ({len(config.pipelines)} pipelines: {names})")
    fleet = build_fleet_view(config)
    if fleet is not None:
        try:
            verify_conditions(fleet.objects, f"check-{os.getpid()}")
            members = ", ".join(name for name, _ in fleet.members()) or "none"
            detail = f"{fleet.objects.url()}: conditional writes enforced; forwarders running: {members}"
            report(True, "coordination", detail)
        except ForwarderError as exc:
            report(False, "coordination", str(exc))
    for pipeline in config.pipelines:
        check_pipeline(pipeline, report, "" if len(config.pipelines) == 1 else f"{pipeline.name} ", fleet)
    shown = yaml.safe_dump(redacted(config), sort_keys=False, allow_unicode=True)
    print("\neffective config (defaults filled in, secrets masked):", file=out)
    print(mask(shown, secrets), end="", file=out)
    return ok


def cmd_check(args: argparse.Namespace) -> int:
    config = load(args)
    config = dataclasses.replace(config, pipelines=chosen(config, args))
    return EXIT_OK if run_checks(config, args.config) else EXIT_INCOMPLETE
