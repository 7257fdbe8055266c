"""Unit tests for a fleet's observing: /readyz per forwarder (its pipelines and coordination),
the per-forwarder metrics, and the coordination: section of the config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from forwarder.config import NoCoordination, S3Coordination, parse_config, secret_values
from forwarder.errors import ConfigError
from forwarder.observe.endpoint import readiness
from forwarder.observe.health import Health
from forwarder.observe.metrics import Metrics

SOURCE = "source: {bucket: b}\n"


def ready_health() -> Health:
    health = Health(600, 5)
    health.pass_done()
    health.sent("tcp://c:514", 1, 1, 0.001)
    return health


def test_a_forwarder_of_a_fleet_holding_nothing_is_ready_while_coordination_works() -> None:
    """In a fleet, no pipeline held is fine (ready); an unreachable coordination bucket is not."""
    body = readiness({}, (True, "s3://st/fleet/: 3 forwarders, holding 0 of 12 pipelines (share 4)"))
    assert body["ready"] is True and body["pipelines"] == {} and body["coordination"]["ok"] is True
    down = readiness({"acme": ready_health()}, (False, "s3://st/fleet/: EndpointConnectionError"))
    assert down["ready"] is False and down["not_ready"] == []
    assert down["coordination"] == {"ok": False, "detail": "s3://st/fleet/: EndpointConnectionError"}
    assert "coordination" not in readiness({"acme": ready_health()})  # alone: as before


def test_a_fleet_pipeline_not_ready_makes_its_forwarder_not_ready() -> None:
    """Coordination fine but a held pipeline's collector down: not ready, the pipeline named."""
    bad = Health(600, 5)
    bad.pass_done()
    bad.send_failed("tcp://c:514", 1, "connection refused")
    body = readiness({"acme": bad, "beta": ready_health()}, (True, "ok"))
    assert body["ready"] is False and body["not_ready"] == ["acme"]


def test_fleet_metrics_are_per_forwarder() -> None:
    """pipelines_owned and lease_renew_failures_total carry the forwarder's id, not a pipeline."""
    metrics = Metrics()
    fleet = metrics.fleet("fwd-a")
    text = generate_latest(metrics.registry).decode()
    assert 'forwarder_pipelines_owned{forwarder="fwd-a"} 0.0' in text
    fleet.held(4)
    fleet.renew_failed("acme")
    fleet.renew_failed("beta")
    text = generate_latest(metrics.registry).decode()
    assert 'forwarder_pipelines_owned{forwarder="fwd-a"} 4.0' in text
    assert 'forwarder_lease_renew_failures_total{forwarder="fwd-a"} 2.0' in text


def test_coordination_defaults_to_none() -> None:
    """Without coordination: the forwarder runs every pipeline alone."""
    assert parse_config(SOURCE, env={}).coordination == NoCoordination()


def test_coordination_s3_settings() -> None:
    """kind s3: the bucket's access like a source's; renew_secs defaults to a third of the lease;
    the prefix ends in "/"; secrets join the ones masked in the log."""
    config = parse_config(
        SOURCE + "coordination: {kind: s3, bucket: st, prefix: fleet, lease_secs: 12, secret_access_key: "
        "s3cr3t-key, access_key_id: AK, forwarder_id: '${FWD}'}\n",
        env={"FWD": "fwd-a"},
    )
    settings = config.coordination
    assert isinstance(settings, S3Coordination)
    assert (settings.bucket, settings.prefix, settings.renew_every) == ("st", "fleet/", 4)
    assert settings.grace_secs == 2
    assert settings.forwarder_id == "fwd-a" and "s3cr3t-key" in secret_values(config)


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ("bucket: st", "bucket: only applies to coordination.kind: s3, but kind is none"),
        ("kind: s3", "bucket: required key is missing"),
        ("kind: etcd", 'kind: expected one of none, s3, got "etcd"'),
        ("kind: s3, bucket: st, lease_secs: 0", "lease_secs: expected a number >= 1, got 0"),
        ("kind: s3, bucket: st, renew_secs: 20", "renew_secs: expected at most half of lease_secs (15)"),
        ("kind: s3, bucket: st, grace_secs: 0.5", "grace_secs: expected a number >= 1"),
        ("kind: s3, bucket: st, forwarder_id: 'a/b'", "forwarder_id: expected a name"),
        ("kind: s3, bucket: st, lease: 3", 'lease: unknown key (did you mean "lease_secs"?)'),
        ("kind: s3, bucket: st, external_id: x", "external_id: given without role_arn"),
    ],
)
def test_coordination_errors_name_the_key(section: str, error: str) -> None:
    """Each bad coordination setting is one line naming its key."""
    with pytest.raises(ConfigError) as caught:
        parse_config(SOURCE + f"coordination: {{{section}}}\n", env={})
    assert str(caught.value).startswith(f"coordination.{error}"), caught.value


def test_config_example_shows_the_coordination_defaults() -> None:
    """config.example.yaml: kind none as it is; its commented kind s3 keys, uncommented, load
    and are the defaults."""
    text = (Path(__file__).resolve().parents[2] / "config.example.yaml").read_text(encoding="utf-8")
    block = text.split("\ncoordination:\n", 1)[1]
    section = "\n".join(f"  {m[1]}" for m in re.finditer(r"(?m)^  # ([a-z_]+: .*)$", block))
    config = parse_config(SOURCE + "coordination:\n  kind: s3\n" + section + "\n", env={})
    defaults = S3Coordination(bucket="my-forwarder-state", prefix="fleet/")
    assert config.coordination == defaults
