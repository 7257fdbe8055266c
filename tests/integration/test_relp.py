"""RELP to a real rsyslog imrelp: application-level acknowledgements, and what they buy."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.backlog import bodies, forwarder, one_error, plain_backlog, put_backlog, write_config
from tests.support.certs import mint_client_cert

pytestmark = pytest.mark.integration


def test_relp_delivers_every_event_once_in_order(s3: Any, collector: Any, tmp_path: Path) -> None:
    """protocol relp: every event of the backlog reaches imrelp byte for byte, once, in order."""
    backlog = put_backlog(s3.client(), [9999, 10000, 10001])
    rsyslog = collector("relp")
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "relp", "port": rsyslog.port},
                          batch={"max_events": 7})  # fmt: skip
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    time.sleep(0.3)
    assert len(rsyslog.messages()) == len(backlog.events)


def test_relp_collector_killed_mid_backlog_loses_nothing(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """kill -9 of the collector three times mid-backlog: every event arrives, and at each kill the
    checkpoint covers no more events than the collector had answered (and written)."""
    per_file = 200
    backlog = plain_backlog(s3.client(), list(range(1, 16)), events=per_file)
    rsyslog = collector("relp")
    output = {"protocol": "relp", "port": rsyslog.port, "max_events_per_sec": 1500}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": 100})
    process = background("run", "--config", str(config))
    for kill in range(3):
        deadline = time.monotonic() + 30
        while len(rsyslog.messages()) < (kill + 1) * 800 and time.monotonic() < deadline:
            time.sleep(0.02)
        rsyslog.kill()
        state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
        covered = (state["cursor"]["sequence"] - 1) * per_file + state["records"]
        assert covered <= len(set(rsyslog.messages())), "the checkpoint ran ahead of the answers"
        time.sleep(1.0)
        rsyslog.start()
    deadline = time.monotonic() + 60
    while len(set(rsyslog.messages())) < len(backlog.events) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    received = bodies(rsyslog.messages())
    assert set(received) == set(backlog.events), f"lost {len(set(backlog.events) - set(received))}"
    firsts = list(dict.fromkeys(received))
    assert firsts == backlog.events  # in order, repeats aside


def _relp_tls(s3: Any, tmp_path: Path, port: int, tls: dict[str, str]) -> subprocess.CompletedProcess[str]:
    output = {"protocol": "relp-tls", "host": "localhost", "port": port, "tls": tls}
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": 7})
    return forwarder("run", "--config", str(config), "--once")


def test_relp_over_tls_delivers_every_event_once_in_order(
    s3: Any, collector: Any, certs: Any, tmp_path: Path
) -> None:
    """protocol relp-tls to imrelp with tls="on" (openssl, server certificate only): every event
    byte for byte, once, in order; a collector with a certificate we do not trust: one line."""
    backlog = put_backlog(s3.client(), [9999, 10000])
    rsyslog = collector("relp-tls", tls_driver="ossl")
    result = _relp_tls(s3, tmp_path, rsyslog.port, {"ca_file": str(certs.ca_file)})
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.assert_quiet(settle=0.3, count=len(backlog.events))) == backlog.events
    assert _relp_tls(s3, tmp_path, rsyslog.port, {"ca_file": str(certs.ca_file)}).returncode == 0
    time.sleep(0.3)
    assert len(rsyslog.messages()) == len(backlog.events)

    (tmp_path / "other").mkdir()
    untrusted = _relp_tls(s3, tmp_path / "other", rsyslog.port, {})  # the system CAs only
    assert untrusted.returncode == 4
    assert one_error(untrusted).startswith(f"relp-tls://localhost:{rsyslog.port}: TLS certificate rejected")


def test_relp_over_tls_with_a_client_certificate(s3: Any, collector: Any, certs: Any, tmp_path: Path) -> None:
    """imrelp asking for a client certificate (gnutls, tls.authMode certvalid): refused without
    one, with a line that says what to set; delivered with one."""
    backlog = plain_backlog(s3.client(), [1, 2], events=5)
    rsyslog = collector("relp-tls", tls_driver="gtls", tls_auth_mode="x509/certvalid")
    result = _relp_tls(s3, tmp_path, rsyslog.port, {"ca_file": str(certs.ca_file)})
    assert result.returncode == 4
    assert "client certificate (output.tls.cert_file)" in one_error(result)

    client = mint_client_cert(certs, tmp_path / "client")
    tls = {"ca_file": str(certs.ca_file), "cert_file": str(client.cert_file)}
    tls["key_file"] = str(client.key_file)
    result = _relp_tls(s3, tmp_path, rsyslog.port, tls)
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.wait_for(len(backlog.events))) == backlog.events
