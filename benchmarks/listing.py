"""What a poll of ``kind: events_integration`` (discovery: list) costs, and what its ledger costs.

    python3 benchmarks/listing.py [--objects 100000] [--repeat 3]

1. A moto S3 server in a child process holds --objects objects under ``cato/``, one a
   minute over the last ~70 days (what one integration writes at its slowest), laid out two
   ways: UUID keys straight under the prefix (``flat``), and the same under hour folders
   ``cato/YYYY/MM/DD/HH/`` (``dated``). The child fills moto's backend directly (100,000
   PUTs over HTTP would take minutes) and then serves it over HTTP like any moto server.
2. For each layout, the source's own poll (``ListingSource.pending``, caught up: its ledger
   holds the last hour's objects, ``lookback_secs``' default) is timed: with
   ``partitions: none`` (every object listed, every poll) and ``partitions: auto`` (dated
   folders before the window skipped). Reported: ListObjectsV2 requests, seconds, the CPU
   seconds of the polling thread (botocore's XML parsing and the ledger checks; moto's own
   work is in the other process) and the objects listed.
3. The ledger: checkpoint size and the time of one checkpoint save (JSON, fsync, rename)
   for ledgers of 60 / 3,600 / 86,400 objects (an hour at one object a minute; an hour and a
   day at one a second), and the time of ``after()`` (an object done: the ledger copied and
   pruned).

Figures are the median of --repeat runs; the machine's load is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from forwarder.config import parse_config  # noqa: E402
from forwarder.core.checkpoint import CheckpointStore, Position  # noqa: E402
from forwarder.sources.base import LogObject  # noqa: E402
from forwarder.sources.integration import Stored  # noqa: E402
from forwarder.sources.ledger import Ledger  # noqa: E402
from forwarder.sources.polling import ListingSource  # noqa: E402
from forwarder.sources.s3 import Bucket  # noqa: E402
from forwarder.sources.s3client import make_s3_client  # noqa: E402

BUCKET = "cato-events"
NOW = 1_764_313_200  # the newest object's time
DAY, HOUR = 86_400, 3_600
ETAG = "9dd4e461268c8034f5c8564e155c67a6"  # every object holds b"x": its MD5


def key_of(layout: str, n: int, moment: int) -> str:
    name = f"{uuid.UUID(int=n * 2654435761 % (1 << 128))}.gz"
    if layout == "flat":
        return f"{layout}/cato/{name}"
    return f"{layout}/cato/{time.strftime('%Y/%m/%d/%H', time.gmtime(moment))}/{name}"


def serve(objects: int) -> None:
    """The child: a moto server filled with both layouts; prints its port, serves until stdin closes."""
    import logging

    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    backend = s3_backends["123456789012"]["global"]
    for layout in ("flat", "dated"):  # a bucket each: moto's listing work grows with the bucket
        backend.create_bucket(f"{BUCKET}-{layout}", "us-east-1")
        for n in range(objects):
            moment = NOW - (objects - 1 - n) * 60
            key = backend.put_object(
                f"{BUCKET}-{layout}", key_of(layout, n, moment), b"x", disable_notification=True
            )
            key.last_modified = datetime.fromtimestamp(moment, timezone.utc)
    print(json.dumps({"port": server.get_host_and_port()[1]}), flush=True)
    sys.stdin.read()
    server.stop()


def source(endpoint: str, layout: str, partitions: str) -> ListingSource:
    settings = (
        parse_config(
            f"source:\n  kind: events_integration\n  bucket: {BUCKET}-{layout}\n  prefix: {layout}/cato/\n"
            f"  endpoint_url: {endpoint}\n  access_key_id: testing\n  secret_access_key: testing\n"
            f"  partitions: {partitions}\n  full_listing_secs: 1000000\n",
            env={},
        )
        .pipeline()
        .source
    )
    found = ListingSource(Bucket(make_s3_client(settings), settings), settings)
    return found


def hour_ledger(layout: str, objects: int) -> dict[str, Any]:
    """The cursor of a forwarder that is caught up: the last hour's objects done
    (source.lookback_secs' default)."""
    done = {}
    for n in range(objects):
        moment = NOW - (objects - 1 - n) * 60
        if moment >= NOW - HOUR:
            done[key_of(layout, n, moment).split("/cato/", 1)[1]] = f"{moment} {ETAG}"
    return {"ledger": {"since": NOW - HOUR, "newest": NOW, "done": done}}


def timed_poll(found: ListingSource, cursor: dict[str, Any], full: bool) -> tuple[float, float, int, int]:
    """(seconds, CPU seconds of this thread, requests, objects pending) of one poll."""
    found._full_at = -1e18 if full else time.monotonic()  # noqa: SLF001 - the benchmark picks the kind of poll
    found.walker.requests = 0
    start, cpu = time.perf_counter(), time.thread_time()
    pending = list(found.pending(cursor))
    return time.perf_counter() - start, time.thread_time() - cpu, found.walker.requests, len(pending)


def polls(endpoint: str, objects: int, repeat: int) -> list[str]:
    rows = [
        "| layout | poll | requests | seconds | CPU s (poller) | objects pending |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for layout in ("flat", "dated"):
        cursor = hour_ledger(layout, objects)
        for partitions, full, what in (
            ("none", True, "every object"),
            ("auto", False, "dated folders skipped"),
        ):
            found = source(endpoint, layout, partitions)
            runs = [timed_poll(found, cursor, full) for _ in range(repeat)]
            seconds = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rows.append(f"| {layout} | {what} | {runs[0][2]} | {seconds:.2f} | {cpu:.2f} | {runs[0][3]} |")
    return rows


def ledger_costs(repeat: int) -> list[str]:
    rows = [
        "| objects in the ledger | checkpoint bytes | save (fsync) ms | after() ms |",
        "|---:|---:|---:|---:|",
    ]
    settings = parse_config("source: {kind: events_integration, bucket: b}\n", env={}).pipeline().source
    found = ListingSource(Bucket(None, settings), settings)
    for count, every in ((60, 60), (3_600, 1), (86_400, 1)):
        first = NOW - count * every
        done = {
            f"2025/11/28/07/{uuid.UUID(int=n)}.gz": f"{first + (n + 1) * every} {ETAG}" for n in range(count)
        }
        cursor = {"ledger": {"since": first, "newest": NOW, "done": done}}
        with tempfile.TemporaryDirectory() as folder:
            store = CheckpointStore(Path(folder) / "checkpoint.json", "s3://b/")
            saves = []
            for _ in range(repeat):
                start = time.perf_counter()
                store.save(Position(cursor, 1000))
                saves.append(time.perf_counter() - start)
            size = (Path(folder) / "checkpoint.json").stat().st_size
        obj = LogObject("newest.gz", 1, NOW + 1, Stored("e" * 32))
        afters = []
        for _ in range(repeat):
            start = time.perf_counter()
            found.after(obj, cursor)
            afters.append(time.perf_counter() - start)
        save, after = statistics.median(saves) * 1000, statistics.median(afters) * 1000
        rows.append(f"| {count:,} | {size:,} | {save:.1f} | {after:.1f} |")
    assert Ledger.of(cursor)  # the ledger measured is one the source reads back
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=100_000, help="objects per layout (100000)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each measurement; the median counts (3)"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.objects)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    port = json.loads(child.stdout.readline())["port"]
    print(f"moto filled with 2 x {args.objects:,} objects in {time.monotonic() - started:.0f}s", flush=True)
    try:
        rows = polls(f"http://127.0.0.1:{port}", args.objects, args.repeat)
    finally:
        child.stdin.close()
        child.wait(30)
    load = os.getloadavg()
    print(f"\nload average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores")
    print("\n".join(["", *rows, "", *ledger_costs(args.repeat)]))


if __name__ == "__main__":
    main()
