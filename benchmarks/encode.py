"""Encoder speed on one core: pass-through of each data shape (the header from the event's
own time), and the conversions (Cato JSON events rendered as CEF or LEEF, CEF as JSON or
LEEF), by the forwarder's own encoder with the RFC 5424 header, as ``run --once`` does.

    python3 benchmarks/encode.py [--events N] [--tree ../other-checkout]

Prints events/s per case (target: >= 150k events/s for JSON -> CEF or LEEF). The events are
the benchmark's Cato-like ones (benchmarks/events.py): CEF events of ~450 bytes in each data
shape (``cef-local``: Cato's rt dates sharing seconds; ``cef-spread``: every event at a
different second; ``cef-utf8``: half of them non-ASCII; ``cef-epoch``: epoch ms rt, the
events measured before the shapes) and JSON events of ~660 bytes and 24 fields; 20,000
different ones, encoded in batches of 1000 in this one process (one core). With ``--tree``,
the encoder of another checkout (an older commit, say) is measured on the same events in
the same run, alternately with this one, and the table adds its figures and the ratio
between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# The checkout whose forwarder is measured: this one, or --tree's (run in a child process).
TREE = Path(os.environ.get("ENCODE_BENCH_TREE") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(TREE))

from events import cef_lines, shape_lines  # noqa: E402

from forwarder.config import parse_config  # noqa: E402
from forwarder.formats.encoder import EventEncoder  # noqa: E402
from forwarder.formats.records import Record  # noqa: E402

BATCH = 1000
DIFFERENT = 20_000  # different events per case: a second's cache would not hold them all
CASES = (
    ("cef-local", "passthrough"),
    ("cef-spread", "passthrough"),
    ("cef-utf8", "passthrough"),
    ("cef-epoch", "passthrough"),
    ("json", "passthrough"),
    ("json", "cef"),
    ("json", "leef"),
    ("cef-epoch", "json"),
    ("cef-epoch", "leef"),
)


def measure(shape: str, encoding: str, events: int) -> float:
    """Events per second for *events* records of *shape* rendered as *encoding*."""
    config = parse_config(
        f"source: {{bucket: b}}\noutput: {{protocol: tcp, encoding: {encoding}, hostname: bench-host}}\n",
        env={},
    ).pipeline()
    encoder = EventEncoder(config.output, config.parser)
    lines = cef_lines(0, DIFFERENT) if shape == "cef-epoch" else shape_lines(shape, 0, DIFFERENT)
    kind = "json" if shape == "json" else "cef"
    records = [Record(i, "m", i + 1, line.rstrip("\n").encode(), kind, "") for i, line in enumerate(lines)]
    batches = [records[at : at + BATCH] for at in range(0, DIFFERENT, BATCH)]
    encoder.encode(batches[0])  # warm what a long run would have warmed
    started = time.perf_counter()
    for round_ in range(events // BATCH):
        encoder.encode(batches[round_ % len(batches)])
    return (events // BATCH) * BATCH / (time.perf_counter() - started)


def measure_tree(tree: str, shape: str, encoding: str, events: int) -> float:
    """The same measurement of another checkout's forwarder, in a child process."""
    found = subprocess.run(
        [sys.executable, __file__, "--events", str(events), "--only", f"{shape}:{encoding}"],
        env={**os.environ, "ENCODE_BENCH_TREE": str(Path(tree).resolve())},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(found.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per conversion (default 200000)")
    parser.add_argument("--tree", help="also measure the forwarder of this checkout, on the same events")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # SHAPE:ENCODING, for --tree's child
    args = parser.parse_args()
    if args.only:
        shape, encoding = args.only.split(":")
        print(json.dumps(measure(shape, encoding, args.events)))
        return
    header = f"{'case':<28}{'events/s':>12}"
    print(header + (f"{'--tree':>12}{'ratio':>8}" if args.tree else ""))
    for shape, encoding in CASES:
        rate = measure(shape, encoding, args.events)
        row = f"{shape + ' -> ' + encoding:<28}{rate:>12,.0f}"
        if args.tree:
            other = measure_tree(args.tree, shape, encoding, args.events)
            row += f"{other:>12,.0f}{rate / other:>7.2f}x"
        print(row)


if __name__ == "__main__":
    main()
