"""source.kind events_feed end to end: the forwarder as a process, the local Cato API stand-in
(pages of 3,000, errors inside HTTP 200, rate limits, marker expiry) and a real rsyslog."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.support.apisource import numbered
from tests.support.backlog import bodies, forwarder, one_error, wait_until
from tests.support.cato_api import DAY, DEFAULT_ACCOUNT, DEFAULT_API_KEY, CatoApiServer
from tests.support.rsyslog import free_port

pytestmark = pytest.mark.integration

Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def api() -> Iterator[CatoApiServer]:
    with CatoApiServer() as server:
        yield server


def write(tmp_path: Path, api: CatoApiServer, output: dict[str, Any], **source: Any) -> Path:
    """A config reading *api* with the default key and account to *output*."""
    config = {
        "source": {
            "kind": "events_feed",
            "api_key": DEFAULT_API_KEY,
            "account_ids": [DEFAULT_ACCOUNT],
            "endpoint": api.url,
            "ca_file": str(api.ca_file),
            "poll_interval_secs": 0.5,
            **source,
        },
        "output": {"hostname": "fwd-test", "encoding": "json", "retry_initial_secs": 0.1,
                   "retry_max_secs": 0.5, **output},
        "checkpoint": {"path": str(tmp_path / "state" / "checkpoint.json")},
        "batch": {"max_events": 500},
        "log": {"format": "json"},
    }  # fmt: skip
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path


def event_ids(messages: list[bytes]) -> list[str]:
    return [str(orjson.loads(body)["event_id"]) for body in bodies(messages)]


def expected(first: int, count: int) -> list[str]:
    return [f"{DEFAULT_ACCOUNT}-{n}" for n in range(first, first + count)]


def cursor(tmp_path: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    return state


def baseline(config: Path) -> None:
    """The first run: the baseline marker (start: latest), nothing to send yet."""
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr


def test_every_event_once_in_order_across_kill_9s(
    api: CatoApiServer, collector: Any, tmp_path: Path, background: Start
) -> None:
    """kill -9 twice mid-backlog (pages of 3,000): every event arrives in order, the only repeats
    are the batch in flight at each kill, and no checkpoint ever held an empty marker."""
    rsyslog = collector("tcp")
    config = write(tmp_path, api, {"protocol": "tcp", "port": rsyslog.port, "max_events_per_sec": 4000})
    baseline(config)
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 12_000))
    for kill in (1, 2):
        process = background("run", "--config", str(config))
        wait_until(lambda k=kill: len(rsyslog.messages()) >= k * 4500, f"events before kill {kill}")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert cursor(tmp_path)["cursor"]["marker"]
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: len(set(rsyslog.messages())) >= 12_000, "every event")
    time.sleep(0.3)
    received = event_ids(rsyslog.messages())
    assert list(dict.fromkeys(received)) == expected(0, 12_000)
    assert len(received) - 12_000 <= 2 * 500
    assert cursor(tmp_path)["cursor"]["marker"] and "" in api.markers_for("eventsFeed")


def test_every_event_once_in_order_across_collector_outages(
    api: CatoApiServer, collector: Any, tmp_path: Path, background: Start
) -> None:
    """RELP collector killed twice mid-backlog: every event arrives, in order, and the checkpoint
    never covers more than the collector answered for."""
    rsyslog = collector("relp")
    output = {"protocol": "relp", "port": rsyslog.port, "max_events_per_sec": 3000}
    config = write(tmp_path, api, output)
    baseline(config)
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 9000))
    process = background("run", "--config", str(config))
    for outage in (1, 2):
        wait_until(lambda o=outage: len(rsyslog.messages()) >= o * 3000, f"events before outage {outage}")
        rsyslog.kill()
        time.sleep(1.0)
        rsyslog.start()
    wait_until(lambda: len(set(rsyslog.messages())) >= 9000, "every event")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    received = event_ids(rsyslog.messages())
    assert list(dict.fromkeys(received)) == expected(0, 9000)


def test_full_pages_drain_at_once_and_a_rate_limited_account_keeps_its_pace(
    collector: Any, tmp_path: Path, background: Start
) -> None:
    """Ten full pages with a 30 s poll interval drain in seconds (no sleep after a page); with
    another key spending the account's allowance the forwarder is refused, backs off and still
    keeps close to the pace the allowance leaves, losing nothing."""
    with CatoApiServer(rate_limits={"eventsFeed": 4}, rate_window_secs=3) as api:
        rsyslog = collector("tcp")
        config = write(tmp_path, api, {"protocol": "tcp", "port": rsyslog.port}, poll_interval_secs=30)
        baseline(config)
        api.add_events(DEFAULT_ACCOUNT, numbered(0, 30_000))
        api.add_key("other-tool", [DEFAULT_ACCOUNT])
        for _ in range(4):  # another tool of the account spends this window's allowance
            api.query(
                'query { eventsFeed(accountIDs: [12345], marker: "") { marker } }', api_key="other-tool"
            )
        started = time.monotonic()
        process = background("run", "--config", str(config))
        wait_until(lambda: len(rsyslog.messages()) >= 30_000, "every event", timeout=90)
        elapsed = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert event_ids(rsyslog.messages()) == expected(0, 30_000)
        # 11 calls at 4 per 3 s take >= 7.5 s; a fixed 30 s sleep per page would take minutes
        assert api.rate_limited[(DEFAULT_ACCOUNT, "eventsFeed")] >= 1 and elapsed < 45
        log = (tmp_path / "forwarder.log").read_text()
        assert "is rate limited" in log


def test_a_bad_key_is_one_line(api: CatoApiServer, tmp_path: Path) -> None:
    """A key Cato refuses: exit 4 and one error line saying to update source.api_key, the key not shown."""
    config = write(tmp_path, api, {"protocol": "stdout"}, api_key="wrong-key-1234")
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 4
    line = one_error(result)
    assert "the API key was refused (permission denied): update source.api_key" in line
    assert "wrong-key-1234" not in result.stderr + result.stdout


def test_an_expired_marker_is_a_gap_status_shows(api: CatoApiServer, collector: Any, tmp_path: Path) -> None:
    """Four days away: the next run logs the gap, status lists it, and the new events flow."""
    rsyslog = collector("tcp")
    config = write(tmp_path, api, {"protocol": "tcp", "port": rsyslog.port})
    baseline(config)
    api.add_events(DEFAULT_ACCOUNT, numbered(0, 5))
    api.clock.advance(4 * DAY)
    api.add_events(DEFAULT_ACCOUNT, numbered(5, 5))
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert "GAP: events queued from" in result.stderr
    api.add_events(DEFAULT_ACCOUNT, numbered(10, 5))
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    assert event_ids(rsyslog.wait_for(5)) == expected(10, 5)
    status = forwarder("status", "--config", str(config))
    assert "gaps:         1" in status.stdout and "events queued from" in status.stdout


def test_readyz_turns_unready_and_the_log_warns_before_the_marker_expires(
    api: CatoApiServer, tmp_path: Path, background: Start
) -> None:
    """The key revoked while running: after source.marker_max_age_secs /readyz answers 503 naming
    the api check, and the log says loudly how long the API has been silent."""
    port = free_port("tcp")
    config = write(tmp_path, api, {"protocol": "stdout"}, marker_max_age_secs=2, poll_interval_secs=0.5)
    text = yaml.safe_load(config.read_text())
    text["metrics"] = {"listen": f"127.0.0.1:{port}"}
    config.write_text(yaml.safe_dump(text))
    process = background("run", "--config", str(config))

    def readyz() -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return 0, {}

    wait_until(lambda: readyz()[0] == 200, "ready")
    api.revoke_key(DEFAULT_API_KEY)

    def api_check() -> dict[str, Any]:
        status, body = readyz()
        check: dict[str, Any] = body["pipelines"]["default"]["checks"]["api"] if status == 503 else {}
        return check

    wait_until(lambda: api_check().get("ok") is False, "the api check failing", timeout=30)
    assert "marker_max_age_secs: 2s" in api_check()["detail"]
    wait_until(
        lambda: "has not answered successfully for" in (tmp_path / "forwarder.log").read_text(), "warning"
    )
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
