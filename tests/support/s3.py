"""A real S3 endpoint for integration tests: moto in server mode on 127.0.0.1.

:class:`S3Server` runs moto's HTTP server one of two ways:

* ``threaded=False`` (default): a subprocess ``python -m moto.server -H 127.0.0.1
  -p <port>``. Fully isolated from the test process: it shares no GIL with the
  code under test, pytest's ``filterwarnings = error`` cannot turn a library
  deprecation warning into a 500 inside the server, and in-process
  ``moto.mock_aws`` in unit tests cannot wipe its state. Start-up takes about a
  second (importing moto). Its state is lost when it is stopped.
* ``threaded=True``: ``moto.server.ThreadedMotoServer`` in this process (bound to
  port 0, so no port race). Starts faster and, because moto's backends are
  module-global, *keeps its buckets and objects across stop()/start()* -- useful
  for "S3 is unreachable for a while" fault tests. Shares the process with the
  tests (and their warning filters).

Both are reset with ``POST /moto-api/reset`` (:meth:`S3Server.reset` or
:func:`reset`). The server log (one line per request) goes to ``log_file`` in
subprocess mode.
"""

from __future__ import annotations

import atexit
import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

_LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
START_TIMEOUT = 30.0

_LIVE: set[S3Server] = set()


class S3ServerError(RuntimeError):
    """The moto server could not be started."""


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_LOOPBACK, 0))
        return int(s.getsockname()[1])


def reset(endpoint_url: str, timeout: float = 10.0) -> None:
    """Wipe all state (buckets, objects, ...) of the moto server at ``endpoint_url``."""
    req = urllib.request.Request(f"{endpoint_url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        resp.read()
        if resp.status != 200:
            raise S3ServerError(f"moto reset failed: HTTP {resp.status}")


def _responds(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/moto-api/data.json", timeout=2) as resp:
            resp.read()
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class S3Server:
    """moto in server mode on 127.0.0.1; see the module docstring for the two modes.

    ``endpoint_url`` is valid after :meth:`start`. Usable as a context manager.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        threaded: bool = False,
        log_file: Path | None = None,
    ) -> None:
        self.threaded: bool = threaded
        self.port: int | None = port
        self.log_file: Path | None = Path(log_file) if log_file is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread_server: ThreadedMotoServer | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self.port is None:
            raise S3ServerError("S3Server not started")
        return f"http://{_LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server is up (as far as this object knows)."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self._thread_server is not None

    def start(self, timeout: float = START_TIMEOUT) -> S3Server:
        """Start the server and wait until it answers HTTP; returns self."""
        if self.running:
            raise S3ServerError("S3Server already running")
        if self.threaded:
            self._start_threaded()
        else:
            self._start_subprocess(timeout)
        _LIVE.add(self)
        return self

    def _start_threaded(self) -> None:
        from moto.server import ThreadedMotoServer

        if self.port is not None:
            # ThreadedMotoServer.start() would wait forever if the port is taken.
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((_LOOPBACK, self.port))
                except OSError as exc:
                    raise S3ServerError(f"port {self.port} is taken: {exc}") from exc
        server = ThreadedMotoServer(ip_address=_LOOPBACK, port=self.port or 0, verbose=False)
        server.start()
        self._thread_server = server
        self.port = int(server.get_host_and_port()[1])

    def _start_subprocess(self, timeout: float) -> None:
        port_given = self.port is not None
        for _attempt in range(1 if port_given else 3):
            if not port_given:
                self.port = _free_tcp_port()
            log: Any = subprocess.DEVNULL
            if self.log_file is not None:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                log = self.log_file.open("ab")
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", _LOOPBACK, "-p", str(self.port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            finally:
                if log is not subprocess.DEVNULL:
                    log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break  # died, e.g. port taken: retry with another port
                if _responds(self.endpoint_url):
                    return
                time.sleep(0.05)
            self._stop_subprocess()
        raise S3ServerError(f"moto server did not come up on {self.endpoint_url} (log: {self.log_file})")

    def _stop_subprocess(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def stop(self) -> None:
        """Stop the server (idempotent). The port is kept for a later :meth:`start`."""
        if self._thread_server is not None:
            server = self._thread_server
            self._thread_server = None
            server.stop()
            # ThreadedMotoServer.stop() does not close the listening socket.
            inner = getattr(server, "_server", None)
            if inner is not None:
                inner.server_close()
        self._stop_subprocess()
        _LIVE.discard(self)

    def reset(self) -> None:
        """Wipe all state of this server (``POST /moto-api/reset``)."""
        reset(self.endpoint_url)

    def client(self, **kwargs: Any) -> Any:
        """A boto3 S3 client for this endpoint (credentials testing/testing, us-east-1).

        Extra keyword arguments go to ``boto3.client`` (e.g. ``config=``).
        """
        params: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": REGION,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }
        params.update(kwargs)
        return boto3.session.Session().client("s3", **params)

    def env(self) -> dict[str, str]:
        """Environment variables pointing an AWS SDK (e.g. a forwarder subprocess) here."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def __enter__(self) -> S3Server:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        mode = "threaded" if self.threaded else "subprocess"
        state = "running" if self.running else "stopped"
        return f"<S3Server {mode} {_LOOPBACK}:{self.port} {state}>"


@atexit.register
def _stop_leftovers() -> None:
    """Never leave a moto server behind if a test forgot to stop one."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()
