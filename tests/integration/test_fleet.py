"""A fleet: 3 forwarder processes share one config of 12 pipelines through moto's S3, sending to
one real rsyslog. The syslog HOSTNAME says which pipeline an event is of, APP-NAME which
forwarder sent it (``${FWD_ID}``), so the collector's file shows who sent what, in which order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.backlog import (
    BUCKET,
    PASSWORD,
    RFC5424,
    forwarder,
    forwarder_env,
    plain_backlog,
)
from tests.support.rsyslog import Rsyslog, free_port

pytestmark = pytest.mark.integration

NAMES = [f"p{i:02d}" for i in range(12)]
STATE = "fleet-state"
FILES, EVENTS = 5, 240  # per pipeline: 1,200 events, 12 s at RATE
RATE, BATCH = 100, 25
LEASE, GRACE, RENEW, POLL = 3.0, 1.0, 1.0, 0.5


class Fleet:
    """The bucket, the collector, the shared config, and the forwarders started on it."""

    def __init__(self, s3: Any, collector: Rsyslog, tmp_path: Path) -> None:
        self.s3, self.collector, self.tmp_path = s3, collector, tmp_path
        self.client = s3.client()
        self.expected = {
            n: plain_backlog(self.client, list(range(1, FILES + 1)), EVENTS, f"{n}/").events for n in NAMES
        }
        self.index = {n: {event: i for i, event in enumerate(events)} for n, events in self.expected.items()}
        self.client.create_bucket(Bucket=STATE)
        self.client.put_bucket_versioning(Bucket=STATE, VersioningConfiguration={"Status": "Enabled"})
        access = {"endpoint_url": s3.endpoint_url, "access_key_id": "testing", "secret_access_key": "testing"}
        config = {
            "defaults": {
                "source": {"bucket": BUCKET, "prefix": "{pipeline}/", "zip_password": PASSWORD,
                           "poll_interval_secs": POLL, **access},
                "output": {"protocol": "tcp", "port": collector.port, "hostname": "{pipeline}",
                           "app_name": "${FWD_ID}", "max_events_per_sec": RATE, "retry_initial_secs": 0.1,
                           "retry_max_secs": 0.5},
                "batch": {"max_events": BATCH},
            },
            "pipelines": [{"name": n} for n in NAMES],
            "coordination": {"kind": "s3", "bucket": STATE, "prefix": "fleet/", "lease_secs": LEASE,
                             "grace_secs": GRACE, "forwarder_id": "${FWD_ID}", **access},
            "metrics": {"listen": "127.0.0.1:${METRICS_PORT}"},
            "log": {"format": "json"},
        }  # fmt: skip
        self.config = tmp_path / "fleet.yaml"
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.config.chmod(0o600)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._arrivals: list[tuple[str, str, int]] = []
        self.ports: dict[str, int] = {}

    def start(self, name: str) -> None:
        self.ports[name] = free_port("tcp")
        env = forwarder_env(FWD_ID=name, METRICS_PORT=str(self.ports[name]))
        with open(self.tmp_path / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "forwarder", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def log(self, name: str) -> list[dict[str, Any]]:
        lines = (self.tmp_path / f"{name}.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def owners(self) -> dict[str, str]:
        """Each pipeline's lease holder, as S3 has it now."""
        found = {}
        for item in self.client.list_objects_v2(Bucket=STATE, Prefix="fleet/leases/").get("Contents", []):
            try:
                body = json.loads(self.client.get_object(Bucket=STATE, Key=item["Key"])["Body"].read())
            except self.client.exceptions.NoSuchKey:
                continue  # released since the listing
            found[body["pipeline"]] = body["owner"]
        return found

    def held(self) -> dict[str, list[str]]:
        by: dict[str, list[str]] = {}
        for pipeline, owner in sorted(self.owners().items()):
            by.setdefault(owner, []).append(pipeline)
        return by

    def arrivals(self) -> list[tuple[str, str, int]]:
        """(pipeline, forwarder, event index) of every message, in the order they arrived."""
        messages = self.collector.messages()
        for message in messages[len(self._arrivals) :]:  # the file only grows: parse what is new
            match = RFC5424.match(message)
            assert match, message[:120]
            pipeline, sender = match.group(3).decode(), match.group(4).decode()
            self._arrivals.append((pipeline, sender, self.index[pipeline][message[match.end() :]]))
        return list(self._arrivals)

    def count(self, since: int = 0, sender: str = "") -> dict[str, int]:
        """Arrivals per pipeline from arrival *since* on (only *sender*'s, if given)."""
        counts = dict.fromkeys(NAMES, 0)
        for pipeline, who, _ in self.arrivals()[since:]:
            if not sender or who == sender:
                counts[pipeline] += 1
        return counts

    def delivered(self) -> bool:
        return len({(p, i) for p, _, i in self.arrivals()}) == len(NAMES) * FILES * EVENTS

    def stop(self, *names: str) -> None:
        for name in names:
            self.processes[name].send_signal(signal.SIGTERM)
        for name in names:
            assert self.processes[name].wait(30) == 0, (self.tmp_path / f"{name}.log").read_text()[-3000:]


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll *condition* 4 times a second (reading the collector's file costs: the forwarders
    share the 2 cores with it) until it holds; AssertionError naming *what* after *timeout*."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


