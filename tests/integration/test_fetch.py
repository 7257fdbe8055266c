"""Fetching like the exporter, without losing a file: probe mode, gaps, bad files, credentials,
the vendor script's storage file, prefetch. Real moto S3 server (behind a recording proxy
where S3's own behaviour is needed) and a real rsyslog."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.backlog import (
    BUCKET,
    bodies,
    forwarder,
    forwarder_env,
    plain_backlog,
    status_of,
    wait_holding,
    wait_until,
    write_config,
)
from tests.support.s3proxy import S3Proxy

pytestmark = pytest.mark.integration

EVENTS = 20  # per file


def _log(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


# --- discovery: probe ------------------------------------------------------------------


def test_probe_forwards_a_backlog_anonymously_without_listing(
    s3: Any, s3proxy: S3Proxy, collector: Any, tmp_path: Path
) -> None:
    """With listing denied and no credentials at all, probe mode forwards every file, none listed."""
    client = s3.client()
    backlog = plain_backlog(client, list(range(7001, 7007)), events=EVENTS)
    anyone_may_read = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
    }
    client.put_bucket_policy(
        Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [anyone_may_read]})
    )
    s3proxy.deny_list = True
    s3proxy.missing_as_403 = True  # what S3 answers for a missing key without s3:ListBucket
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3proxy.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"discovery": "probe", "start": 7001, "access_key_id": "", "secret_access_key": ""},
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events
    assert s3proxy.listed() == []
    assert s3proxy.requests and {r.access_key for r in s3proxy.requests} == {""}  # all unsigned
    assert "anonymous (unsigned)" in result.stderr


def test_listing_denied_says_probe_exists(s3: Any, s3proxy: S3Proxy, collector: Any, tmp_path: Path) -> None:
    """discovery: list with ListBucket denied fails with one line that points to discovery: probe."""
    plain_backlog(s3.client(), [1], events=1)
    s3proxy.deny_list = True
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml", s3proxy.endpoint_url, {"protocol": "tcp", "port": rsyslog.port}
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 4
    errors = [line for line in _log(result.stderr) if line["level"] == "ERROR"]
    assert len(errors) == 1 and "AccessDenied" in errors[0]["message"]
    assert "set source.discovery: probe" in errors[0]["message"]


def test_probe_needs_a_start_number_when_it_cannot_list(
    s3: Any, s3proxy: S3Proxy, collector: Any, tmp_path: Path
) -> None:
    """Probe mode with start: earliest and listing denied: a config error saying what to set."""
    plain_backlog(s3.client(), [1], events=1)
    s3proxy.deny_list = True
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3proxy.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"discovery": "probe"},
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 2
    assert "source.start" in result.stderr and "import-state" in result.stderr


# --- gaps ------------------------------------------------------------------------------


@pytest.mark.parametrize("discovery", ["list", "probe"])
def test_retention_gap_is_reported_once_and_the_rest_flows(
    s3: Any, collector: Any, tmp_path: Path, discovery: str
) -> None:
    """Three files deleted mid-backlog: one warning naming 7004-7006, every other event, gap in status."""
    client = s3.client()
    sequences = list(range(7001, 7011))
    backlog = plain_backlog(client, sequences, events=EVENTS)
    for sequence in (7004, 7005, 7006):
        client.delete_object(Bucket=BUCKET, Key=backlog.keys[sequences.index(sequence)])
    expected = [e for i, e in enumerate(backlog.events) if sequences[i // EVENTS] not in (7004, 7005, 7006)]
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"discovery": discovery, "start": 7001},
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(expected))) == expected
    warnings = [line["message"] for line in _log(result.stderr) if line["level"] == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("GAP: files 7004-7006 missing")
    assert [(g["first"], g["last"]) for g in status_of(config)["gaps"]] == [(7004, 7006)]
    assert forwarder("run", "--config", str(config), "--once").returncode == 0  # reported once, not again
    assert len(status_of(config)["gaps"]) == 1


# --- bad files -------------------------------------------------------------------------


def _corrupt(client: Any, key: str) -> bytes:
    good: bytes = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.put_object(Bucket=BUCKET, Key=key, Body=good[: len(good) // 2])
    return good


def test_corrupt_zip_is_quarantined_and_the_rest_delivered(s3: Any, collector: Any, tmp_path: Path) -> None:
    """on_bad_file: quarantine: after max_attempts the corrupt file is recorded with why; the rest flows."""
    client = s3.client()
    backlog = plain_backlog(client, [1, 2, 3, 4], events=EVENTS)
    _corrupt(client, backlog.keys[1])
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"on_bad_file": "quarantine", "max_attempts": 3},
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    good = backlog.events[:EVENTS] + backlog.events[2 * EVENTS :]
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(good))) == good
    attempts = [line["message"] for line in _log(result.stderr) if backlog.keys[1] in line["message"]]
    assert [("attempt 1 of 3" in m, "attempt 2 of 3" in m, "attempt 3 of 3" in m) for m in attempts[:3]] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    quarantined = status_of(config)["quarantined"]
    assert [q["key"] for q in quarantined] == [backlog.keys[1]]
    assert "damaged" in quarantined[0]["reason"] or "zip" in quarantined[0]["reason"]
    lines = (tmp_path / "state" / "quarantine.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == [backlog.keys[1]]


def test_wrong_password_file_is_quarantined_with_its_reason(s3: Any, collector: Any, tmp_path: Path) -> None:
    """A file zipped with another password between good ones: quarantined as 'wrong zip password'."""
    from forwarder.samples import make_zip

    client = s3.client()
    backlog = plain_backlog(client, [1, 2, 3], events=EVENTS)
    client.put_object(
        Bucket=BUCKET,
        Key=backlog.keys[1],
        Body=make_zip([("e.log", b"CEF:0|x|y|1|2|3|4|\n")], password="another"),
    )
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"on_bad_file": "quarantine", "max_attempts": 2, "zip_password": ""},
    )
    # plain_backlog's zips have no password; the odd one has one the config does not know
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    good = backlog.events[:EVENTS] + backlog.events[2 * EVENTS :]
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(good))) == good
    assert "password" in status_of(config)["quarantined"][0]["reason"]


def test_corrupt_zip_under_stop_holds_the_position_until_replaced(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """on_bad_file: stop: the daemon stays on the corrupt file and says why; replaced, all arrive."""
    client = s3.client()
    backlog = plain_backlog(client, [1, 2, 3, 4], events=EVENTS)
    good = _corrupt(client, backlog.keys[1])
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"max_attempts": 2, "poll_interval_secs": 0.2},
    )
    process = background("run", "--config", str(config))

    status = wait_holding(config)
    assert len(rsyslog.messages()) == EVENTS  # file 1 only: nothing overtook file 2
    assert status["stuck_on"]["key"] == backlog.keys[1] and status["position"]["sequence"] == 1
    assert "on_bad_file: stop holds the position" in status["last_error"]["message"]
    client.put_object(Bucket=BUCKET, Key=backlog.keys[1], Body=good)
    rsyslog.wait_for(len(backlog.events))
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events
    assert status_of(config)["stuck_on"] is None


# --- credentials -----------------------------------------------------------------------


def _credentials(path: Path, key: str) -> None:
    path.write_text(f"[default]\naws_access_key_id = {key}\naws_secret_access_key = secret-{key}\n")


def test_rotated_credentials_file_is_picked_up_while_running(
    s3: Any,
    s3proxy: S3Proxy,
    collector: Any,
    tmp_path: Path,
    background: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """The old key is rejected: one line says so and how to fix it; the new file is read, no restart."""
    client = s3.client()
    first = plain_backlog(client, [1, 2], events=EVENTS)
    creds = tmp_path / "credentials"
    _credentials(creds, "OLDKEY")
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3proxy.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"access_key_id": "", "secret_access_key": "", "poll_interval_secs": 0.2},
    )
    process = background(
        "run", "--config", str(config), env=forwarder_env(AWS_SHARED_CREDENTIALS_FILE=str(creds))
    )
    rsyslog.wait_for(len(first.events))
    s3proxy.rejected_keys.add("OLDKEY")  # the key is rotated at AWS
    later = plain_backlog(client, [3, 4], events=EVENTS)
    log_file = tmp_path / "forwarder.log"
    wait_until(lambda: "InvalidAccessKeyId" in log_file.read_text(), "the rejected key to be reported")
    _credentials(creds, "NEWKEY")
    rsyslog.wait_for(len(first.events) + len(later.events))
    assert process.poll() is None  # no restart
    rejected = [line for line in _log(log_file.read_text()) if "InvalidAccessKeyId" in line["message"]]
    assert (
        "the access key was rejected" in rejected[0]["message"]
        and "credentials file" in rejected[0]["message"]
    )
    assert "secret-" not in log_file.read_text()
    assert (
        bodies(rsyslog.assert_quiet(settle=0.3, count=len(first.events) + len(later.events)))
        == first.events + later.events
    )
    assert {r.access_key for r in s3proxy.requests[-3:]} == {"NEWKEY"}


def test_sighup_reloads_the_config_with_new_keys(
    s3: Any,
    s3proxy: S3Proxy,
    collector: Any,
    tmp_path: Path,
    background: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """Keys in the config rotated: after SIGHUP the new ones are used, nothing lost, no restart."""
    client = s3.client()
    first = plain_backlog(client, [1], events=EVENTS)
    rsyslog = collector("tcp")
    output = {"protocol": "tcp", "port": rsyslog.port}
    config = write_config(
        tmp_path / "f.yaml",
        s3proxy.endpoint_url,
        output,
        source={"access_key_id": "KEY1", "poll_interval_secs": 0.2},
    )
    process = background("run", "--config", str(config))
    rsyslog.wait_for(len(first.events))
    s3proxy.rejected_keys.add("KEY1")
    data = yaml.safe_load(config.read_text())
    data["source"]["access_key_id"] = "KEY2"
    config.write_text(yaml.safe_dump(data))
    later = plain_backlog(client, [2], events=EVENTS)
    process.send_signal(signal.SIGHUP)
    rsyslog.wait_for(len(first.events) + len(later.events))
    assert "configuration and credentials reloaded" in (tmp_path / "forwarder.log").read_text()
    assert process.poll() is None
    assert (
        bodies(rsyslog.assert_quiet(settle=0.3, count=len(first.events) + len(later.events)))
        == first.events + later.events
    )


# --- switching over from the vendor script -----------------------------------------------


def test_import_of_the_vendor_storage_file(s3: Any, collector: Any, tmp_path: Path) -> None:
    """A storage file saying 7007: the first file sent is 7008, nothing before it."""
    backlog = plain_backlog(s3.client(), list(range(7005, 7011)), events=EVENTS)
    storage = tmp_path / "storage"
    storage.write_text("7007\n0\n")
    rsyslog = collector("tcp")
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port})
    imported = forwarder("import-state", "--config", str(config), str(storage))
    assert imported.returncode == 0, imported.stderr
    assert "The next file forwarded is 7008" in imported.stdout
    assert forwarder("import-state", "--config", str(config), str(storage)).returncode == 2  # no overwrite
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=3 * EVENTS)) == backlog.events[3 * EVENTS :]


# --- prefetch --------------------------------------------------------------------------


def test_next_files_download_while_one_is_sent(s3: Any, collector: Any, tmp_path: Path) -> None:
    """With prefetch, file n+1 is downloaded before file n is delivered (paced sending)."""
    backlog = plain_backlog(s3.client(), list(range(1, 7)), events=EVENTS)
    rsyslog = collector("tcp")
    config = write_config(
        tmp_path / "f.yaml",
        s3.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port, "max_events_per_sec": 200},
        source={"prefetch_files": 2},
        batch={"max_events": 5},
        log={"level": "debug"},
    )
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events
    order = [
        ("downloaded" if line["message"].startswith("downloaded") else "delivered", line.get("key"))
        for line in _log(result.stderr)
        if line["message"].startswith("downloaded") or line["message"].endswith("records)")
    ]
    for n in range(len(backlog.keys) - 1):
        assert order.index(("downloaded", backlog.keys[n + 1])) < order.index(("delivered", backlog.keys[n]))


def test_role_arn_is_assumed_with_the_external_id(
    s3: Any, s3proxy: S3Proxy, collector: Any, tmp_path: Path
) -> None:
    """With source.role_arn the forwarder's own key assumes the tenant's role (STS AssumeRole with
    the external ID and session name) and reads the bucket with the role's credentials."""
    backlog = plain_backlog(s3.client(), [1, 2], events=5)
    rsyslog = collector("tcp")
    role = "arn:aws:iam::123456789012:role/cato-acme"
    config = write_config(
        tmp_path / "f.yaml",
        s3proxy.endpoint_url,
        {"protocol": "tcp", "port": rsyslog.port},
        source={"role_arn": role, "external_id": "20000232", "role_session_name": "fwd-acme"},
    )
    result = forwarder(
        "run", "--once", "--config", str(config), env=forwarder_env(AWS_ENDPOINT_URL_STS=s3proxy.endpoint_url)
    )
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.assert_quiet(len(backlog.events))) == backlog.events
    [assume] = [r for r in s3proxy.requests if "Action=AssumeRole" in r.form]
    form = urllib.parse.parse_qs(assume.form)
    assert (
        form["RoleArn"] == [role]
        and form["ExternalId"] == ["20000232"]
        and form["RoleSessionName"] == ["fwd-acme"]
    )
    assert assume.access_key == "testing"  # the forwarder's own key asks
    reads = {r.access_key for r in s3proxy.requests if r.method == "GET"}
    assert reads and "testing" not in reads  # the bucket is read as the role
