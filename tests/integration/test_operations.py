"""Running it for months: the metrics and health endpoint scraped during real runs (moto S3,
rsyslog, the forwarder as a daemon), its JSON log lines, and secrets kept out of logs and
`check`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forwarder.samples import cef_event, exporter_key, make_zip
from tests.support.backlog import BUCKET, PASSWORD, PREFIX, forwarder, plain_backlog, wait_until, write_config
from tests.support.rsyslog import free_port

pytestmark = pytest.mark.integration

EVENTS = 50  # per file
Background = Callable[..., subprocess.Popen[bytes]]


class Scraper:
    """Reads the forwarder's /metrics, /healthz and /readyz over HTTP."""

    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.process = process
        wait_until(self._answers, "the metrics endpoint")
        # The endpoint listens before the pipeline starts; its series come when it does.
        wait_until(lambda: "forwarder_events_sent_total" in self.metrics(), "the pipeline's series")

    def _answers(self) -> bool:
        assert self.process.poll() is None, "the forwarder exited"
        try:
            return self.get("/healthz") == (200, "ok\n")
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metrics(self, pipeline: str = "default") -> dict[str, float]:
        """Every sample of *pipeline*, keyed ``name`` or ``name{label="value",...}`` (its
        ``pipeline`` label left out)."""
        status, text = self.get("/metrics")
        assert status == 200
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("pipeline") != pipeline:
                    continue
                others = {k: v for k, v in sample.labels.items() if k != "pipeline"}
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(others.items()))
                values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return values

    def ready(self, pipeline: str = "default") -> tuple[bool, dict[str, Any]]:
        """(/readyz says ready, *pipeline*'s checks); before *pipeline* has started, its
        checks are empty and /readyz says not ready."""
        status, body = self.get("/readyz")
        assert status in (200, 503), (status, body)
        data: dict[str, Any] = json.loads(body)
        assert data["ready"] is (status == 200)
        if pipeline not in data["pipelines"]:
            assert status == 503, body
            return False, {}
        return status == 200, data["pipelines"][pipeline]["checks"]


def _metrics_config(tmp_path: Path, s3: Any, port: int, collector_port: int, **sections: Any) -> Path:
    metrics = {"listen": f"127.0.0.1:{port}", "probe_interval_secs": 0.2, **sections.pop("metrics", {})}
    return write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": collector_port},
        metrics=metrics,
        **sections,
    )


def _put_file(client: Any, sequence: int, lines: list[bytes]) -> str:
    key = exporter_key(PREFIX, sequence)
    client.put_object(Bucket=BUCKET, Key=key, Body=make_zip([("events.log", b"\n".join(lines))], PASSWORD))
    return key


def _modified(client: Any) -> dict[str, float]:
    """S3 LastModified of every key, as the forwarder's listing sees it."""
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)
    return {item["Key"]: item["LastModified"].timestamp() for item in listing.get("Contents", [])}


