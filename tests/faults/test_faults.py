"""Fault injection: crashes, collector outages and stalls, S3 faults, checkpoint storage
trouble, two instances. Each scenario compares what rsyslog received with the bucket and
adds its figures to the report (see conftest.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import Report, Row, compare
from tests.support.backlog import bodies, forwarder, plain_backlog, wait_until, write_config
from tests.support.s3proxy import S3Proxy

pytestmark = pytest.mark.faults

Background = Callable[..., "subprocess.Popen[bytes]"]
SEED = int(os.environ.get("FAULTS_SEED", "20261128"))


def _settle(rsyslog: Any, seconds: float = 0.5) -> list[bytes]:
    """The collector's messages once no more arrived for *seconds*."""
    count = -1
    while count != len(rsyslog.messages()):
        count = len(rsyslog.messages())
        time.sleep(seconds)
    return bodies(rsyslog.messages())


def _checkpoint(tmp_path: Path) -> tuple[int, int, bool] | None:
    try:
        data = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return None
    return data["cursor"]["sequence"], data["records"], data["cursor"].get("complete", False)


# --- 1. crashes ------------------------------------------------------------------------

KILLS = 20
CRASH_BATCH = 50


def test_kill_9_at_random_moments(
    s3: Any, collector: Any, tmp_path: Path, background: Background, report: Report
) -> None:
    """20 kill -9 at random moments of a backlog: nothing lost, at most one batch repeated per kill."""
    rng = random.Random(SEED)
    backlog = plain_backlog(s3.client(), list(range(1, 61)), events=250)
    rsyslog = collector("tcp")
    output = {"protocol": "tcp", "port": rsyslog.port, "max_events_per_sec": 1500}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": CRASH_BATCH})
    kills = 0
    while kills < KILLS:
        process = background("run", "--config", str(config))
        before = len(rsyslog.messages())
        wait_until(
            lambda p=process, n=before: len(rsyslog.messages()) > n or p.poll() is not None,
            "the restart to send",
        )
        time.sleep(rng.uniform(0.0, 0.5))
        if process.poll() is not None or len(rsyslog.messages()) >= len(backlog.events):
            break
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        kills += 1
    assert kills == KILLS, f"the backlog ran out after {kills} kills"
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    lost, duplicated, in_order = compare(backlog.events, _settle(rsyslog))
    report.add(
        Row(
            "forwarder crash",
            f"{kills} × kill -9 at random moments",
            len(backlog.events),
            lost,
            duplicated,
            f"0 lost; ≤ {CRASH_BATCH} (one batch) repeated per kill",
            in_order,
        )
    )
    assert lost == 0 and in_order
    assert duplicated <= kills * CRASH_BATCH


# --- 2. collector down -----------------------------------------------------------------


def _outages(
    s3: Any, collector: Any, certs: Any, tmp_path: Path, background: Background, protocol: str, how: str
) -> tuple[int, int, int, bool]:
    """Three outages of 1.5 s mid-backlog; returns (events, lost, duplicated, in order)."""
    backlog = plain_backlog(s3.client(), list(range(1, 31)), events=200)
    rsyslog = collector(protocol)
    output: dict[str, Any] = {"protocol": protocol, "port": rsyslog.port, "max_events_per_sec": 1500}
    if protocol == "tls":
        output |= {"host": "localhost", "tls": {"ca_file": str(certs.ca_file)}}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": 100})
    process = background("run", "--config", str(config))
    for outage in range(3):
        wait_until(lambda n=outage: len(rsyslog.messages()) >= (n + 1) * 1200, "progress before the outage")
        if how == "kill -9":
            rsyslog.kill()
        else:
            rsyslog.stop()
        time.sleep(1.5)
        rsyslog.start()
    wait_until(lambda: (_checkpoint(tmp_path) or (0, 0, False)) == (30, 200, True), "the backlog to finish")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    return len(backlog.events), *compare(backlog.events, _settle(rsyslog))


@pytest.mark.parametrize("protocol", ["tcp", "tls"])
def test_collector_stopped_cleanly(
    s3: Any, collector: Any, certs: Any, tmp_path: Path, background: Background, report: Report, protocol: str
) -> None:
    """The collector stopped (SIGTERM) and restarted 3 times mid-backlog: what arrives, in order."""
    events, lost, duplicated, in_order = _outages(
        s3, collector, certs, tmp_path, background, protocol, "stop"
    )
    report.add(
        Row(
            f"collector stopped cleanly ({protocol})",
            "3 × rsyslog SIGTERM, 1.5 s down",
            events,
            lost,
            duplicated,
            "0 lost",
            in_order,
        )
    )
    assert in_order
    assert lost == 0


