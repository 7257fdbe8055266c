"""Encoding conversion speed on one core: Cato JSON events rendered as CEF or LEEF (and CEF as
JSON) by the forwarder's own encoder, with the RFC 5424 header, as ``run --once`` does.

    python3 benchmarks/encode.py [--events N]

Prints events/s per conversion (target: >= 150k events/s for JSON -> CEF or LEEF). The
events are the benchmark's Cato-like ones (benchmarks/events.py) and forwarder.samples'
JSON events; encoding runs in batches of 1000 in this one process (one core).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forwarder.config import parse_config  # noqa: E402
from forwarder.encoding import EventEncoder  # noqa: E402
from forwarder.records import Record  # noqa: E402
from forwarder.samples import cef_event, json_event  # noqa: E402

BATCH = 1000


def measure(kind: str, encoding: str, events: int) -> float:
    """Events per second for *events* records of *kind* rendered as *encoding*."""
    config = parse_config(f"source: {{bucket: b}}\noutput: {{protocol: tcp, encoding: {encoding}}}\n", env={})
    encoder = EventEncoder(config)
    make = json_event if kind == "json" else cef_event
    texts = [make(i).encode() for i in range(BATCH)]
    batch = [Record(i, "m", i + 1, t, kind, "") for i, t in enumerate(texts)]
    encoder.encode_batch(batch)  # warm caches the way a long run would
    started = time.perf_counter()
    for _ in range(events // BATCH):
        encoder.encode_batch(batch)
    return (events // BATCH) * BATCH / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    print(f"{'conversion':<24}{'events/s':>12}")
    for kind, encoding in (("json", "passthrough"), ("json", "cef"), ("json", "leef"), ("cef", "json"),
                           ("cef", "leef")):  # fmt: skip
        rate = measure(kind, encoding, args.events)
        print(f"{kind + ' -> ' + encoding:<24}{rate:>12,.0f}")


if __name__ == "__main__":
    main()