def test_metrics_and_readiness_follow_a_run_and_a_collector_outage(
    s3: Any, collector: Any, tmp_path: Path, background: Background
) -> None:
    """Events sent, bytes, files and lag match what the collector got; /readyz follows the collector."""
    client = s3.client()
    backlog = plain_backlog(client, [1, 2, 3, 4], events=EVENTS)
    total = len(backlog.events)
    rsyslog = collector("tcp")
    port = free_port("tcp")
    config = _metrics_config(tmp_path, s3, port, rsyslog.port, batch={"max_events": 20})
    scrape = Scraper(port, background("run", "--config", str(config)))
    up = f'forwarder_collector_up{{collector="tcp://127.0.0.1:{rsyslog.port}"}}'

    def delivered(count: int, sequence: int) -> Callable[[], bool]:
        def check() -> bool:  # the checkpoint follows at the end of the pass (checkpoint.interval_secs)
            values = scrape.metrics()
            return (
                len(rsyslog.messages()) == count
                and values["forwarder_events_sent_total"] == count
                and values["forwarder_files_pending"] == 0
                and values["forwarder_checkpoint_sequence"] == sequence
            )

        return check

    wait_until(delivered(total, 4), "the backlog to arrive")
    received = rsyslog.messages()
    values = scrape.metrics()
    assert values["forwarder_events_sent_total"] == len(received) == total
    assert values["forwarder_events_read_total"] == total
    assert values["forwarder_bytes_sent_total"] == sum(len(m) for m in received)
    assert values["forwarder_events_failed_total"] == 0
    assert values["forwarder_files_done_total"] == 4
    assert values["forwarder_batch_ack_seconds_count"] == 4 * 3  # 50 events in batches of 20, 20, 10
    assert values["forwarder_checkpoint_sequence"] == 4 and values["forwarder_checkpoint_complete"] == 1
    newest = _modified(client)[backlog.keys[-1]]
    assert values["forwarder_newest_file_timestamp_seconds"] == newest
    assert values["forwarder_delivered_file_timestamp_seconds"] == newest
    assert values["forwarder_lag_seconds"] == 0
    assert values[up] == 1 and values["forwarder_bucket_up"] == 1 and values["forwarder_ready"] == 1
    assert scrape.ready()[0]

    # The collector stops while the forwarder is idle: the idle check notices.
    rsyslog.stop()
    wait_until(lambda: not scrape.ready()[0], "/readyz to turn unready")
    ready, checks = scrape.ready()
    assert checks["collector"]["ok"] is False and "connection refused" in checks["collector"]["detail"]
    assert checks["bucket"]["ok"] is True and checks["stuck"]["ok"] is True
    assert scrape.metrics()[up] == 0

    # A new file while the collector is down: it waits, and the lag is its time minus file 4's.
    while time.time() < newest + 1.05:  # S3 times have whole seconds: make file 5's later
        time.sleep(0.05)
    key = _put_file(client, 5, [cef_event(500_000 + i).encode() for i in range(EVENTS)])
    lag = _modified(client)[key] - newest
    assert lag >= 1
    wait_until(
        lambda: (
            (v := scrape.metrics())["forwarder_files_pending"] == 1
            and v["forwarder_lag_seconds"] == lag
            and v["forwarder_events_failed_total"] > 0
        ),
        "the new file to wait, with its lag",
    )
    assert not scrape.ready()[0]

    rsyslog.start()
    wait_until(delivered(total + EVENTS, 5), "the new file to arrive")
    wait_until(lambda: scrape.ready()[0], "/readyz to be ready again")
    values = scrape.metrics()
    assert values["forwarder_events_sent_total"] == len(rsyslog.messages()) == total + EVENTS
    assert values["forwarder_lag_seconds"] == 0 and values[up] == 1
    assert values["forwarder_checkpoint_sequence"] == 5 and values["forwarder_files_done_total"] == 5


def test_readyz_turns_unready_when_stuck_on_a_bad_file(
    s3: Any, collector: Any, tmp_path: Path, background: Background
) -> None:
    """A file that cannot be read holds the pipeline (on_bad_file: stop): unready after stuck_after_secs."""
    client = s3.client()
    plain_backlog(client, [1], events=5)
    bad_key = exporter_key(PREFIX, 2)
    client.put_object(Bucket=BUCKET, Key=bad_key, Body=b"PK\x03\x04 not really a zip")
    rsyslog = collector("tcp")
    port = free_port("tcp")
    config = _metrics_config(
        tmp_path, s3, port, rsyslog.port, source={"max_attempts": 1}, metrics={"stuck_after_secs": 1}
    )
    scrape = Scraper(port, background("run", "--config", str(config)))
    wait_until(
        lambda: not scrape.ready()[1].get("stuck", {"ok": True})["ok"], "/readyz to report the stuck file"
    )
    ready, checks = scrape.ready()
    assert not ready
    assert bad_key in checks["stuck"]["detail"]
    assert checks["bucket"]["ok"] is True and checks["collector"]["ok"] is True
    values = scrape.metrics()
    assert values["forwarder_stuck_seconds"] > 1
    assert values["forwarder_checkpoint_sequence"] == 1 and values["forwarder_files_pending"] == 1

    _put_file(client, 2, [cef_event(7).encode()])  # the object is replaced: it goes through
    wait_until(lambda: scrape.ready()[0], "/readyz to be ready again")
    # Ready once the object reads; the checkpoint follows once its events are acknowledged.
    wait_until(lambda: scrape.metrics()["forwarder_checkpoint_sequence"] == 2, "the checkpoint to pass it")
    assert scrape.metrics()["forwarder_stuck_seconds"] == 0
    assert len(rsyslog.wait_for(6)) == 6