def test_collector_killed(
    s3: Any, collector: Any, certs: Any, tmp_path: Path, background: Background, report: Report
) -> None:
    """The collector killed (kill -9) 3 times over plain TCP: what its kernel acknowledged and
    it had not read is sent again after the reset; what it had read into its in-memory queue
    dies with it, unseen (bounded here by what can be queued per kill)."""
    events, lost, duplicated, in_order = _outages(
        s3, collector, certs, tmp_path, background, "tcp", "kill -9"
    )
    report.add(
        Row(
            "collector killed (tcp)",
            "3 × rsyslog kill -9, 1.5 s down",
            events,
            lost,
            duplicated,
            "not promised: what its kernel acknowledged unread is sent again after the reset, but"
            " what rsyslog read into its in-memory queue dies with it (RELP with a direct queue"
            " closes that gap)",
            in_order,
        )
    )
    assert in_order
    assert lost <= 3 * 100 * 3  # bounded by what can be read and queued, unwritten, per kill


# --- 3. collector stalls ---------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.parametrize("ack_timeout", [30.0, 1.0])
def test_collector_that_stops_reading(
    s3: Any, collector: Any, tmp_path: Path, background: Background, report: Report, ack_timeout: float
) -> None:
    """rsyslog frozen (SIGSTOP) mid-backlog: memory stays flat, the checkpoint waits, delivery
    resumes. Frozen longer than ack_timeout_secs, batches are reset and sent again: repeats."""
    backlog = plain_backlog(s3.client(), list(range(1, 21)), events=2000)
    rsyslog = collector("tcp")
    output = {"protocol": "tcp", "port": rsyslog.port, "ack_timeout_secs": ack_timeout}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": 500})
    process = background("run", "--config", str(config))
    wait_until(lambda: len(rsyslog.messages()) >= 2000, "progress before the stall")
    assert rsyslog.pid is not None
    os.kill(rsyslog.pid, signal.SIGSTOP)
    try:
        time.sleep(1.5)  # let the socket buffers fill up
        held = _checkpoint(tmp_path)
        peak = 0
        for _ in range(30):
            peak = max(peak, _rss_kib(process.pid))
            time.sleep(0.1)
        assert _checkpoint(tmp_path) == held, "the checkpoint moved while nothing was read"
    finally:
        os.kill(rsyslog.pid, signal.SIGCONT)
    wait_until(lambda: (_checkpoint(tmp_path) or (0, 0, False)) == (20, 2000, True), "the backlog to finish")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    lost, duplicated, in_order = compare(backlog.events, _settle(rsyslog))
    longer = ack_timeout < 4.5
    report.add(
        Row(
            f"collector stops reading ({'longer than' if longer else 'within'} ack_timeout_secs)",
            f"rsyslog SIGSTOP for 4.5 s, ack_timeout_secs {ack_timeout:g}",
            len(backlog.events),
            lost,
            duplicated,
            f"0 lost; peak RSS {peak // 1024} MiB while stalled"
            + (
                "; reset: the batches not acknowledged and the last acknowledged sent again"
                " (repeats; late originals may interleave)"
                if longer
                else "; nothing repeated, in order"
            ),
            in_order,
        )
    )
    assert lost == 0
    assert peak < 150 * 1024
    if not longer:
        assert duplicated == 0 and in_order


# --- 4. S3 faults ----------------------------------------------------------------------


def test_s3_errors_resets_and_truncated_bodies(
    s3: Any, s3proxy: S3Proxy, collector: Any, tmp_path: Path, background: Background, report: Report
) -> None:
    """500s, 503 SlowDown, connection resets and cut bodies on object GETs: all delivered, in order."""
    rng = random.Random(SEED)
    backlog = plain_backlog(s3.client(), list(range(1, 41)), events=100)
    kinds = ["500", "503", "reset", "truncate"]
    planned = [rng.choice(kinds) if rng.random() < 0.4 else "none" for _ in range(200)]
    s3proxy.faults.extend(planned)
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3proxy.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"poll_interval_secs": 0.2},
    )
    process = background("run", "--config", str(config))
    wait_until(
        lambda: (_checkpoint(tmp_path) or (0, 0, False)) == (40, 100, True), "the backlog to finish", 120
    )
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    injected = sum(1 for fault in planned[: len(planned) - len(s3proxy.faults)] if fault != "none")
    lost, duplicated, in_order = compare(backlog.events, _settle(rsyslog))
    report.add(
        Row(
            "S3 faults",
            f"{injected} × 500 / 503 SlowDown / reset / truncated body, on ~40% of object GETs",
            len(backlog.events),
            lost,
            duplicated,
            "0 lost, 0 repeated, in order",
            in_order,
        )
    )
    assert (lost, duplicated, in_order) == (0, 0, True)


