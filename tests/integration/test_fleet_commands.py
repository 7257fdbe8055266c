"""The commands in a fleet (moto S3): ``run --once`` forwards the pipelines no forwarder holds,
``import-state`` seeds a free pipeline's checkpoint in S3 and refuses a held one, ``status``
shows owners and lease ages, ``check`` proves the store's conditional writes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from forwarder.compose import coordination_objects
from forwarder.config import S3Coordination
from forwarder.coordination.coordinator import Coordinator
from tests.support.backlog import BUCKET, PASSWORD, forwarder, plain_backlog

pytestmark = pytest.mark.integration

STATE = "fleet-state"


def write(tmp_path: Path, endpoint: str, names: list[str]) -> Path:
    access = {"endpoint_url": endpoint, "access_key_id": "testing", "secret_access_key": "testing"}
    config = {
        "defaults": {
            "source": {"bucket": BUCKET, "prefix": "{pipeline}/", "zip_password": PASSWORD, **access},
            "output": {"protocol": "file", "path": str(tmp_path / "{pipeline}.out")},
        },
        "pipelines": [{"name": n} for n in names],
        "coordination": {"kind": "s3", "bucket": STATE, "prefix": "fleet/", "lease_secs": 30, **access},
        "log": {"format": "json"},
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def holder(s3: Any) -> Any:
    """A forwarder of the fleet (in this process) holding the lease of pipeline "held"."""
    s3.client().create_bucket(Bucket=STATE)
    settings = S3Coordination(
        bucket=STATE, prefix="fleet/", endpoint_url=s3.endpoint_url, access_key_id="testing",
        secret_access_key="testing", lease_secs=30.0,
    )  # fmt: skip
    running = Coordinator(settings, ["held"], coordination_objects(settings), "fwd-running")
    running.round()
    assert set(running.wanted()) == {"held"}
    yield running
    running.close()


def test_run_once_forwards_the_pipelines_nobody_holds(s3: Any, holder: Any, tmp_path: Path) -> None:
    """--once takes every free lease, forwards, releases; a held pipeline is named and left alone."""
    client = s3.client()
    free = plain_backlog(client, [1, 2], 5, "free/")
    plain_backlog(client, [1], 5, "held/")
    config = write(tmp_path, s3.endpoint_url, ["free", "held"])
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "free.out").read_bytes().splitlines() == free.events
    assert not (tmp_path / "held.out").exists()
    assert "pipeline held: its lease is held by another forwarder; not run here" in result.stderr
    leases = [o["Key"] for o in client.list_objects_v2(Bucket=STATE, Prefix="fleet/leases/")["Contents"]]
    assert leases == ["fleet/leases/held.json"]  # free's was released at the end
    saved = json.loads(client.get_object(Bucket=STATE, Key="fleet/state/free/checkpoint.json")["Body"].read())
    assert saved["cursor"]["sequence"] == 2 and saved["cursor"]["complete"] is True
    assert saved["owner"] != "fwd-running" and saved["epoch"] == 1


def test_import_state_seeds_a_free_pipeline_and_refuses_a_held_one(
    s3: Any, holder: Any, tmp_path: Path
) -> None:
    """The vendor's storage file becomes the free pipeline's checkpoint in S3; for a pipeline a
    running forwarder holds, exit 2 and one line saying so."""
    client = s3.client()
    plain_backlog(client, [1], 5, "free/")
    config = write(tmp_path, s3.endpoint_url, ["free", "held"])
    storage = tmp_path / "storage"
    storage.write_text("7006\n0\n")
    result = forwarder("import-state", "--config", str(config), "--pipeline", "free", str(storage))
    assert result.returncode == 0, result.stderr
    saved = json.loads(client.get_object(Bucket=STATE, Key="fleet/state/free/checkpoint.json")["Body"].read())
    assert saved["cursor"]["sequence"] == 7006 and saved["cursor"]["complete"] is True
    refused = forwarder("import-state", "--config", str(config), "--pipeline", "held", str(storage))
    assert refused.returncode == 2
    assert "import-state: pipeline held is held by a running forwarder of the fleet" in refused.stderr


def test_status_and_check_show_the_fleet(s3: Any, holder: Any, tmp_path: Path) -> None:
    """status names each pipeline's holder and its lease's age (or none), and the forwarders
    running; check proves the conditional writes and reads the checkpoints in S3."""
    plain_backlog(s3.client(), [1], 5, "free/")
    plain_backlog(s3.client(), [1], 5, "held/")
    config = write(tmp_path, s3.endpoint_url, ["free", "held"])
    time.sleep(1.1)  # a lease age of at least a second
    result = forwarder("status", "--config", str(config))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "fleet:        s3://fleet-state/fleet/: 1 forwarders: fwd-running (heartbeat" in text
    assert "owner:        none: no forwarder holds it (free to take)" in text
    assert "owner:        fwd-running (epoch 1), lease renewed " in text
    assert "checkpoint:   s3://fleet-state/fleet/state/held/checkpoint.json" in text
    shown = json.loads(forwarder("status", "--config", str(config), "--json").stdout)
    owners = {p["pipeline"]: p["owner"] for p in shown["pipelines"]}
    assert owners["free"] is None and owners["held"]["owner"] == "fwd-running"
    assert owners["held"]["age_secs"] >= 1 and owners["held"]["expired"] is False
    checked = forwarder("check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok   coordination: s3://fleet-state/fleet/: conditional writes enforced; forwarders running: " \
        "fwd-running" in checked.stdout  # fmt: skip
    assert (
        "ok   held checkpoint: s3://fleet-state/fleet/state/held/checkpoint.json: none yet" in checked.stdout
    )