@pytest.fixture
def fleet(s3: Any, collector: Callable[..., Rsyslog], tmp_path: Path) -> Any:
    made = Fleet(s3, collector("tcp"), tmp_path)
    yield made
    for process in made.processes.values():
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
            process.wait(10)


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """A forwarder's /readyz: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def check_delivery(arrivals: list[tuple[str, str, int]]) -> dict[str, int]:
    """Every event of every pipeline arrived; per pipeline the first arrivals are in order and
    no arrival goes back more than one batch (the one a killed owner sent but had not saved);
    repeats are at most a batch per change of sender. Returns the repeats per pipeline."""
    repeats = {}
    for pipeline in NAMES:
        seen = [(sender, i) for p, sender, i in arrivals if p == pipeline]
        indexes = [i for _, i in seen]
        assert set(indexes) == set(range(FILES * EVENTS)), pipeline
        first = list(dict.fromkeys(indexes))
        assert first == sorted(first), pipeline
        high = -1
        for i in indexes:
            assert i >= high - BATCH + 1, f"{pipeline}: event {i} after {high}: more than a batch back"
            high = max(high, i)
        handovers = sum(1 for a, b in zip(seen, seen[1:], strict=False) if a[0] != b[0])
        repeats[pipeline] = len(indexes) - len(set(indexes))
        assert repeats[pipeline] <= BATCH * handovers, (pipeline, repeats[pipeline], handovers)
    return repeats


def spread(fleet: Fleet, names: tuple[str, ...], each: int, timeout: float = 40) -> dict[str, list[str]]:
    """Wait until each of *names* holds *each* leases (and nobody else any)."""

    def even() -> bool:
        held = fleet.held()
        return set(held) == set(names) and all(len(pipelines) == each for pipelines in held.values())

    wait_until(even, f"{each} pipelines each for {names}", timeout)
    return fleet.held()


def test_three_forwarders_share_twelve_pipelines_and_a_killed_ones_move_on(fleet: Fleet) -> None:
    """3 forwarders hold 4 pipelines each; kill -9 one mid-backlog: its pipelines resume on the
    others within lease + grace + renew (+ S3's one-second stamps and the pipeline's start),
    every event arrives, in order per pipeline, at most a batch repeated per move."""
    for name in ("fwd-a", "fwd-b", "fwd-c"):
        fleet.start(name)
    held = spread(fleet, ("fwd-a", "fwd-b", "fwd-c"), 4)
    wait_until(lambda: min(fleet.count().values()) >= 2 * BATCH, "every pipeline to be sending", 30)
    fleet.processes["fwd-c"].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    fleet.processes["fwd-c"].wait(10)
    moved: dict[str, float] = {}

    def resumed() -> bool:
        for p, sender, _ in fleet.arrivals()[-2000:]:
            if p in held["fwd-c"] and sender != "fwd-c" and p not in moved:
                moved[p] = time.monotonic() - killed
        return len(moved) == 4

    wait_until(resumed, "fwd-c's pipelines to resume elsewhere", 30)
    bound = LEASE + GRACE + RENEW + 1 + 4  # + S3's whole-second stamps, + the pipeline's start (loaded CI)
    assert max(moved.values()) <= bound, moved
    print(f"\nresumed after kill -9 within {max(moved.values()):.1f}s (bound {bound:g}s): {moved}")
    wait_until(fleet.delivered, "every event", 60)
    repeats = check_delivery(fleet.arrivals())
    assert all(repeats[p] == 0 for p in NAMES if p not in held["fwd-c"])
    assert set(fleet.held()) == {"fwd-a", "fwd-b"}
    fleet.stop("fwd-a", "fwd-b")
    assert fleet.owners() == {}  # released at the clean stop


def test_a_paused_forwarder_loses_its_pipelines_and_sends_nothing_more_for_them(fleet: Fleet) -> None:
    """SIGSTOP one forwarder past its lease: the others take its pipelines over. SIGCONT: its
    fence is closed — it sends no stale event for them (nothing arrives from it below what the
    new owners had sent), its pipelines stop with "lease lost" in its log, and no checkpoint of
    its old tenure lands after the new owner's claim; later it takes its share back."""
    for name in ("fwd-a", "fwd-b", "fwd-c"):
        fleet.start(name)
    held = spread(fleet, ("fwd-a", "fwd-b", "fwd-c"), 4)
    paused = held["fwd-c"]
    wait_until(
        lambda: all(fleet.count(sender="fwd-c")[n] >= BATCH for n in paused), "fwd-c to be sending", 30
    )
    tenures = {p: checkpoint_versions(fleet, p)[-1]["tenure"] for p in paused}
    os.kill(fleet.processes["fwd-c"].pid, signal.SIGSTOP)
    wait_until(lambda: set(fleet.held()) == {"fwd-a", "fwd-b"}, "the others to take fwd-c's pipelines", 20)
    start = len(fleet.arrivals())
    wait_until(lambda: all(fleet.count(start)[n] >= 4 * BATCH for n in paused), "the new owners to send", 30)
    before = fleet.arrivals()
    os.kill(fleet.processes["fwd-c"].pid, signal.SIGCONT)

    def lost() -> set[str]:
        return {line.get("pipeline") for line in fleet.log("fwd-c") if "lease lost" in line["message"]}

    wait_until(lambda: set(paused) <= lost(), "fwd-c to notice it lost them", 20)
    wait_until(fleet.delivered, "every event", 60)
    spread(fleet, ("fwd-a", "fwd-b", "fwd-c"), 4)  # it takes its share back
    after = fleet.arrivals()
    for p in paused:
        high = max(i for q, _, i in before if q == p)
        stale = [i for q, s, i in after[len(before) :] if q == p and s == "fwd-c" and i < high]
        assert stale == [], (p, stale[:5])
        versions = checkpoint_versions(fleet, p)
        first = next(i for i, v in enumerate(versions) if v["tenure"] == tenures[p])
        claim = next(i for i in range(first, len(versions)) if versions[i]["owner"] != "fwd-c")  # the taker's
        assert all(v["tenure"] != tenures[p] for v in versions[claim:]), p  # none of the paused one's after
    check_delivery(after)
    messages = [line["message"] for line in fleet.log("fwd-c")]
    assert any("sends and saves nothing more" in m for m in messages), messages[-20:]
    for line in fleet.log("fwd-c"):  # every line about a lease names its pipeline, as a field too
        if "lease" in line["message"] and not line["message"].startswith("coordination:"):
            assert line["message"].startswith(f"pipeline {line.get('pipeline')}: "), line
    fleet.stop("fwd-a", "fwd-b", "fwd-c")