# --- 5. checkpoint storage -------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the checkpoint (outside pytest's temporary tree), unmounted afterwards."""
    mount = Path(tempfile.mkdtemp(prefix="forwarder-faults-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    (tmp_path / "state").symlink_to(mount)
    try:
        yield mount
    finally:
        for _ in range(50):  # a bind mount left by the test first, then the tmpfs itself
            if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
                break
        mount.rmdir()


@pytest.mark.parametrize("trouble", ["full", "read-only"])
def test_checkpoint_storage_fails_mid_backlog(
    s3: Any,
    collector: Any,
    tmp_path: Path,
    background: Background,
    report: Report,
    small_disk: Path,
    trouble: str,
) -> None:
    """The checkpoint's disk fills up or turns read-only: sending stops with a line saying why;
    once it is writable again, a restart delivers the rest."""
    backlog = plain_backlog(s3.client(), list(range(1, 21)), events=200)
    rsyslog = collector("tcp")
    output = {"protocol": "tcp", "port": rsyslog.port, "max_events_per_sec": 2000}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": 50})
    process = background("run", "--config", str(config))
    wait_until(lambda: len(rsyslog.messages()) >= 1000, "progress")
    if trouble == "full":
        filler = small_disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
    else:  # a read-only bind mount over it: files already open stay writable, new ones fail
        subprocess.run(["mount", "--bind", str(small_disk), str(small_disk)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(small_disk)], check=True)
    assert process.wait(30) == 3
    log = (tmp_path / "forwarder.log").read_text()
    errors = [json.loads(line)["message"] for line in log.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1 and "cannot write the checkpoint" in errors[0], errors
    time.sleep(0.5)
    stopped_at = len(rsyslog.messages())
    time.sleep(1.0)
    assert len(rsyslog.messages()) == stopped_at  # it stopped sending
    if trouble == "full":
        filler.unlink()
    else:
        subprocess.run(["umount", str(small_disk)], check=True)  # the bind mount goes
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    lost, duplicated, in_order = compare(backlog.events, _settle(rsyslog))
    report.add(
        Row(
            f"checkpoint disk {trouble}",
            f"checkpoint's filesystem {trouble} mid-backlog, then fixed",
            len(backlog.events),
            lost,
            duplicated,
            "stops with exit 3; 0 lost; ≤ 1 batch (50) repeated",
            in_order,
        )
    )
    assert lost == 0 and in_order and duplicated <= 50


def test_corrupt_checkpoint_is_an_error_not_a_restart(
    s3: Any, collector: Any, tmp_path: Path, report: Report
) -> None:
    """A corrupt checkpoint: exit 3 with one line naming it; nothing is sent from the beginning."""
    backlog = plain_backlog(s3.client(), [1, 2], events=10)
    rsyslog = collector("tcp")
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port})
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "checkpoint.json").write_text('{"version": 1, "sequ')
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 3
    errors = [json.loads(line)["message"] for line in result.stderr.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1 and "checkpoint is corrupt" in errors[0]
    time.sleep(0.3)
    assert rsyslog.messages() == []
    report.add(
        Row(
            "corrupt checkpoint",
            "checkpoint file cut short",
            len(backlog.events),
            0,
            0,
            "exit 3, nothing sent: no silent restart from zero",
        )
    )


# --- 6. two instances ------------------------------------------------------------------


def test_second_instance_on_one_checkpoint_refuses(
    s3: Any, collector: Any, tmp_path: Path, background: Background, report: Report
) -> None:
    """Two forwarders on one checkpoint: the second exits 3 saying another one holds it."""
    backlog = plain_backlog(s3.client(), list(range(1, 11)), events=200)
    rsyslog = collector("tcp")
    output = {"protocol": "tcp", "port": rsyslog.port, "max_events_per_sec": 1000}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output)
    first = background("run", "--config", str(config))
    wait_until(lambda: len(rsyslog.messages()) > 0, "the first forwarder to send")
    second = forwarder("run", "--config", str(config), "--once")
    assert second.returncode == 3
    assert "another forwarder is using this checkpoint" in second.stderr
    wait_until(lambda: (_checkpoint(tmp_path) or (0, 0, False)) == (10, 200, True), "the backlog to finish")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    lost, duplicated, in_order = compare(backlog.events, _settle(rsyslog))
    report.add(
        Row(
            "two instances",
            "a second forwarder on the same checkpoint",
            len(backlog.events),
            lost,
            duplicated,
            "the second refuses (exit 3); 0 lost, 0 repeated",
            in_order,
        )
    )
    assert (lost, duplicated, in_order) == (0, 0, True)
