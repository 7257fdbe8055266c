"""Benchmark: Cato's Events Integration objects (gzip NDJSON) forwarded, beside the Log Exporter's.

    python3 benchmarks/push.py [--events 1000000] [--objects 70] [--repeat 3]

In one run, on 127.0.0.1, against one moto S3 server and one TCP sink (benchmarks/sink.py):
1. makes (once; cached under benchmarks/out/data/) N events as the Events Integration writes
   them (``events.push_lines``: typed JSON, ~730 bytes) in gzip objects of ~14,000 events
   (what Cato's 9.5 MB threshold gives), and the Log Exporter's CEF zips of the same count
   (``data.build``, as benchmarks/run.py makes them);
2. runs, alternately, *repeat* times each: the all-C baseline (``baseline.sh`` with GZ_OBJECTS=1:
   curl each object, ``gzip -dc`` into the socket), ``forwarder run --once`` with
   ``kind: events_integration`` and ``output.encoding: passthrough``, the same with
   ``encoding: cef``, and the log exporter's passthrough of its zips (the README's figure);
3. checks that the sink received exactly the bytes each had to send (for CEF, what the
   forwarder's own encoder makes of every event, worked out beforehand) and reports the
   median run: seconds, events/s, CPU seconds, peak RSS, and the ratio to the baseline.

The forwarder runs with its defaults (TCP, RFC 5424 header with the event's time, octet
counting), ``batch.max_events: 5000``, a fresh checkpoint each run.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import data as datasets  # noqa: E402
import run  # noqa: E402  (benchmarks/run.py: the sink, timing under GNU time, the byte count)
from events import push_lines  # noqa: E402

from forwarder.config import parse_config  # noqa: E402
from forwarder.formats.encoder import EventEncoder  # noqa: E402
from forwarder.formats.records import Record  # noqa: E402
from tests.support.s3 import S3Server  # noqa: E402

BUCKET = run.BUCKET


def build_push(folder: Path, events: int, objects: int) -> dict[str, Any]:
    """The gzip NDJSON objects in *folder* (reused when its manifest exists)."""
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        return dict(json.loads(manifest_path.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-events // objects)
    lengths: Counter[int] = Counter()
    names = []
    for n in range(objects):
        lines = [line.encode() for line in push_lines(n * per, min(per, events - n * per))]
        if not lines:
            break
        lengths.update(len(line) - 1 for line in lines)
        name = f"{n:04d}-{os.urandom(4).hex()}.gz"  # keys that do not sort by time
        (folder / name).write_bytes(gzip.compress(b"".join(lines), compresslevel=6))
        names.append(name)
    manifest = {
        "events": sum(lengths.values()),
        "text_bytes": sum((length + 1) * count for length, count in lengths.items()),
        "files": names,
        "lengths": {str(k): v for k, v in sorted(lengths.items())},
        "gz_bytes": sum((folder / name).stat().st_size for name in names),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def cef_bytes(folder: Path, manifest: dict[str, Any]) -> int:
    """What the forwarder must send with encoding: cef (octet counting), from its own encoder."""
    output = f"output: {{hostname: {run.HOSTNAME}, encoding: cef}}\n"
    text = "source: {kind: events_integration, bucket: b}\n" + output
    config = parse_config(text, env={}).pipeline()
    encoder = EventEncoder(config.output, config.parser)
    total = 0
    for name in manifest["files"]:
        lines = gzip.decompress((folder / name).read_bytes()).splitlines()
        for first in range(0, len(lines), 5000):
            batch = [Record(i, "", i + 1, text, "json") for i, text in enumerate(lines[first : first + 5000])]
            total += sum(len(str(len(m))) + 1 + len(m) for m in encoder.encode(batch).messages)
    return total


def config_text(s3: S3Server, sink: run.Sink, prefix: str, work: Path, kind: str, encoding: str) -> Path:
    source = f"  kind: {kind}\n" if kind != "log_exporter" else ""
    text = (
        f"source:\n{source}  bucket: {BUCKET}\n  prefix: {prefix}\n  endpoint_url: {s3.endpoint_url}\n"
        f"  access_key_id: testing\n  secret_access_key: testing\n  download_dir: {work}\n"
        f"output:\n  protocol: tcp\n  port: {sink.port}\n  hostname: {run.HOSTNAME}\n  encoding: {encoding}\n"
        f"checkpoint:\n  path: {work}/checkpoint.json\nbatch:\n  max_events: 5000\nlog:\n  format: json\n"
    )
    path = work / f"{kind}-{encoding}.yaml"
    path.write_text(text)
    return path


def forward(
    s3: S3Server,
    sink: run.Sink,
    prefix: str,
    work: Path,
    kind: str,
    encoding: str,
    want: int,
    events: int,
    text: int,
) -> run.Run:  # noqa: E501
    for stale in ("checkpoint.json", "checkpoint.json.lock"):
        (work / stale).unlink(missing_ok=True)
    config = config_text(s3, sink, prefix, work, kind, encoding)
    argv = [sys.executable, "-m", "forwarder", "run", "--config", str(config), "--once"]
    log = work / f"{kind}-{encoding}.log"
    load = run.load_average()
    start, end, cpu, rss, pss = run.timed(argv, {**os.environ, "PYTHONPATH": str(HERE.parent)}, log, 600)
    report = sink.report()
    if report["bytes"] != want:
        raise RuntimeError(f"{kind} {encoding} delivered {report['bytes']} bytes, expected {want}; see {log}")
    label = f"{'events_integration' if kind != 'log_exporter' else 'log_exporter'} {encoding}"
    seconds = max(end, report["eof_at"]) - start
    return run.Run(prefix, label, events, text, seconds, cpu, rss / run.MB, pss / run.MB, want, load)


def baseline(
    s3: S3Server, sink: run.Sink, prefix: str, work: Path, events: int, text: int, gz: bool
) -> run.Run:
    env = {**os.environ, **s3.env(), "GZ_OBJECTS": "1" if gz else "", "ZIP_PASSWORD": ""}
    argv = ["bash", str(HERE / "baseline.sh"), s3.endpoint_url, BUCKET, prefix, str(sink.port), str(work)]
    load = run.load_average()
    start, end, cpu, rss, pss = run.timed(argv, env, work / "baseline.log", 600)
    report = sink.report()
    if report["bytes"] != text:
        raise RuntimeError(f"the baseline delivered {report['bytes']} bytes, expected {text}")
    name = "curl + gzip -dc" if gz else "curl + unzip -p"
    seconds = max(end, report["eof_at"]) - start
    return run.Run(prefix, name, events, text, seconds, cpu, rss / run.MB, pss / run.MB, text, load)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events of each set (1M)")
    parser.add_argument("--objects", type=int, default=70, help="gzip objects they are spread over (70)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each pipeline; the median counts (3)")
    args = parser.parse_args()
    if (
        not all(shutil.which(tool) for tool in ("zip", "unzip", "curl", "gzip"))
        or not Path("/usr/bin/time").exists()
    ):
        subprocess.run(["apt-get", "install", "-y", "-q", "zip", "unzip", "curl", "gzip", "time"], check=True)
    started = time.monotonic()
    push_dir = run.OUT / "data" / f"push-{args.events}-objects-{args.objects}"
    push = build_push(push_dir, args.events, args.objects)
    zips = datasets.build(run.OUT / "data" / f"events-{args.events}-files-100", args.events, 100)
    cef_want = cef_bytes(push_dir, push)
    print(
        f"data ready in {time.monotonic() - started:.0f}s ({push['gz_bytes'] / 1e6:.0f} MB of gzip)",
        flush=True,
    )
    lengths = datasets.DataSet(push_dir, {**push, "files": push["files"]})
    pass_want = run.expected_bytes(lengths, "rfc5424", "octet_counting")
    sink = run.Sink()
    rows: dict[str, list[run.Run]] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(sink.stop)
        s3 = stack.enter_context(S3Server(log_file=run.OUT / "moto-push.log"))
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        for name in push["files"]:
            client.upload_file(str(push_dir / name), BUCKET, f"push/{name}")
        run.upload(s3, zips, ["plain"], "exporter")
        work = Path(tempfile.mkdtemp(prefix="bench-push-", dir=run.OUT))
        text, count = push["text_bytes"], push["events"]
        for _ in range(args.repeat):
            for result in (
                baseline(s3, sink, "push/", work, count, text, gz=True),
                forward(s3, sink, "push/", work, "events_integration", "passthrough", pass_want, count, text),
                forward(s3, sink, "push/", work, "events_integration", "cef", cef_want, count, text),
                forward(s3, sink, "exporter/plain/", work, "log_exporter", "passthrough",
                        run.expected_bytes(zips, "rfc5424", "octet_counting"), zips.events, zips.text_bytes),
            ):  # fmt: skip
                rows.setdefault(result.pipeline, []).append(result)
                print(f"  {result.pipeline}: {result.seconds:.2f}s", flush=True)
    base = statistics.median_low(r.seconds for r in rows["curl + gzip -dc"])
    lines = [
        f"machine: {run.machine()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"median of {args.repeat} runs; tcp, rfc5424 header (event time), octet counting, batch 5000",
        "",
        "| objects | events | pipeline | seconds | events/s | CPU s | peak RSS MB | to curl + gzip -dc |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in rows.items():
        median = run._median(runs)  # noqa: SLF001 - the same choice of run as run.py
        what = (
            "100 exporter zips (CEF)"
            if name.startswith("log_exporter")
            else f"{len(push['files'])} gzip NDJSON"
        )
        lines.append(
            f"| {what} | {median.events:,} | {name} | {median.seconds:.2f} | {median.events_per_sec:,.0f} | "
            f"{median.cpu_seconds:.2f} | {median.peak_rss_mb:.0f} | {median.seconds / base:.2f} |"
        )
    print("\n" + "\n".join(lines))
    (run.OUT / "push-results.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
