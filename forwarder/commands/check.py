"""``forwarder check``: validate the config and reach every part, one line per finding."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import yaml

from forwarder.config import Config, redacted, secret_values
from forwarder.core.checkpoint import CheckpointStore
from forwarder.core.deadletter import dead_letter_path, summary
from forwarder.errors import CredentialsError, ForwarderError
from forwarder.observe.logs import mask
from forwarder.sources.probe import ProbeSource
from forwarder.transports.stream import make_transport


def _check_probe(source: ProbeSource, config: Config, report: Callable[[bool, str, str], None]) -> None:
    store = CheckpointStore(config.checkpoint.path, source.id)
    try:
        position = store.load()
    except ForwarderError:
        position = None  # the checkpoint line reports it
    start = config.source.start
    if position is not None:
        sequence = position.sequence + 1 if position.complete else position.sequence
    elif isinstance(start, int):
        sequence = start
    else:
        report(
            False,
            "bucket",
            f"{source.id}: listing is refused, and with discovery: probe source.start "
            "must be a sequence number (or use forwarder import-state)",
        )
        return
    try:
        found = source.stat(sequence)
    except ForwarderError as exc:
        report(False, "bucket", str(exc))
        return
    state = "is there" if found else "is not there (yet)"
    report(
        True,
        "bucket",
        f"{source.id}: listing is refused (fine with discovery: probe); {source.key_of(sequence)} {state}",
    )


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

    o = config.output
    target = (
        o.path if o.protocol == "file" else o.protocol if o.protocol == "stdout" else f"{o.host}:{o.port}"
    )
    report(True, "config", f"{config_path} is valid ({o.protocol} to {target}, header {o.header})")

    from forwarder.commands.cli import make_source

    source = make_source(config)
    try:
        objects = source.list_objects()
        if objects:
            span = f"{len(objects)} files, {objects[0].key} .. {objects[-1].key}"
        else:
            span = "no matching files yet (check source.prefix and source.key_pattern if that is unexpected)"
        report(True, "bucket", f"{source.id} is reachable: {span}")
    except CredentialsError as exc:
        if isinstance(source, ProbeSource):  # probing needs no listing: try the configured start
            _check_probe(source, config, report)
        else:
            report(False, "bucket", str(exc))
    except ForwarderError as exc:
        report(False, "bucket", str(exc))

    store = CheckpointStore(config.checkpoint.path, source.id)
    try:
        position = store.load()
        directory = store.path.parent
        writable = os.access(directory, os.W_OK) if directory.exists() else True
        if not writable:
            report(False, "checkpoint", f"{directory} is not writable")
        elif position is None:
            report(True, "checkpoint", f"{store.path}: none yet; will start at {config.source.start}")
        else:
            state = "complete" if position.complete else f"{position.records} records delivered"
            report(True, "checkpoint", f"{store.path}: at file {position.sequence} ({state})")
    except ForwarderError as exc:
        report(False, "checkpoint", str(exc))

    passed, detail = _dead_letters(dead_letter_path(config.parser.dead_letter_path, config.checkpoint.path))
    report(passed, "dead letters", detail)

    try:
        transport = make_transport(config.output)
        try:
            transport.probe()
            note = " (UDP is connectionless: reachability cannot be confirmed)" if o.protocol == "udp" else ""
            report(True, "collector", f"{transport.label} accepts connections{note}")
        finally:
            transport.close()
    except ForwarderError as exc:
        report(False, "collector", str(exc))
    shown = yaml.safe_dump(redacted(config), sort_keys=False, allow_unicode=True)
    print("\neffective config (defaults filled in, secrets masked):", file=out)
    print(mask(shown, secrets), end="", file=out)
    return ok
