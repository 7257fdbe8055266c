"""Benchmark: the network side. RELP next to TCP into one real rsyslog, and both over a link
with a 20 ms round trip, each against its own baseline measured in the same run.

    python3 benchmarks/links.py                    # all three parts (the third needs root)
    python3 benchmarks/links.py --parts 1,2        # without the namespaces
    python3 benchmarks/links.py --events 20000 --repeats 5
    python3 benchmarks/links.py --tree ../house    # another checkout's forwarder too, same data
    python3 benchmarks/links.py --set output.relp_window=4096 --set output.max_unacked_bytes=8388608

1. **collector**: one rsyslogd, imrelp and imtcp feeding one ruleset with a direct queue (a
   message is written before imrelp answers it, as ``tests/support/rsyslog.py`` configures
   RELP) and omfile; ``forwarder run --once`` sends the same ``--events`` with protocol tcp,
   then relp. Seconds from launch until rsyslog wrote the last event; ratio relp/tcp.
2. **RELP, long link**: the same imrelp behind ``tests/support/delayproxy.py``, which holds
   every chunk 0 ms, then 10 ms, each way: every answer comes back 20 ms after its message
   left. Ratio 10 ms/0 ms.
3. **TCP, long link**: ``tests/support/delaylink.py``, a network namespace joined to this
   one by tun devices and a bridge holding every packet 0 ms, then 10 ms, each way (TCP's
   own acknowledgements cross it too); the forwarder and the S3 server here,
   ``benchmarks/sink.py`` in the namespace; ``--link-events``. Seconds from launch until the
   sink read the end of the stream; ratio 10 ms/0 ms. Left out (said so) without root.

The events are Cato-like CEF (``forwarder.samples``), 5,000 to a zip, served by a moto S3
server; every run has a fresh checkpoint. Cases alternate, ``--repeats`` times, and the
median is reported. Results go to stdout and benchmarks/out/links.{md,json}.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path[:0] = [str(ROOT)]

import yaml  # noqa: E402

from forwarder.samples import cef_event, make_zip  # noqa: E402
from tests.support.delaylink import DelayLink  # noqa: E402
from tests.support.delayproxy import DelayProxy  # noqa: E402
from tests.support.rsyslog import Rsyslog, free_port  # noqa: E402
from tests.support.s3 import S3Server  # noqa: E402

BUCKET = "cato-links"
PER_FILE = 5000
LONG_LINK_MS = 10.0  # each way: a 20 ms round trip


class TwoInputs(Rsyslog):
    """One rsyslogd and one ruleset (a direct queue, as for relp): imrelp on ``port``, imtcp
    on ``tcp_port``."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "relp")
        self.tcp_port = free_port("tcp")

    def config_text(self) -> str:
        text = super().config_text()
        internal = '*.* action(type="omfile" name="collector_internal"'
        assert internal in text
        imtcp = (
            'module(load="imtcp")\n'
            f'input(type="imtcp" name="collector_tcp" address="127.0.0.1" port="{self.tcp_port}"'
            f' ruleset="collector" supportOctetCountedFraming="on" maxFrameSize="{self.max_message_size}")\n'
        )
        return text.replace(internal, imtcp + internal)


class Forwarder:
    """Runs ``forwarder run --once`` of a checkout against the bucket, a fresh state each run."""

    def __init__(self, tree: Path, endpoint: str, work: Path, settings: dict[str, dict[str, Any]]) -> None:
        self.tree, self.endpoint, self.work, self.settings = tree, endpoint, work, settings
        self.env = {**os.environ, "PYTHONPATH": str(tree), "AWS_EC2_METADATA_DISABLED": "true"}
        self.runs = 0

    def start(self, output: dict[str, Any]) -> subprocess.Popen[bytes]:
        self.runs += 1
        state = self.work / f"state-{self.runs}"
        config: dict[str, Any] = {
            "source": {"bucket": BUCKET, "endpoint_url": self.endpoint, "access_key_id": "bench",
                       "secret_access_key": "bench", "prefetch_files": 2},
            "output": {"hostname": "bench-host", **output},
            "checkpoint": {"path": str(state / "checkpoint.json")},
            "log": {"format": "json", "level": "warning", "progress_interval_secs": 0},
        }  # fmt: skip
        for section, values in self.settings.items():
            config[section] = {**config.get(section, {}), **values}
        if not output["protocol"].startswith("relp"):  # a relp-only key is refused with tcp
            config["output"].pop("relp_window", None)
        path = self.work / f"run-{self.runs}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        path.chmod(0o600)
        command = [sys.executable, "-m", "forwarder", "run", "--once", "--config", str(path)]
        return subprocess.Popen(command, cwd=self.tree, env=self.env, stderr=subprocess.PIPE)


