"""Benchmark: ``source.kind: events_feed`` against the local Cato API stand-in, pages of 3,000.

    python3 benchmarks/api.py                        # 60,000 events per shape
    python3 benchmarks/api.py --events 150000 --encodings json cef

For each shape of event (``small``: a Connectivity event of 10 fields; ``typical``: a
firewall event of ~20 fields; ``large``: an XDR-like event with 4 KB of raw_data) the
same queue is read twice in the same run:

1. **baseline**: the least any eventsFeed client does: one keep-alive HTTPS connection,
   each page POSTed, gunzipped and parsed (orjson), its marker passed back, until a short
   page; nothing forwarded;
2. **forwarder**: ``forwarder run --once`` from a saved marker at the oldest event, every
   event normalised, encoded (``--encodings``) and sent over TCP to a sink that counts bytes.

It prints events/s of both and their ratio, and the calls the forwarder made: pages of
3,000 at the measured rate need ``rate / 3000 * 60`` calls a minute, against eventsFeed's
allowance of 100 a minute per account (300,000 events a minute: 5,000 events/s).
Everything runs on 127.0.0.1; the server's rate limit is lifted so that the figures are
the client's own.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT)]

import orjson  # noqa: E402
import yaml  # noqa: E402

from benchmarks.pipelines import Sink  # noqa: E402
from tests.support.cato_api import (  # noqa: E402
    DEFAULT_ACCOUNT,
    DEFAULT_API_KEY,
    EVENTS_FEED_QUERY,
    GRAPHQL_PATH,
    CatoApiServer,
    make_event,
)

PAGE = 3000
ALLOWANCE_PER_MIN = 100


def shape(name: str, n: int) -> dict[str, Any]:
    """Event *n* of a shape."""
    if name == "small":
        return {"event_type": "Connectivity", "event_sub_type": "ApiKey", "src_ip": "10.10.10.10",
                "action": "Succeeded", "event_count": 1, "event_id": f"e{n}",
                "event_message": "ApiKey login successfully"}  # fmt: skip
    if name == "large":
        return make_event(event_id=f"e{n}", event_type="XDR", raw_data="x" * 4096, src_port=n % 65536)
    return make_event(event_id=f"e{n}", src_port=n % 65536)


def baseline(api: CatoApiServer, marker: str) -> tuple[int, float, int]:
    """(events, seconds, calls) of the plain client loop from *marker*."""
    conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.client_context())
    headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip", "x-api-key": DEFAULT_API_KEY}
    events = calls = 0
    started = time.perf_counter()
    while True:
        variables = {"accountIDs": [DEFAULT_ACCOUNT], "marker": marker}
        body = json.dumps({"query": EVENTS_FEED_QUERY, "variables": variables})
        conn.request("POST", GRAPHQL_PATH, body, headers)
        answer = conn.getresponse()
        raw = answer.read()
        data = orjson.loads(gzip.decompress(raw) if answer.getheader("Content-Encoding") == "gzip" else raw)
        feed = data["data"]["eventsFeed"]
        calls += 1
        events += feed["fetchedCount"]
        if feed["fetchedCount"] < PAGE:
            break
        marker = feed["marker"]
    conn.close()
    return events, time.perf_counter() - started, calls


def forwarded(api: CatoApiServer, work: Path, marker: str, encoding: str, sink: Sink) -> tuple[float, int]:
    """(seconds, calls) of ``forwarder run --once`` from *marker*."""
    config = {
        "source": {"kind": "events_feed", "api_key": DEFAULT_API_KEY, "account_ids": [DEFAULT_ACCOUNT],
                   "endpoint": api.url, "ca_file": str(api.ca_file), "start": marker},
        "output": {"protocol": "tcp", "port": sink.port, "encoding": encoding},
        "checkpoint": {"path": str(work / "state" / "checkpoint.json")},
        "log": {"level": "warning"},
    }  # fmt: skip
    path = work / "f.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    calls = api.call_count(DEFAULT_ACCOUNT)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "forwarder", "run", "--config", str(path), "--once"], check=True,
                   cwd=ROOT)  # fmt: skip
    return time.perf_counter() - started, api.call_count(DEFAULT_ACCOUNT) - calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000, help="events per shape (default 60000)")
    parser.add_argument("--shapes", nargs="+", default=["small", "typical", "large"])
    parser.add_argument("--encodings", nargs="+", default=["passthrough", "cef"])
    args = parser.parse_args()
    rows = []
    with CatoApiServer(rate_limits={"eventsFeed": 1_000_000}) as api, tempfile.TemporaryDirectory() as tmp:
        sink = Sink()
        for name in args.shapes:
            account_events = [shape(name, n) for n in range(args.events)]
            before = api.mint_marker([DEFAULT_ACCOUNT], "now")
            api.add_events(DEFAULT_ACCOUNT, account_events)
            count, secs, calls = baseline(api, before)
            assert count == args.events, count
            for encoding in args.encodings:
                work = Path(tmp) / f"{name}-{encoding}"
                work.mkdir()
                fsecs, fcalls = forwarded(api, work, before, encoding, sink)
                rate = args.events / fsecs
                rows.append({
                    "shape": name, "encoding": encoding, "events": args.events,
                    "baseline_events_per_sec": round(args.events / secs),
                    "forwarder_events_per_sec": round(rate),
                    "ratio": round(rate / (args.events / secs), 2),
                    "calls": fcalls, "baseline_calls": calls,
                    "calls_per_min_at_that_rate": round(rate / PAGE * 60),
                    "allowance_per_min": ALLOWANCE_PER_MIN,
                })  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    print(f"eventsFeed's allowance ({ALLOWANCE_PER_MIN} calls/min x {PAGE}) caps one account at "
          f"{ALLOWANCE_PER_MIN * PAGE // 60} events/s")  # fmt: skip


if __name__ == "__main__":
    main()