def checkpoint_versions(fleet: Fleet, pipeline: str) -> list[dict[str, Any]]:
    """Every version of *pipeline*'s checkpoint, oldest first."""
    key = f"fleet/state/{pipeline}/checkpoint.json"
    versions = fleet.client.list_object_versions(Bucket=STATE, Prefix=key).get("Versions", [])
    return [
        json.loads(fleet.client.get_object(Bucket=STATE, Key=key, VersionId=v["VersionId"])["Body"].read())
        for v in reversed(versions)
    ]


def test_a_forwarder_added_later_takes_its_share_and_a_clean_stop_hands_over(fleet: Fleet) -> None:
    """Two forwarders hold 6 each; a third started later gets 4 from them (each lets 2 go after
    its batch in flight: nothing repeated); /metrics and /readyz per forwarder, status shows the
    owners; SIGTERM of one hands its pipelines over at once, not after its lease."""
    fleet.start("fwd-a")
    fleet.start("fwd-b")
    spread(fleet, ("fwd-a", "fwd-b"), 6)
    fleet.start("fwd-c")
    spread(fleet, ("fwd-a", "fwd-b", "fwd-c"), 4, timeout=30)
    for name, port in fleet.ports.items():
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert f'forwarder_pipelines_owned{{forwarder="{name}"}} 4.0' in metrics
        # ready once the pipelines it took reached their collector and bucket (503 until then)
        wait_until(lambda port=port: readyz(port)[0] == 200, f"{name} to be ready", 20)
        ready = readyz(port)[1]
        assert ready["coordination"]["ok"] is True and len(ready["pipelines"]) == 4
    status = forwarder(
        "status", "--config", str(fleet.config), "--json", env=forwarder_env(FWD_ID="x", METRICS_PORT="1")
    )
    shown = json.loads(status.stdout)
    assert sorted(shown["fleet"]["forwarders"]) == ["fwd-a", "fwd-b", "fwd-c"]
    assert {p["owner"]["owner"] for p in shown["pipelines"]} == {"fwd-a", "fwd-b", "fwd-c"}
    wait_until(fleet.delivered, "every event", 60)
    assert set(check_delivery(fleet.arrivals()).values()) == {0}  # every move was a clean hand-over
    fleet.processes["fwd-c"].send_signal(signal.SIGTERM)
    assert fleet.processes["fwd-c"].wait(30) == 0
    stopped = time.monotonic()  # its leases released just before it exited
    spread(fleet, ("fwd-a", "fwd-b"), 6, timeout=10)
    assert time.monotonic() - stopped < LEASE + GRACE  # taken at the next rounds, before they could expire
    fleet.stop("fwd-a", "fwd-b")