def finished(process: subprocess.Popen[bytes], what: str) -> None:
    """Wait for *process*; fail loudly with its stderr if it did not succeed."""
    if process.wait(600) != 0:
        assert process.stderr is not None
        raise SystemExit(f"{what}: the forwarder failed: {process.stderr.read().decode()[-3000:]}")


def into_rsyslog(rsyslog: Rsyslog, events: int, launch: Callable[[], subprocess.Popen[bytes]]) -> float:
    """Seconds from launch until *rsyslog* wrote *events* more messages."""
    rsyslog.clear()
    size = rsyslog.messages_file.stat().st_size if rsyslog.messages_file.exists() else 0
    started = time.monotonic()
    process = launch()
    last = started
    while process.poll() is None or time.monotonic() - last < 0.5:
        now_size = rsyslog.messages_file.stat().st_size if rsyslog.messages_file.exists() else 0
        if now_size != size:
            size, last = now_size, time.monotonic()
        time.sleep(0.005)
    finished(process, "rsyslog")
    arrived = len(rsyslog.messages())
    assert arrived == events, f"rsyslog wrote {arrived} messages, {events} were sent"
    return last - started


def into_sink(sink: subprocess.Popen[str], size: int, launch: Callable[[], subprocess.Popen[bytes]]) -> float:
    """Seconds from launch until the sink read the end of a stream of *size* bytes."""
    started = time.monotonic()
    process = launch()
    finished(process, "sink")
    assert sink.stdout is not None
    report = json.loads(sink.stdout.readline())
    assert report["bytes"] == size, f"the sink read {report['bytes']} bytes, not {size}"
    return float(report["eof_at"]) - started


