"""Benchmark: the forwarder against the all-C "curl + unzip -P -p | socket" pipeline, same run.

    python3 benchmarks/run.py                 # 4 data shapes x 1M events + one 2 GB file
    python3 benchmarks/run.py --skip-2gb      # just the 1M-event runs
    python3 benchmarks/run.py --workers 1     # the forwarder with workers: 1 (default: its own, auto)
    python3 benchmarks/run.py --help          # shapes, events, files, batch size, repeats, headers...
    python3 benchmarks/run.py --tree ../other # the forwarder of another checkout, same data

What it does, all on 127.0.0.1:
1. makes (once; cached under benchmarks/out/data/) N Cato-like events of each data shape
   (benchmarks/events.py: ``cef-local`` Cato's rt dates, a file's events within 30 s;
   ``cef-spread`` every event at a different second of the year; ``cef-utf8`` half of them
   non-ASCII; ``json`` Cato's JSON) in password-protected (ZipCrypto) exporter zips (Info-ZIP
   ``zip``), and one ~2 GB file of ``cef-local`` events;
2. starts a moto S3 server and uploads them; starts a TCP sink that only counts bytes;
3. for each shape, alternately runs the baseline (``baseline.sh``: curl each object, then
   ``unzip -P pw -p`` into one TCP connection) and ``python -m forwarder run --once`` with a
   fresh checkpoint, both reading the same objects from the same endpoint into the same sink;
4. checks that the sink received exactly the bytes each had to deliver, and reports seconds
   (launch to the later of process exit and the sink reading the end of the stream), events/s,
   MB/s (of event text), CPU seconds, peak RSS of all the run's processes together (sampled
   every 50 ms: the forwarder and its workers; curl and unzip) and the forwarder/baseline ratio,
   with the machine's load average (other work on it moves every figure).

Results go to stdout and to benchmarks/out/results.{md,json}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path[:0] = [str(HERE), str(ROOT)]

import data as datasets  # noqa: E402  (benchmarks/ is not a package)
from events import SHAPES  # noqa: E402

from tests.support.s3 import S3Server  # noqa: E402

BUCKET = "cato-bench"
HOSTNAME = "bench-host"
# "1 2026-11-28T07:25:12.123Z bench-host cato - - - ": what RFC 5424 puts between PRI and MSG.
RFC5424_PREFIX_BYTES = len(f"1 2026-11-28T07:25:12.123Z {HOSTNAME} cato - - - ")
PRI_BYTES = 5  # "<13x>": local0 with severities 2-6
MB = 1_000_000
DOWNLOADS: dict[str, float] = {}  # variant -> seconds to fetch its objects with curl alone


@dataclass
class Run:
    """One measured run of one pipeline on one variant."""

    variant: str
    pipeline: str
    events: int
    text_bytes: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float  # all the run's processes together, sampled
    peak_pss_mb: float  # the same, a page shared by n of them counted 1/n in each
    received_bytes: int
    load: float  # the machine's 1-minute load average when the run started

    @property
    def events_per_sec(self) -> float:
        return self.events / self.seconds

    @property
    def mb_per_sec(self) -> float:
        return self.text_bytes / MB / self.seconds


class Sink:
    """The sink subprocess (sink.py); reports one line per closed connection."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(HERE / "sink.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self._proc.stdout is not None
        self._out: IO[bytes] = self._proc.stdout
        self.port = int(self._next(10)["port"])

    def _next(self, timeout: float) -> dict[str, Any]:
        ready, _, _ = select.select([self._out], [], [], timeout)
        if not ready:
            raise RuntimeError("the sink did not report in time (did the sender connect and close?)")
        return dict(json.loads(self._out.readline()))

    def report(self, timeout: float = 60) -> dict[str, Any]:
        """What the next closed connection carried."""
        return self._next(timeout)

    def stop(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(10)


def expected_bytes(dataset: datasets.DataSet, header: str, framing: str) -> int:
    """What the forwarder must put on the wire for *dataset* (exact: every length is known)."""
    head = PRI_BYTES + RFC5424_PREFIX_BYTES if header == "rfc5424" else 0
    total = 0
    for length, count in dataset.lengths.items():
        message = head + length
        total += count * ((len(str(message)) + 1 + message) if framing == "octet_counting" else message + 1)
    return total


def tree_memory(root: int) -> tuple[int, int]:
    """(RSS, PSS) of *root*'s descendants together, in bytes (not *root*: GNU time). PSS
    counts a page shared by n processes (the Python binary's, say) 1/n in each."""
    rss = pss = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        with contextlib.suppress(OSError, ValueError):
            if pid != root:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith(("Rss:", "Pss:")):
                        kib = int(line.split()[1]) * 1024
                        rss, pss = (rss + kib, pss) if line.startswith("Rss:") else (rss, pss + kib)
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
    return rss, pss


class PeakMemory:
    """Samples a process tree every 50 ms in a thread: the peaks of its RSS and PSS sums."""

    def __init__(self, root: int) -> None:
        self.rss = self.pss = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(root,), daemon=True)
        self._thread.start()

    def _sample(self, root: int) -> None:
        while not self._done.wait(0.05):
            rss, pss = tree_memory(root)
            self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)

    def stop(self) -> tuple[int, int]:
        self._done.set()
        self._thread.join()
        return self.rss, self.pss


