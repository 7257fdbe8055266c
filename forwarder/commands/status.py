"""``forwarder status``: what a person asks after an incident, per pipeline.

Where delivery stands (object, record), how many objects wait, the gaps seen, the
quarantined objects, the object it is stuck on, the dead-letter file and the last error —
as text, or as JSON with ``--json``. It reads the checkpoints; it writes nothing. In a
fleet (``coordination.kind: s3``) it reads them from S3, and shows which forwarder holds
each pipeline and how fresh its lease is, and the forwarders seen.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import IO, Any

from forwarder.commands.common import EXIT_OK, checkpoint_to_read, chosen, load
from forwarder.compose import build_fleet_view, build_source
from forwarder.config import PipelineConfig
from forwarder.config.checks import state_files
from forwarder.coordination.view import FleetView
from forwarder.core.deadletter import summary
from forwarder.errors import ForwarderError
from forwarder.sources.base import Source


def gather_status(config: PipelineConfig, source: Source, fleet: FleetView | None = None) -> dict[str, Any]:
    """Everything ``status`` shows of one pipeline, as plain data (*fleet*: its state in S3)."""
    files = state_files(config)
    store = checkpoint_to_read(config, source.id, fleet)
    position = store.load()
    result: dict[str, Any] = {
        "pipeline": config.name,
        "source": source.id,
        "kind": config.source.kind,
        "discovery": getattr(config.source, "discovery", ""),
        "checkpoint": store.where,
        "position": None,
        "pending_files": None,
        "gaps": store.gaps,
        "quarantined": store.quarantined,
        "stuck_on": asdict(store.failure) if store.failure else None,
        "last_error": store.last_error,
    }
    if fleet is not None:
        holder = fleet.holder(config.name)
        result["owner"] = (
            None if holder is None else {**asdict(holder), "text": holder.text(fleet.settings.lease_secs)}
        )
        result["dead_letters"] = fleet.dead_letters(config.name)
    else:
        letters = files["parser.dead_letter_path"]
        try:
            count, last = summary(letters)
            result["dead_letters"] = {"path": str(letters), "records": count, "last": last}
        except OSError as exc:
            result["dead_letters"] = {
                "path": str(letters),
                "records": None,
                "last": None,
                "error": exc.strerror,
            }
    if position is not None:
        result["position"] = {
            **position.cursor,
            "records_delivered": position.records,
            "complete": bool(position.cursor.get("complete")),
            "text": source.describe(position.cursor, position.records),
        }
    try:
        backlog = source.backlog(position.cursor if position else None)
        if backlog is None:
            result["pending_files"] = (
                "unknown (discovery: probe does not list the bucket)"
                if result["discovery"] == "probe"
                else "unknown (only reading the API tells, and reading spends its call budget)"
            )
        else:
            result["pending_files"], result["pending_range"] = backlog
    except ForwarderError as exc:
        result["pending_files"] = f"unknown: {exc}"
    return result


def _gap(entry: dict[str, Any]) -> str:
    """A gap as the checkpoint keeps it, in words (version 1 checkpoints have no text)."""
    return str(entry.get("text") or f"files {entry.get('first')}-{entry.get('last')}")


def _text(config: PipelineConfig, status: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines of one pipeline's status, as (name, value)."""
    discovery = f" (discovery: {status['discovery']})" if status["discovery"] else ""
    lines = [("source", f"{status['source']}{discovery}"), ("checkpoint", status["checkpoint"])]
    if "owner" in status:
        owner = status["owner"]
        lines.append(("owner", owner["text"] if owner else "none: no forwarder holds it (free to take)"))
    position = status["position"]
    if position is None:
        start = getattr(config.source, "start", "")
        lines.append(("position", f"nothing delivered yet (will start at source.start: {start})"))
    else:
        lines.append(("position", position["text"]))
    pending = status["pending_files"]
    if isinstance(pending, int) and pending:
        pending = f"{pending} files ({status['pending_range']})"
    lines.append(("pending", str(pending)))
    gaps = status["gaps"]
    lines.append(
        ("gaps", f"{len(gaps)}" + "".join(f"\n    {_gap(g)} missing (seen {g['at']})" for g in gaps))
    )
    quarantined = status["quarantined"]
    lines.append(("quarantined", f"{len(quarantined)}" + "".join(
        f"\n    {q['key']}: {q['reason']} ({q['at']})" for q in quarantined)))  # fmt: skip
    stuck = status["stuck_on"]
    if stuck:
        lines.append(("stuck on", f"{stuck['key']}: {stuck['attempts']} failed attempts since "
                      f"{stuck['since']}: {stuck['reason']}"))  # fmt: skip
    letters = status["dead_letters"]
    text = f"{letters['records']} records in {letters['path']}"
    if "owner" in status:  # in a fleet: objects under an S3 prefix
        text = f"{letters['records']} records in objects under {letters['path']}"
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
    return lines


def show_status(
    pipelines: Sequence[PipelineConfig],
    as_json: bool = False,
    out: IO[str] | None = None,
    fleet: FleetView | None = None,
) -> None:
    """Print the status of *pipelines* to *out* (stdout): as text, or as JSON (one object for
    one pipeline, else ``{"pipelines": [...]}``; in a *fleet*, with ``"fleet"``)."""
    out = out or sys.stdout
    statuses = [gather_status(config, build_source(config), fleet) for config in pipelines]
    members = fleet.members() if fleet is not None else []
    if as_json:
        shown: Any = statuses[0] if len(statuses) == 1 else {"pipelines": statuses}
        if fleet is not None:
            shown = {**shown, "fleet": {"at": fleet.objects.url(), "forwarders": [m for m, _ in members]}}
        print(json.dumps(shown, indent=2), file=out)
        return
    if fleet is not None:
        names = ", ".join(f"{m} (heartbeat {age:.0f}s ago)" for m, age in members) or "none running"
        print(f"{'fleet:':<14}{fleet.objects.url()}: {len(members)} forwarders: {names}\n", file=out)
    for i, (config, status) in enumerate(zip(pipelines, statuses, strict=True)):
        if len(statuses) > 1:
            print(f"{'' if i == 0 else chr(10)}pipeline {config.name}", file=out)
        for name, value in _text(config, status):
            print(f"{name + ':':<14}{value}", file=out)


def cmd_status(args: argparse.Namespace) -> int:
    config = load(args)
    show_status(chosen(config, args), as_json=args.json, fleet=build_fleet_view(config))
    return EXIT_OK
