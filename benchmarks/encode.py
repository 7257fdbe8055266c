"""Encoding conversion speed on one core: Cato JSON events rendered as CEF or LEEF (and CEF as
JSON or LEEF) by the forwarder's own encoder, with the RFC 5424 header, as ``run --once`` does.

    python3 benchmarks/encode.py [--events N] [--tree ../other-checkout]

Prints events/s per conversion (target: >= 150k events/s for JSON -> CEF or LEEF). The
events are the benchmark's Cato-like ones (benchmarks/events.py): JSON events of ~660 bytes
and 24 fields, CEF events of ~450 bytes; 1000 different ones, encoded in batches of 1000
in this one process (one core). With ``--tree``, the encoder of another checkout (an older
commit, say) is measured on the same events in the same run, alternately with this one,
and the table adds its figures and the ratio between the two.
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

from events import cef_lines, json_lines  # noqa: E402

from forwarder.config import parse_config  # noqa: E402
from forwarder.formats.encoder import EventEncoder  # noqa: E402
from forwarder.formats.records import Record  # noqa: E402

BATCH = 1000
CONVERSIONS = (("json", "passthrough"), ("json", "cef"), ("json", "leef"), ("cef", "json"), ("cef", "leef"))


def measure(kind: str, encoding: str, events: int) -> float:
    """Events per second for *events* records of *kind* rendered as *encoding*."""
    config = parse_config(f"source: {{bucket: b}}\noutput: {{protocol: tcp, encoding: {encoding}}}\n", env={})
    encoder = EventEncoder(config)
    lines = json_lines if kind == "json" else cef_lines
    texts = [line.rstrip("\n").encode() for line in lines(0, BATCH)]
    batch = [Record(i, "m", i + 1, t, kind, "") for i, t in enumerate(texts)]
    encoder.encode_batch(batch)  # warm caches the way a long run would
    started = time.perf_counter()
    for _ in range(events // BATCH):
        encoder.encode_batch(batch)
    return (events // BATCH) * BATCH / (time.perf_counter() - started)


def measure_tree(tree: str, kind: str, encoding: str, events: int) -> float:
    """The same measurement of another checkout's forwarder, in a child process."""
    found = subprocess.run(
        [sys.executable, __file__, "--events", str(events), "--only", f"{kind}:{encoding}"],
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
    parser.add_argument("--only", help=argparse.SUPPRESS)  # KIND:ENCODING, for --tree's child
    args = parser.parse_args()
    if args.only:
        kind, encoding = args.only.split(":")
        print(json.dumps(measure(kind, encoding, args.events)))
        return
    header = f"{'conversion':<24}{'events/s':>12}"
    print(header + (f"{'--tree':>12}{'ratio':>8}" if args.tree else ""))
    for kind, encoding in CONVERSIONS:
        rate = measure(kind, encoding, args.events)
        row = f"{kind + ' -> ' + encoding:<24}{rate:>12,.0f}"
        if args.tree:
            other = measure_tree(args.tree, kind, encoding, args.events)
            row += f"{other:>12,.0f}{rate / other:>7.2f}x"
        print(row)


if __name__ == "__main__":
    main()
