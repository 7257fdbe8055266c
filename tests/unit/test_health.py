"""Unit tests for forwarder.observe.health and .endpoint: readiness from each pipeline's outcomes,
and the HTTP endpoint."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from forwarder.core.checkpoint import Failure
from forwarder.errors import ConfigError, FetchError
from forwarder.observe.endpoint import Endpoint, readiness
from forwarder.observe.health import Health
from forwarder.sources.base import LogObject
from tests.support.clock import Clock


def make_health(stuck_after: float = 600) -> tuple[Health, Clock, Clock]:
    clock, wall = Clock(100.0), Clock(1_795_000_000.0)
    return Health(stuck_after, 5.0, clock, wall), clock, wall


def test_not_ready_until_collector_and_bucket_answered() -> None:
    """At start nothing is known: not ready until a send (or probe) and a poll have worked."""
    health, _, _ = make_health()
    assert not health.ready()
    assert health.checks()["collector"].ok is None and health.checks()["bucket"].ok is None
    health.pass_done()
    health.sent("tcp://c:514", 10, 100, 0.001)
    assert health.ready()


def test_collector_follows_sends_and_probes() -> None:
    """A failed batch or probe makes the collector unreachable; a success makes it reachable."""
    health, _, _ = make_health()
    health.pass_done()
    health.send_failed("tcp://c:514", 10, "tcp://c:514: connection refused")
    assert not health.ready()
    assert health.checks()["collector"].detail == "tcp://c:514: connection refused"
    health.collector("tcp://c:514", True, "")
    assert health.ready() and health.collector_label == "tcp://c:514"


def test_probes_are_due_at_most_every_interval_and_sends_count_as_one() -> None:
    """The idle probe is due once per interval; a batch's outcome resets the interval."""
    health, clock, _ = make_health()
    assert health.probe_due()
    assert not health.probe_due()
    clock.now += 5
    assert health.probe_due()
    clock.now += 4
    health.sent("tcp://c:514", 1, 1, 0.001)
    clock.now += 4
    assert not health.probe_due()
    clock.now += 1
    assert health.probe_due()


def test_bucket_follows_listings_and_downloads() -> None:
    """A failed download or listing makes the bucket unreachable until one works again."""
    health, _, _ = make_health()
    health.fetched(None, FetchError("listing s3://b/p: AccessDenied"))
    assert health.checks()["bucket"].ok is False
    assert "AccessDenied" in health.checks()["bucket"].detail
    health.fetched(LogObject("p/CATO1.zip", 1, 10), None)
    assert health.checks()["bucket"].ok is True


def test_stuck_on_a_bad_file_turns_unready_after_the_threshold() -> None:
    """Held on a bad file: ready until stuck_after_secs from its first failure, then not; past it, ready."""
    health, _, wall = make_health(stuck_after=60)
    health.pass_done()
    health.sent("tcp://c:514", 1, 1, 0.001)
    since, start = "2026-11-18T07:06:40Z", 1_794_985_600  # the checkpoint's text, as epoch seconds
    health.bad_file(Failure("p/CATO7.zip", 1, "corrupt zip", since))
    wall.now = start + 30
    assert health.ready() and health.stuck_secs() == 30
    wall.now = start + 61
    health.bad_file(Failure("p/CATO7.zip", 2, "corrupt zip", since))  # a later attempt: same start
    check = health.checks()["stuck"]
    assert not check.ok and "held on p/CATO7.zip for 61s (2 failed attempts" in check.detail
    health.file_done(LogObject("p/CATO6.zip"), 1)  # another object: not past it yet
    assert not health.ready()
    health.quarantined(LogObject("p/CATO7.zip"))  # quarantined (or delivered: file_done)
    assert health.ready() and health.stuck_secs() == 0


def test_a_pipeline_stopped_on_an_error_is_not_ready() -> None:
    """A pipeline that stopped for good (a corrupt checkpoint...) says so, and is not ready."""
    health, _, _ = make_health()
    health.pass_done()
    health.sent("tcp://c:514", 1, 1, 0.001)
    health.stopped("cp.json: the checkpoint is corrupt")
    assert not health.ready()
    assert health.checks()["running"].detail == "stopped: cp.json: the checkpoint is corrupt"


def test_readiness_is_every_pipelines_and_names_those_not_ready() -> None:
    """/readyz is ready only when every pipeline is; the body gives each pipeline's checks."""
    good, _, _ = make_health()
    good.pass_done()
    good.sent("tcp://c:514", 1, 1, 0.001)
    bad, _, _ = make_health()
    bad.pass_done()
    bad.send_failed("tcp://d:514", 1, "tcp://d:514: connection refused")
    body = readiness({"acme": good, "beta": bad})
    assert body["ready"] is False and body["not_ready"] == ["beta"]
    assert body["pipelines"]["acme"]["ready"] is True
    assert body["pipelines"]["beta"]["checks"]["collector"] == {
        "ok": False,
        "detail": "tcp://d:514: connection refused",
    }
    assert readiness({"acme": good})["ready"] is True
    assert readiness({})["ready"] is False  # no pipeline running: nothing is forwarded


@pytest.fixture
def endpoint() -> Iterator[tuple[Endpoint, Health]]:
    registry = CollectorRegistry()
    Counter("forwarder_test_total", "A test counter.", registry=registry).inc(3)
    health, _, _ = make_health()
    server = Endpoint("127.0.0.1", 0, registry, lambda: readiness({"default": health}))
    yield server, health
    server.close()


def get(server: Endpoint, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_endpoint_serves_metrics_healthz_and_readyz(endpoint: tuple[Endpoint, Health]) -> None:
    """/metrics is Prometheus text, /healthz is ok, /readyz is 503 then 200 with the checks as JSON."""
    server, health = endpoint
    status, kind, body = get(server, "/metrics")
    assert status == 200 and kind.startswith("text/plain; version=")
    assert "forwarder_test_total 3.0" in body
    assert get(server, "/healthz")[::2] == (200, "ok\n")
    status, kind, body = get(server, "/readyz")
    assert status == 503 and kind == "application/json"
    checks = json.loads(body)["pipelines"]["default"]["checks"]
    assert checks["bucket"] == {"ok": None, "detail": "not listed yet"}
    health.pass_done()
    health.sent("tcp://c:514", 1, 1, 0.001)
    status, _, body = get(server, "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    assert get(server, "/nothing")[0] == 404


def test_endpoint_port_in_use_is_a_config_error(endpoint: tuple[Endpoint, Health]) -> None:
    """A port already taken is one line naming metrics.listen."""
    server, health = endpoint
    with pytest.raises(ConfigError, match=rf"^metrics.listen: cannot listen on 127.0.0.1:{server.port}: "):
        Endpoint("127.0.0.1", server.port, CollectorRegistry(), lambda: readiness({"default": health}))
