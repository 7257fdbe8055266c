"""Benchmark: many pipelines in one forwarder process (threads), idle and busy.

    python3 benchmarks/pipelines.py                      # 200 idle pipelines, then 1 vs 20 busy ones
    python3 benchmarks/pipelines.py --idle 200 --idle-secs 60 --busy 20 --events 20000

1. **Idle**: ``--idle`` pipelines, one prefix each in one moto bucket (one small file each, so
   every pipeline has listed, fetched and sent once), polling every ``poll_interval_secs``
   (30 s, the default) into one TCP sink. Once every file arrived and ``--settle`` seconds
   passed, the forwarder's RSS and the CPU seconds it uses per minute of idling are read
   from /proc over ``--idle-secs``.
2. **Busy**: ``--busy`` prefixes of ``--events`` events each (zips of 5,000 CEF events), forwarded
   by ``run --once`` with one pipeline per prefix, against one pipeline forwarding one prefix;
   events/s of all pipelines together beside the one pipeline's, the same run, the same sink.

Everything is on 127.0.0.1; the sink only counts bytes (benchmarks/sink.py's way).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT)]

import yaml  # noqa: E402

from forwarder.samples import cef_event, make_zip  # noqa: E402
from tests.support.s3 import S3Server  # noqa: E402

BUCKET = "cato-bench"
PER_FILE = 5000


class Sink:
    """A TCP listener that reads every connection at once (a thread each) and counts bytes."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.server.getsockname()[1]
        self.bytes = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.server.accept()
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while chunk := conn.recv(1 << 20):
                with self._lock:
                    self.bytes += len(chunk)


def config(path: Path, endpoint: str, port: int, names: list[str], **source: Any) -> Path:
    text = {
        "defaults": {
            "source": {"bucket": BUCKET, "prefix": "{pipeline}/", "endpoint_url": endpoint,
                       "access_key_id": "bench", "secret_access_key": "bench", **source},
            "output": {"protocol": "tcp", "port": port, "hostname": "{pipeline}"},
            "checkpoint": {"path": str(path.parent / "state" / "{pipeline}" / "checkpoint.json")},
            "batch": {"max_events": 5000},
        },
        "pipelines": [{"name": name} for name in names],
        "log": {"format": "json", "level": "warning", "progress_interval_secs": 0},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(text), encoding="utf-8")
    path.chmod(0o600)
    return path


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds used so far, RSS in bytes) of process *pid*."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def forwarder(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "forwarder", *args], cwd=ROOT, env=env, stderr=subprocess.PIPE
    )


def idle(s3: Any, work: Path, count: int, settle: float, secs: float, env: dict[str, str]) -> dict[str, Any]:
    client = s3.client()
    names = [f"t{i:03d}" for i in range(count)]
    body = make_zip([("events.log", (cef_event(1) + "\n").encode())])
    for name in names:
        client.put_object(Bucket=BUCKET, Key=f"{name}/CATO{1:020d}.zip", Body=body)
    sink = Sink()
    path = config(work / "idle.yaml", s3.endpoint_url, sink.port, names)
    started = time.monotonic()
    process = forwarder(["run", "--config", str(path)], env)
    expected = count * len(cef_event(1).encode())
    while sink.bytes < expected:
        if process.poll() is not None:
            raise SystemExit(f"the forwarder exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.1)
    first_round = time.monotonic() - started
    time.sleep(settle)
    cpu_before, _ = proc_stat(process.pid)
    time.sleep(secs)
    cpu_after, rss = proc_stat(process.pid)
    process.terminate()
    process.wait(60)
    return {
        "pipelines": count,
        "first_round_secs": round(first_round, 1),
        "rss_mb": round(rss / 1e6, 1),
        "cpu_secs_per_min": round((cpu_after - cpu_before) * 60 / secs, 2),
    }


def busy(s3: Any, work: Path, count: int, events: int, env: dict[str, str]) -> dict[str, Any]:
    client = s3.client()
    files = max(1, events // PER_FILE)
    bodies = []
    for f in range(files):
        lines = "".join(cef_event(f * PER_FILE + i) + "\n" for i in range(PER_FILE))
        bodies.append(make_zip([("events.log", lines.encode())]))
    names = [f"b{i:02d}" for i in range(count)]
    for name in names:
        for f, body in enumerate(bodies):
            client.put_object(Bucket=BUCKET, Key=f"{name}/CATO{f + 1:020d}.zip", Body=body)
    results = {}
    for label, chosen in (("one pipeline", names[:1]), (f"{count} pipelines", names)):
        sink = Sink()
        path = config(work / f"busy-{len(chosen)}.yaml", s3.endpoint_url, sink.port, chosen)
        started = time.monotonic()
        process = forwarder(["run", "--once", "--config", str(path)], env)
        code = process.wait(3600)
        secs = time.monotonic() - started
        assert code == 0, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        total = len(chosen) * files * PER_FILE
        results[label] = {"events": total, "secs": round(secs, 2), "events_per_sec": round(total / secs)}
        for name in chosen:
            subprocess.run(["rm", "-rf", str(work / "state" / name)], check=True)
    one, many = results["one pipeline"], results[f"{count} pipelines"]
    results["ratio"] = round(many["events_per_sec"] / one["events_per_sec"], 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle", type=int, default=200, help="idle pipelines (default 200)")
    parser.add_argument("--idle-secs", type=float, default=60, help="seconds of idling measured (default 60)")
    parser.add_argument("--settle", type=float, default=10, help="seconds after the first round (default 10)")
    parser.add_argument("--busy", type=int, default=20, help="busy pipelines (default 20)")
    parser.add_argument("--events", type=int, default=20000, help="events per busy pipeline (default 20000)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_EC2_METADATA_DISABLED": "true"}
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="forwarder-pipelines-") as tmp, S3Server() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        work = Path(tmp)
        if args.idle:
            report["idle"] = idle(s3, work, args.idle, args.settle, args.idle_secs, env)
            print(json.dumps({"idle": report["idle"]}), flush=True)
        if args.busy:
            report["busy"] = busy(s3, work, args.busy, args.events, env)
            print(json.dumps({"busy": report["busy"]}), flush=True)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "pipelines.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