def load_average() -> float:
    """The machine's 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def timed(
    argv: list[str], env: dict[str, str], log: Path, timeout: float, cwd: Path = ROOT
) -> tuple[float, float, float, int, int]:
    """Run *argv* under GNU time; return (start, end, CPU seconds, peak RSS, peak PSS in bytes).

    The CPU seconds are GNU time's (the command and the children it waited for: curl and
    unzip, the forwarder's workers). The peaks are of the sums over all of them at once
    (PeakMemory): GNU time's %M is only the largest single process. A run past *timeout*
    is killed with its children.
    """
    usage = log.with_suffix(".time")
    with open(log, "wb") as handle:
        start = time.monotonic()
        proc = subprocess.Popen(
            ["/usr/bin/time", "-o", str(usage), "-f", "%M %U %S", *argv],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
        peak = PeakMemory(proc.pid)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError(f"{argv[:4]} took more than {timeout:g}s; see {log}") from None
        finally:
            rss, pss = peak.stop()
        end = time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}; see {log}")
    max_kib, user, system = usage.read_text().split()[-3:]
    return start, end, float(user) + float(system), max(rss, int(max_kib) * 1024), pss


def baseline_argv(s3: S3Server, sink: Sink, variant: str, work: Path) -> list[str]:
    """baseline.sh for the objects of *variant* (its prefix), into *sink*."""
    return [
        "bash",
        str(HERE / "baseline.sh"),
        s3.endpoint_url,
        BUCKET,
        f"{variant}/",
        str(sink.port),
        str(work),
    ]


def password(variant: str) -> str:
    """The zip password of *variant* (``SHAPE/pw``, ``SHAPE/plain``, ``2gb/pw``)."""
    return datasets.PASSWORD if variant.endswith("/pw") else ""


def run_baseline(
    s3: S3Server, sink: Sink, dataset: datasets.DataSet, variant: str, work: Path, timeout: float
) -> Run:
    env = {**os.environ, **s3.env(), "ZIP_PASSWORD": password(variant)}
    load = load_average()
    start, end, cpu, rss, pss = timed(
        baseline_argv(s3, sink, variant, work), env, work / "baseline.log", timeout
    )
    report = sink.report()
    if report["bytes"] != dataset.text_bytes or report["newlines"] != dataset.events:
        raise RuntimeError(f"baseline delivered {report}, expected {dataset.text_bytes} bytes")
    seconds = max(end, report["eof_at"]) - start
    return Run(
        variant,
        "baseline",
        dataset.events,
        dataset.text_bytes,
        seconds,
        cpu,
        rss / MB,
        pss / MB,
        report["bytes"],
        load,
    )


def download_seconds(s3: S3Server, sink: Sink, variant: str, work: Path, timeout: float) -> float:
    """How long the baseline's downloads alone take: the S3 endpoint's share of a run."""
    env = {**os.environ, **s3.env(), "DOWNLOAD_ONLY": "1"}
    start, end, *_ = timed(baseline_argv(s3, sink, variant, work), env, work / "download.log", timeout)
    sink.report()  # the connection it opened and closed, empty
    return end - start


def forwarder_config(s3: S3Server, sink: Sink, variant: str, work: Path, args: argparse.Namespace) -> Path:
    workers = f"workers: {args.workers}\n" if args.workers else ""  # else the forwarder's default
    text = f"""\
{workers}source:
  bucket: {BUCKET}
  prefix: "{variant}/"
  endpoint_url: {s3.endpoint_url}
  access_key_id: testing
  secret_access_key: testing
  zip_password: "{password(variant)}"
  download_dir: {work}
