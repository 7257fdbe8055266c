"""The fault-injection suite: each scenario attacks a forwarder working through a backlog and
ends by comparing what the collector received with what the bucket held.

Every scenario adds a row (scenario, faults injected, events, lost, duplicated) to the
report written at the end of the session to tests/faults/out/results.md (and .json);
``scripts/faults`` runs the suite and prints the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import background, certs, collector, s3, s3_server, s3proxy  # noqa: F401

OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class Row:
    """One line of the published table."""

    scenario: str
    faults: str
    events: int
    lost: int
    duplicated: int
    bound: str  # what the design promises for this scenario
    in_order: bool = True  # first arrivals in bucket order


class Report:
    """Collects the rows of the session."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def markdown(self) -> str:
        lines = [
            "| scenario | faults injected | events | lost | duplicated | in order | promised |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        lines += [
            f"| {r.scenario} | {r.faults} | {r.events} | {r.lost} | {r.duplicated} | "
            f"{'yes' if r.in_order else 'no'} | {r.bound} |"
            for r in self.rows
        ]
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    """The session's report; written to tests/faults/out/ when the session ends."""
    collected = Report()
    yield collected
    if collected.rows:
        OUT.mkdir(exist_ok=True)
        (OUT / "results.md").write_text(collected.markdown(), encoding="utf-8")
        (OUT / "results.json").write_text(
            json.dumps([asdict(r) for r in collected.rows], indent=1), encoding="utf-8"
        )


def compare(expected: list[bytes], received: list[bytes]) -> tuple[int, int, bool]:
    """(lost, duplicated, in order) of *received* against *expected* (all distinct events).

    In order: with repeats removed (first arrival kept), the events come in bucket order.
    """
    seen: set[bytes] = set()
    firsts = []
    for event in received:
        if event not in seen:
            seen.add(event)
            firsts.append(event)
    lost = len(set(expected) - seen)
    unexpected = seen - set(expected)
    assert not unexpected, f"{len(unexpected)} events arrived that the bucket never held"
    order = {event: i for i, event in enumerate(expected)}
    in_order = all(order[a] < order[b] for a, b in zip(firsts, firsts[1:], strict=False))
    return lost, len(received) - len(seen), in_order
