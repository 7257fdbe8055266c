"""Fixtures for integration tests: a real S3 endpoint (moto server) and real rsyslog collectors.

* ``certs`` (session): a per-run CA and a server certificate for localhost/127.0.0.1
  (:class:`tests.support.certs.TlsFiles`).
* ``s3_server`` (session): one :class:`tests.support.s3.S3Server` (moto subprocess).
* ``s3`` (function): the same server, wiped with ``POST /moto-api/reset`` first.
* ``collector`` (function): a factory ``collector(protocol, **kw) -> Rsyslog`` that
  starts a private rsyslogd (``"udp"``, ``"tcp"`` or ``"tls"``; for ``"tls"`` the
  ``certs`` files are used unless ``tls_*_file`` are given). Every collector it
  started is stopped at teardown.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # make ``tests.support`` importable under any rootdir/import mode
    sys.path.insert(0, str(_ROOT))

from tests.support.backlog import start_forwarder  # noqa: E402
from tests.support.certs import TlsFiles, mint_server_certs  # noqa: E402
from tests.support.rsyslog import CollectorFactory, Rsyslog  # noqa: E402
from tests.support.s3 import S3Server  # noqa: E402
from tests.support.s3proxy import S3Proxy  # noqa: E402


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA and a localhost/127.0.0.1 server certificate, minted once per run."""
    return mint_server_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server for the whole session (prefer the function-scoped ``s3``)."""
    server = S3Server(log_file=tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """The session's moto S3 server, with all state wiped before the test."""
    s3_server.reset()
    return s3_server


@pytest.fixture
def collector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CollectorFactory]:
    """Factory: ``collector(protocol, **kw)`` starts a private rsyslogd and returns it."""
    started: list[Rsyslog] = []

    def make(protocol: str, **kw: Any) -> Rsyslog:
        if protocol in ("tls", "relp-tls"):
            tls: TlsFiles = request.getfixturevalue("certs")
            kw.setdefault("tls_ca_file", tls.ca_file)
            kw.setdefault("tls_cert_file", tls.cert_file)
            kw.setdefault("tls_key_file", tls.key_file)
        workdir = tmp_path / f"collector-{len(started)}-{protocol}"
        instance = Rsyslog(workdir, protocol, **kw)
        started.append(instance)
        instance.start()
        return instance

    yield make
    errors: list[BaseException] = []
    for instance in reversed(started):
        try:
            instance.stop()
        except BaseException as exc:  # noqa: BLE001 - stop the others, then re-raise
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def s3proxy(s3: S3Server) -> Iterator[S3Proxy]:
    """A proxy in front of the (wiped) S3 server that can deny listing, reject keys, inject faults."""
    with S3Proxy(s3.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def background(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start forwarders in the background (output in tmp_path/forwarder.log); any still
    running at teardown is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        started.append(start_forwarder(tmp_path / "forwarder.log", *args, env=env))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)
