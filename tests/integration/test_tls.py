"""TLS done right against a real rsyslog: names, CAs, expiry, mutual TLS, each failure one clear line."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.support.backlog import bodies, forwarder, one_error, plain_backlog, write_config
from tests.support.certs import mint_client_cert, mint_server_certs

pytestmark = pytest.mark.integration


def _run(s3: Any, tmp_path: Path, port: int, tls: dict[str, Any], host: str = "localhost") -> Any:
    config = write_config(tmp_path / "f.yaml", s3.endpoint_url,
                          {"protocol": "tls", "host": host, "port": port, "tls": tls})  # fmt: skip
    return forwarder("run", "--config", str(config), "--once")


def test_certificate_for_another_name_is_refused(s3: Any, collector: Any, certs: Any, tmp_path: Path) -> None:
    """The collector's certificate is for localhost/127.0.0.1, we expect another name: one line says so."""
    plain_backlog(s3.client(), [1], events=3)
    rsyslog = collector("tls")
    result = _run(
        s3, tmp_path, rsyslog.port, {"ca_file": str(certs.ca_file), "server_name": "siem.example.com"}
    )
    assert result.returncode == 4
    message = one_error(result)
    assert "TLS certificate rejected: it is not for the name 'siem.example.com'" in message
    assert "output.tls.server_name" in message
    assert rsyslog.messages() == []


def test_unknown_ca_is_refused(s3: Any, collector: Any, tmp_path: Path) -> None:
    """A CA file that did not sign the collector's certificate: 'a CA we do not trust'."""
    plain_backlog(s3.client(), [1], events=3)
    rsyslog = collector("tls")
    other = mint_server_certs(tmp_path / "other-ca")
    result = _run(s3, tmp_path, rsyslog.port, {"ca_file": str(other.ca_file)})
    assert result.returncode == 4
    assert "signed by a CA we do not trust (check output.tls.ca_file)" in one_error(result)


def test_expired_certificate_is_refused(s3: Any, collector: Any, tmp_path: Path) -> None:
    """The collector presents an expired certificate: 'has expired'."""
    plain_backlog(s3.client(), [1], events=3)
    ca = trustme.CA()
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    leaf = ca.issue_cert("localhost", not_before=past - datetime.timedelta(days=30), not_after=past)
    files = tmp_path / "expired"
    files.mkdir()
    ca.cert_pem.write_to_path(str(files / "ca.pem"))
    (files / "server.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files / "server.key"))
    rsyslog = collector("tls", tls_ca_file=files / "ca.pem", tls_cert_file=files / "server.pem",
                        tls_key_file=files / "server.key")  # fmt: skip
    result = _run(s3, tmp_path, rsyslog.port, {"ca_file": str(files / "ca.pem")})
    assert result.returncode == 4
    assert "certificate has expired" in one_error(result)


def test_mutual_tls(s3: Any, collector: Any, certs: Any, tmp_path: Path) -> None:
    """A collector that requires a client certificate: refused without one (one line), delivered with one."""
    backlog = plain_backlog(s3.client(), [1, 2], events=5)
    rsyslog = collector("tls", tls_auth_mode="x509/certvalid")
    result = _run(s3, tmp_path, rsyslog.port, {"ca_file": str(certs.ca_file)})
    assert result.returncode == 4
    message = one_error(result)
    assert "TLS" in message and "client certificate (output.tls.cert_file)" in message

    client = mint_client_cert(certs, tmp_path / "client")
    tls = {
        "ca_file": str(certs.ca_file),
        "cert_file": str(client.cert_file),
        "key_file": str(client.key_file),
    }
    result = _run(s3, tmp_path, rsyslog.port, tls)
    assert result.returncode == 0, result.stderr
    assert bodies(rsyslog.wait_for(len(backlog.events))) == backlog.events
    assert "delivered" in result.stderr  # the log is there...
    assert "closing with" not in result.stderr  # ...and gtls hung up cleanly: nothing to send again


def test_server_name_override_and_tls_1_3(s3: Any, collector: Any, certs: Any, tmp_path: Path) -> None:
    """Connecting by IP with tls.server_name set to the certificate's name, TLS 1.3 only: delivered."""
    backlog = plain_backlog(s3.client(), [1], events=5)
    rsyslog = collector("tls", tls_driver="ossl")  # this rsyslog's gtls driver offers TLS 1.2 only
    tls = {"ca_file": str(certs.ca_file), "server_name": "localhost", "min_version": "1.3"}
    result = _run(s3, tmp_path, rsyslog.port, tls, host="127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert "closing with" not in result.stderr  # ossl hung up cleanly: nothing left to send again
    assert bodies(rsyslog.wait_for(len(backlog.events))) == backlog.events
    time.sleep(0.2)
    assert len(rsyslog.messages()) == len(backlog.events)