output:
  protocol: tcp
  host: 127.0.0.1
  port: {sink.port}
  header: {args.header}
  header_time: {args.header_time}
  framing: {args.framing}
  hostname: {HOSTNAME}
parser:
  invalid_utf8: {args.invalid_utf8}
checkpoint:
  path: {work}/checkpoint.json
batch:
  max_events: {args.batch}
log:
  level: info
  format: json
"""
    path = work / "forwarder.yaml"
    path.write_text(text)
    return path


def run_forwarder(
    s3: S3Server, sink: Sink, dataset: datasets.DataSet, variant: str, work: Path, args: argparse.Namespace
) -> Run:
    for stale in ("checkpoint.json", "checkpoint.json.lock"):
        (work / stale).unlink(missing_ok=True)
    config = forwarder_config(s3, sink, variant, work, args)
    env = {**os.environ, "PYTHONPATH": str(args.tree)}
    argv = [sys.executable, "-m", "forwarder", "run", "--config", str(config), "--once"]
    log = work / "forwarder.log"
    load = load_average()
    start, end, cpu, rss, pss = timed(argv, env, log, args.timeout, cwd=args.tree)
    report = sink.report()
    want = expected_bytes(dataset, args.header, args.framing)
    if report["bytes"] != want:
        raise RuntimeError(f"forwarder delivered {report['bytes']} bytes, expected {want}; see {log}")
    seconds = max(end, report["eof_at"]) - start
    return Run(
        variant,
        "forwarder",
        dataset.events,
        dataset.text_bytes,
        seconds,
        cpu,
        rss / MB,
        pss / MB,
        report["bytes"],
        load,
    )


def upload(s3: S3Server, dataset: datasets.DataSet, variants: list[str], prefix: str) -> None:
    """The files of *dataset*'s *variants* under ``PREFIX/VARIANT/``."""
    client = s3.client()
    for variant in variants:
        for key in dataset.keys(variant):
            name = key.split("/", 1)[1]
            client.upload_file(str(dataset.folder / key), BUCKET, f"{prefix}/{variant}/{name}")


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def measure(
    s3: S3Server, sink: Sink, dataset: datasets.DataSet, variant: str, repeat: int, args: argparse.Namespace
) -> tuple[Run, Run]:
    """Baseline and forwarder alternately, *repeat* times; the median run of each."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-{variant.replace('/', '-')}-", dir=OUT))
    seconds = download_seconds(s3, sink, variant, work, args.timeout)
    DOWNLOADS[variant] = seconds
    print(f"  {variant}: downloading the objects alone (curl) takes {seconds:.2f}s", flush=True)
    baselines, forwarders = [], []
    for _ in range(repeat):
        baselines.append(run_baseline(s3, sink, dataset, variant, work, args.timeout))
        forwarders.append(run_forwarder(s3, sink, dataset, variant, work, args))
        print(
            f"  {variant}: baseline {baselines[-1].seconds:.2f}s, forwarder {forwarders[-1].seconds:.2f}s "
            f"(peak RSS {forwarders[-1].peak_rss_mb:.0f} MB, PSS {forwarders[-1].peak_pss_mb:.0f} MB; "
            f"load {baselines[-1].load:.2f}, "
            f"{forwarders[-1].load:.2f})",
            flush=True,
        )
    shutil.rmtree(work)
    return _median(baselines), _median(forwarders)


def _median(runs: list[Run]) -> Run:
    middle = statistics.median_low([r.seconds for r in runs])
    return next(r for r in runs if r.seconds == middle)


def table(rows: list[tuple[Run, Run]], dataset_note: dict[str, str]) -> str:
    lines = [
        "| data | events | pipeline | seconds | events/s | MB/s | CPU s | peak RSS MB | peak PSS MB | load "
        "| ratio |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for baseline, forwarder in rows:
        ratio = forwarder.seconds / baseline.seconds
        for run in (baseline, forwarder):
            lines.append(
                f"| {run.variant} ({dataset_note[run.variant]}) | {run.events:,} | {run.pipeline} | "
                f"{run.seconds:.2f} | {run.events_per_sec:,.0f} | {run.mb_per_sec:.0f} | "
                f"{run.cpu_seconds:.2f} | {run.peak_rss_mb:.0f} | {run.peak_pss_mb:.0f} | {run.load:.2f} | "
                f"{'1.00' if run is baseline else f'**{ratio:.2f}**'} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events of each shape (default 1M)")
    parser.add_argument("--files", type=int, default=20, help="exporter files they are spread over (20)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"data shapes ({','.join(SHAPES)})")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each pipeline; the median counts (3)")
    parser.add_argument(
        "--batch", type=int, default=1000, help="forwarder batch.max_events (1000, its default)"
    )
    parser.add_argument("--workers", default="", help="forwarder workers: auto or N (default: not set)")
    parser.add_argument("--header", default="rfc5424", choices=("rfc5424", "none"), help="output.header")
    parser.add_argument("--framing", default="octet_counting", choices=("octet_counting", "newline"))
    parser.add_argument(
        "--header-time", default="event", choices=("event", "now"), help="output.header_time (event)"
    )
    parser.add_argument(
        "--invalid-utf8", default="replace", choices=("replace", "keep"), help="parser.invalid_utf8 (replace)"
    )
    parser.add_argument("--variants", default="pw", help="pw (ZipCrypto) and/or plain (pw)")
    parser.add_argument("--skip-2gb", action="store_true", help="skip the run on one ~2 GB file")
    parser.add_argument("--big-bytes", type=int, default=2_000_000_000, help="size of the big file (2 GB)")
    parser.add_argument(
        "--tree", type=Path, default=ROOT, help="run the forwarder of this checkout (this one)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds one run may take (600)")
    args = parser.parse_args()
    if not all(shutil.which(tool) for tool in ("zip", "unzip", "curl")) or not Path("/usr/bin/time").exists():
        subprocess.run(["apt-get", "install", "-y", "-q", "zip", "unzip", "curl", "time"], check=True)

    OUT.mkdir(exist_ok=True)
    variants = tuple(v for v in args.variants.split(",") if v)
    shapes = [s for s in args.shapes.split(",") if s]
    started = time.monotonic()
    sets = {
        shape: datasets.build(
            OUT / "data" / f"{shape}-{args.events}-files-{args.files}",
            args.events,
            args.files,
            variants,
            shape,
        )
        for shape in shapes
    }
    if not args.skip_2gb:
        big_events = args.big_bytes // 465  # cef-local's mean event is 465 bytes with its LF
        sets["2gb"] = datasets.build(
            OUT / "data" / f"big-cef-local-{big_events}", big_events, 1, ("pw",), "cef-local"
        )
    print(f"data ready in {time.monotonic() - started:.0f}s; load average {load_average():.2f}", flush=True)

    sink = Sink()
    rows: list[tuple[Run, Run]] = []
    notes: dict[str, str] = {}
    loads = [load_average()]
    with contextlib.ExitStack() as stack:
        stack.callback(sink.stop)
        s3 = stack.enter_context(S3Server(log_file=OUT / "moto.log"))
        s3.client().create_bucket(Bucket=BUCKET)
        for shape, dataset in sets.items():
            kept = ("pw",) if shape == "2gb" else variants
            upload(s3, dataset, list(kept), shape)
            for variant in kept:
                name = f"{shape}/{variant}"
                size = (
                    f"{dataset.text_bytes / 1e9:.1f} GB"
                    if shape == "2gb"
                    else f"{len(dataset.manifest['files'])} files"
                )
                notes[name] = f"{size}, {'password' if variant == 'pw' else 'no password'}"
                rows.append(measure(s3, sink, dataset, name, 1 if shape == "2gb" else args.repeat, args))
    loads.append(load_average())

    settings = (
        f"header {args.header}, header_time {args.header_time}, framing {args.framing}, "
        f"invalid_utf8 {args.invalid_utf8}, batch.max_events {args.batch}, "
        f"workers {args.workers or 'not set (default)'}"
    )
    result = "\n".join(
        [
            f"machine: {machine()}; load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end",
            f"forwarder settings: tcp, {settings}; S3: moto server; sink: benchmarks/sink.py; "
            f"median of {args.repeat} runs (2 GB: 1 run)",
            "S3 endpoint alone (curl of every object, nothing sent): "
            + ", ".join(f"{variant} {seconds:.2f}s" for variant, seconds in DOWNLOADS.items()),
            "",
            table(rows, notes),
        ]
    )
    print("\n" + result)
    (OUT / "results.md").write_text(result + "\n")
    (OUT / "results.json").write_text(json.dumps([[asdict(b), asdict(f)] for b, f in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