def test_metrics_count_gaps_quarantined_files_and_bad_records(
    s3: Any, collector: Any, tmp_path: Path, background: Background
) -> None:
    """Gaps, quarantined files and bad records are counted as they happened (read = sent + bad),
    also across a SIGHUP reload."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    good = [cef_event(i).encode() for i in range(10)]
    _put_file(client, 1, good[:5] + [b"not an event", b"neither { this"] + good[5:])
    _put_file(client, 3, good)  # file 2 missing: a gap
    client.put_object(Bucket=BUCKET, Key=exporter_key(PREFIX, 4), Body=b"PK\x03\x04 cut short")
    _put_file(client, 5, good)
    rsyslog = collector("tcp")
    port = free_port("tcp")
    config = _metrics_config(
        tmp_path, s3, port, rsyslog.port, source={"max_attempts": 1, "on_bad_file": "quarantine"}
    )
    scrape = Scraper(port, background("run", "--config", str(config)))
    wait_until(
        lambda: (
            (v := scrape.metrics())["forwarder_checkpoint_sequence"] == 5
            and v["forwarder_checkpoint_complete"] == 1
        ),
        "the last file",
    )
    values = scrape.metrics()
    assert len(rsyslog.wait_for(30)) == 30 == values["forwarder_events_sent_total"]
    assert values["forwarder_gaps_total"] == 1 and values["forwarder_files_missing_total"] == 1
    assert values["forwarder_files_quarantined_total"] == 1
    assert values['forwarder_events_dead_lettered_total{reason="bad_record"}'] == 2
    assert values['forwarder_events_dead_lettered_total{reason="too_big"}'] == 0
    assert values["forwarder_events_read_total"] == 32
    assert values["forwarder_files_done_total"] == 3
    assert scrape.ready()[0]

    # SIGHUP rebuilds the pipeline: the same endpoint goes on counting.
    scrape.process.send_signal(signal.SIGHUP)
    log = tmp_path / "forwarder.log"
    wait_until(lambda: "configuration and credentials reloaded" in log.read_text(), "the reload")
    _put_file(client, 6, good)
    wait_until(lambda: scrape.metrics()["forwarder_checkpoint_sequence"] == 6, "file 6")
    wait_until(lambda: scrape.metrics()["forwarder_files_done_total"] == 4, "file 6 counted")
    assert len(rsyslog.wait_for(40)) == 40 == scrape.metrics()["forwarder_events_sent_total"]


TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def test_log_lines_are_json_with_the_documented_fields(s3: Any, collector: Any, tmp_path: Path) -> None:
    """Every log line is one JSON object with time, level, logger, message, and the documented extras."""
    client = s3.client()
    plain_backlog(client, list(range(1, 13)), events=EVENTS)
    _put_file(client, 14, [cef_event(1).encode(), b"garbage line"])  # a gap (13) and a bad record
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        batch={"max_events": 10},
        log={"progress_interval_secs": 0.001},
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line, not just some
    for line in lines:
        assert TIME.match(line["time"]) and line["level"] in LEVELS, line
        assert line["logger"].startswith("forwarder") and isinstance(line["message"], str), line
    delivered = [line for line in lines if line["message"].endswith("records)")]
    assert len(delivered) == 13 and all({"key", "records"} <= line.keys() for line in delivered)
    bad = [line for line in lines if "record skipped" in line["message"]]
    assert len(bad) == 1 and bad[0]["line"] == 2 and bad[0]["member"] == "events.log"
    assert any(line["message"].startswith("GAP: file 13 missing") for line in lines)
    progress = [line for line in lines if line["message"].startswith("backlog: ")]
    assert progress, "no progress line during the backlog"
    for line in progress:
        assert line["files_remaining"] >= 1 and line["events_per_sec"] >= 0
        assert {"events_remaining", "eta_secs", "lag_secs"} <= line.keys()
    assert any(line["message"].startswith("caught up: ") for line in lines)


SECRETS = {
    "secret_access_key": "S3CRET-access-9f8e7d6c5b",
    "session_token": "S3CRET-token-1a2b3c4d5e",
}


def _forms(secret: str) -> list[str]:
    """The secret as written, and as a JSON string would carry it."""
    return [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]


def test_secrets_never_appear_in_logs_or_check(s3: Any, collector: Any, tmp_path: Path) -> None:
    """Secrets written in a readable config: one warning; never in `check` output or any log line."""
    plain_backlog(s3.client(), [1, 2], events=5)
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source=SECRETS,  # and zip_password: the backlog's (non-ASCII) password
        log={"level": "debug"},
    )
    config.chmod(0o644)
    secrets = [*SECRETS.values(), PASSWORD]

    check = forwarder("check", "--config", str(config))
    run = forwarder("run", "--config", str(config), "--once")
    assert check.returncode == 0 and run.returncode == 0, (check, run)
    assert len(rsyslog.wait_for(10)) == 10
    for output in (check.stdout, check.stderr, run.stdout, run.stderr):
        for secret in secrets:
            for form in _forms(secret):
                assert form not in output
    effective = check.stdout.split("effective config (defaults filled in, secrets masked):\n")[1]
    for key in ("secret_access_key", "session_token", "zip_password"):
        assert f"  {key}: '***'\n" in effective
    assert "  access_key_id: testing\n" in effective  # not a secret: shown
    for stderr in (check.stderr, run.stderr):
        warnings = [json.loads(line) for line in stderr.splitlines() if '"WARNING"' in line]
        assert [w["message"] for w in warnings] == [
            f"{config} holds source.secret_access_key, source.session_token, source.zip_password and may "
            "be read by others (mode 644): chmod 600 it, or give the secret as ${VAR} from the environment"
        ]
