"""``forwarder status`` and ``forwarder import-state``: read and seed the checkpoint.

status shows what a person asks after an incident: where delivery stands (file, record),
how many files wait, the gaps seen, the quarantined files, the file it is stuck on and the
last error — as text, or as one JSON object with ``--json``.

import-state starts from the storage file of Cato's client script, which holds two
numbers: the last entry (file sequence number) it downloaded and its attempts at the next
one. The first file forwarded is then the one after that entry: nothing is lost or sent
twice when switching over.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import IO, Any

from forwarder.config import Config
from forwarder.core.checkpoint import CheckpointStore, Position
from forwarder.core.deadletter import dead_letter_path, summary
from forwarder.errors import ConfigError, ForwarderError
from forwarder.sources.probe import ProbeSource
from forwarder.sources.s3 import S3Source


def gather_status(config: Config, source: S3Source) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data."""
    store = CheckpointStore(config.checkpoint.path, source.id)
    position = store.load()
    result: dict[str, Any] = {
        "source": source.id,
        "discovery": config.source.discovery,
        "checkpoint": str(store.path),
        "position": None,
        "pending_files": None,
        "gaps": store.gaps,
        "quarantined": store.quarantined,
        "stuck_on": store.failure.__dict__ if store.failure else None,
        "last_error": store.last_error,
    }
    letters = dead_letter_path(config.parser.dead_letter_path, config.checkpoint.path)
    try:
        count, last = summary(letters)
        result["dead_letters"] = {"path": str(letters), "records": count, "last": last}
    except OSError as exc:
        result["dead_letters"] = {"path": str(letters), "records": None, "last": None, "error": exc.strerror}
    if position is not None:
        result["position"] = {
            "sequence": position.sequence,
            "key": position.key,
            "records_delivered": position.records,
            "complete": position.complete,
        }
    expected = None if position is None else position.sequence + (1 if position.complete else 0)
    if isinstance(source, ProbeSource):
        result["pending_files"] = "unknown (discovery: probe does not list the bucket)"
    else:
        try:
            pending = [o.sequence for o in source.pending(expected)]
            result["pending_files"] = len(pending)
            if pending:
                result["pending_range"] = [pending[0], pending[-1]]
        except ForwarderError as exc:
            result["pending_files"] = f"unknown: {exc}"
    return result


def show_status(config: Config, source: S3Source, as_json: bool = False, out: IO[str] | None = None) -> None:
    """Print the status of *config*'s forwarder to *out* (stdout)."""
    out = out or sys.stdout
    status = gather_status(config, source)
    if as_json:
        print(json.dumps(status, indent=2), file=out)
        return
    lines = [("source", f"{status['source']} (discovery: {status['discovery']})"),
             ("checkpoint", status["checkpoint"])]  # fmt: skip
    position = status["position"]
    if position is None:
        lines.append(
            ("position", f"nothing delivered yet (will start at source.start: {config.source.start})")
        )
    else:
        state = "complete" if position["complete"] else f"{position['records_delivered']} records delivered"
        lines.append(
            ("position", f"file {position['sequence']} ({position['key'] or 'not seen yet'}): {state}")
        )
    pending = status["pending_files"]
    if isinstance(pending, int) and pending:
        first, last = status["pending_range"]
        pending = f"{pending} files ({first} .. {last})"
    lines.append(("pending", str(pending)))
    gaps = status["gaps"]
    lines.append(("gaps", f"{len(gaps)}" + "".join(
        f"\n    files {g['first']}-{g['last']} missing (seen {g['at']})" for g in gaps)))  # fmt: skip
    quarantined = status["quarantined"]
    lines.append(("quarantined", f"{len(quarantined)}" + "".join(
        f"\n    {q['key']}: {q['reason']} ({q['at']})" for q in quarantined)))  # fmt: skip
    stuck = status["stuck_on"]
    if stuck:
        lines.append(("stuck on", f"{stuck['key']}: {stuck['attempts']} failed attempts since "
                      f"{stuck['since']}: {stuck['reason']}"))  # fmt: skip
    letters = status["dead_letters"]
    text = f"{letters['records']} records in {letters['path']}"
    if letters.get("error"):
        text = f"{letters['path']} cannot be read ({letters['error']})"
    last = letters["last"]
    if last:
        line = f" line {last.get('line')}" if last.get("line") else ""
        what = f"{last.get('outcome')}, {last.get('reason')} ({last.get('at')})"
        text += f"\n    last: {last.get('object')}{line}: {what}"
    lines.append(("dead letters", text))
    error = status["last_error"]
    lines.append(("last error", f"{error['message']} ({error['at']})" if error else "none"))
    for name, value in lines:
        print(f"{name + ':':<14}{value}", file=out)


def read_vendor_state(path: Path) -> tuple[int, int]:
    """(last entry downloaded, attempts) from the client script's storage file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the storage file: {exc.strerror}") from None
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if not 1 <= len(numbers) <= 2:
        raise ConfigError(
            f"{path}: expected the client script's storage file (the last entry downloaded and the "
            f"number of attempts), got {text.strip()[:60]!r}"
        )
    return numbers[0], numbers[1] if len(numbers) > 1 else 0


def import_vendor_state(
    store: CheckpointStore, source: S3Source, path: Path, force: bool = False
) -> Position:
    """Write a checkpoint that makes the file after the storage file's last entry the next one."""
    last, attempts = read_vendor_state(path)
    existing = store.load()
    if existing is not None and not force:
        raise ConfigError(
            f"{store.path}: a checkpoint exists already (at file {existing.sequence}); "
            "add --force to replace it"
        )
    key = source.key_of(last) if isinstance(source, ProbeSource) else ""
    position = Position(last, key, 0, True)
    store.save(position)
    note = f"; it had made {attempts} attempts at file {last + 1}" if attempts else ""
    print(f"imported {path}: last file downloaded {last}{note}. The next file forwarded is {last + 1}.")
    return position