def put_events(s3: S3Server, events: int) -> int:
    """Upload *events* CEF events in zips of PER_FILE; the bytes of event text."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    text = 0
    for f in range(-(-events // PER_FILE)):
        lines = [cef_event(f * PER_FILE + i) for i in range(min(PER_FILE, events - f * PER_FILE))]
        body = "\n".join(lines).encode()
        text += len(body) - len(lines) + 1
        client.put_object(Bucket=BUCKET, Key=f"CATO{f + 1:020d}.zip", Body=make_zip([("events.log", body)]))
    return text


def median_cases(repeats: int, cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Run every case *repeats* times, alternating; the median seconds of each."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            times[name].append(case())
            print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events for parts 1-2 (100000)")
    parser.add_argument("--link-events", type=int, default=200_000, help="events for part 3 (200000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each case (3)")
    parser.add_argument("--batch", type=int, default=1000, help="batch.max_events (1000, the default)")
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another checkout, also run")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a config setting for every run of this checkout (YAML value)")  # fmt: skip
    parser.add_argument("--parts", default="1,2,3", help="which parts to run (1,2,3)")
    args = parser.parse_args()
    settings: dict[str, dict[str, Any]] = {"batch": {"max_events": args.batch}}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        settings.setdefault(section, {})[name] = yaml.safe_load(value)
    trees = {"forwarder": (ROOT, settings)} | {
        f"forwarder@{tree.name}": (tree.resolve(), {"batch": {"max_events": args.batch}})
        for tree in args.tree
    }
    parts = {int(part) for part in args.parts.split(",")}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="forwarder-links-") as tmp, S3Server() as s3:
        work = Path(tmp)
        put_events(s3, args.events)
        runners = {name: Forwarder(tree, s3.endpoint_url, work / name, extra) for name, (tree, extra) in
                   trees.items()}  # fmt: skip
        for runner in runners.values():
            runner.work.mkdir()
        with TwoInputs(work / "rsyslog") as rsyslog, DelayProxy(0, rsyslog.address, delay_ms=0) as proxy:
            if 1 in parts:
                rows += part_collector(args, runners, rsyslog)
            if 2 in parts:
                rows += part_relp_link(args, runners, rsyslog, proxy)
        if 3 in parts and os.geteuid() == 0:
            rows += part_tcp_link(args, runners, s3)
    if 3 in parts and os.geteuid() != 0:
        print("part 3 (TCP over a long link) left out: it needs root (network namespaces, tun devices)")
    report(rows, args)


def part_collector(
    args: argparse.Namespace, runners: dict[str, Forwarder], rsyslog: TwoInputs
) -> list[dict[str, Any]]:
    print(f"1. {args.events} events into one rsyslog: imtcp, then imrelp", flush=True)
    cases: dict[str, Callable[[], float]] = {}
    for name, runner in runners.items():
        tcp = {"protocol": "tcp", "port": rsyslog.tcp_port}
        relp = {"protocol": "relp", "port": rsyslog.port}
        cases[f"{name} tcp"] = lambda r=runner, o=tcp: into_rsyslog(rsyslog, args.events, lambda: r.start(o))
        cases[f"{name} relp"] = lambda r=runner, o=relp: into_rsyslog(
            rsyslog, args.events, lambda: r.start(o)
        )
    times = median_cases(args.repeats, cases)
    rows = []
    for name in runners:
        base = times[f"{name} tcp"]
        for protocol in ("tcp", "relp"):
            secs = times[f"{name} {protocol}"]
            rows.append(row("1. rsyslog", name, f"{protocol} to rsyslog", args.events, secs, base, "tcp"))
    return rows


def part_relp_link(
    args: argparse.Namespace, runners: dict[str, Forwarder], rsyslog: TwoInputs, proxy: DelayProxy
) -> list[dict[str, Any]]:
    print(f"2. {args.events} events over RELP through a delay proxy: 0 ms, then {LONG_LINK_MS:g} ms each way")
    cases: dict[str, Callable[[], float]] = {}
    relp = {"protocol": "relp", "port": proxy.port}
    for name, runner in runners.items():
        for delay in (0.0, LONG_LINK_MS):

            def case(r: Forwarder = runner, d: float = delay) -> float:
                proxy.delay_ms = d
                return into_rsyslog(rsyslog, args.events, lambda: r.start(relp))

            cases[f"{name} {delay:g} ms"] = case
    times = median_cases(args.repeats, cases)
    return delay_rows("2. relp, long link", "relp", runners, times, args.events)


def part_tcp_link(
    args: argparse.Namespace, runners: dict[str, Forwarder], s3: S3Server
) -> list[dict[str, Any]]:
    print(
        f"3. {args.link_events} events over TCP through a delay link: 0 ms, then {LONG_LINK_MS:g} ms each way"
    )
    client = s3.client()
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)
    text = put_events(s3, args.link_events)
    # One link per delay, this namespace at one end (the forwarder reaches the S3 server on
    # loopback), the sink at the other; what arrives: each event with its header and octet count.
    with DelayLink(0, a_in_root=True) as fast, DelayLink(LONG_LINK_MS, a_in_root=True) as slow:
        links = {0.0: fast, LONG_LINK_MS: slow}
        sinks = {
            delay: link.popen_in(link.ns_b, [sys.executable, str(HERE / "sink.py"), "--host", link.addr_b],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for delay, link in links.items()
        }  # fmt: skip
        ports = {delay: json.loads(sink.stdout.readline())["port"] for delay, sink in sinks.items()}  # type: ignore[union-attr]
        size: dict[str, int] = {}
        cases: dict[str, Callable[[], float]] = {}
        for name, runner in runners.items():
            for delay, link in links.items():
                tcp = {"protocol": "tcp", "host": link.addr_b, "port": ports[delay]}

                def case(
                    r: Forwarder = runner, d: float = delay, n: str = name, o: dict[str, Any] = tcp
                ) -> float:
                    if n not in size:  # the first run: learn the stream's size from the sink itself
                        started = time.monotonic()
                        finished(r.start(o), "sink")
                        first = json.loads(sinks[d].stdout.readline())  # type: ignore[union-attr]
                        size[n] = int(first["bytes"])
                        assert size[n] > text, "the sink read less than the events' text"
                        return float(first["eof_at"]) - started
                    return into_sink(sinks[d], size[n], lambda: r.start(o))

                cases[f"{name} {delay:g} ms"] = case
        times = median_cases(args.repeats, cases)
    return delay_rows("3. tcp, long link", "tcp", runners, times, args.link_events)


def delay_rows(
    part: str, protocol: str, runners: Any, times: dict[str, float], events: int
) -> list[dict[str, Any]]:
    """The rows of a long-link part: each forwarder at each delay, against its own 0 ms."""
    rows = []
    for name in runners:
        base = times[f"{name} 0 ms"]
        for delay in (0.0, LONG_LINK_MS):
            secs = times[f"{name} {delay:g} ms"]
            rows.append(
                row(part, name, f"{protocol}, {2 * delay:g} ms round trip", events, secs, base, "0 ms")
            )
    return rows


def row(part: str, name: str, case: str, events: int, secs: float, base: float, to: str) -> dict[str, Any]:
    """One line of the table: *secs* for *case*, and its ratio to *base* (the case *to*)."""
    return {"part": part, "forwarder": name, "case": case, "events": events, "secs": secs,
            "ratio": secs / base, "baseline": to}  # fmt: skip


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    lines = [
        "| part | forwarder | case | events | seconds | events/s | ratio | to |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['part']} | {row['forwarder']} | {row['case']} | {row['events']:,} | {row['secs']:.2f} | "
            f"{row['events'] / row['secs']:,.0f} | **{row['ratio']:.2f}** | {row['baseline']} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "links.md").write_text(table, encoding="utf-8")
    (OUT / "links.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                "rows": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
