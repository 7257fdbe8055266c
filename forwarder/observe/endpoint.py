"""The HTTP listener for ``/metrics``, ``/healthz`` and ``/readyz`` (``metrics.listen``).

- ``/metrics``: the Prometheus text format (or OpenMetrics, by the Accept header);
- ``/healthz``: 200 ``ok`` while the process runs;
- ``/readyz``: 200 when every pipeline is ready, else 503; the JSON body gives each
  pipeline's checks and names those that are not ready::

      {"ready": false, "not_ready": ["acme"],
       "pipelines": {"acme": {"ready": false, "checks": {"collector": {"ok": false, "detail": "..."},
                                                         "bucket": {...}, "stuck": {...}}},
                     "beta": {"ready": true, "checks": {...}}}}

  In a fleet the pipelines are those this forwarder holds (none is fine: ready), and
  ``"coordination": {"ok": ..., "detail": ...}`` must be ok too: the fleet's bucket
  answered the last round and every lease was renewed.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from forwarder.errors import ConfigError
from forwarder.observe.health import Health

log = logging.getLogger(__name__)


def readiness(healths: Mapping[str, Health], coordination: tuple[bool, str] | None = None) -> dict[str, Any]:
    """The /readyz body for the pipelines' *healths* and, in a fleet, *coordination*'s
    (ok, detail) (see the module docstring)."""
    pipelines: dict[str, Any] = {}
    for name, health in list(healths.items()):
        checks = health.checks()
        pipelines[name] = {
            "ready": all(check.ok for check in checks.values()),
            "checks": {key: {"ok": c.ok, "detail": c.detail} for key, c in checks.items()},
        }
    not_ready = [name for name, state in pipelines.items() if not state["ready"]]
    if coordination is None:
        return {"ready": bool(pipelines) and not not_ready, "not_ready": not_ready, "pipelines": pipelines}
    ok, detail = coordination
    return {
        "ready": ok and not not_ready,
        "not_ready": not_ready,
        "pipelines": pipelines,
        "coordination": {"ok": ok, "detail": detail},
    }


# Gives the /readyz body (``readiness``).
Ready = Callable[[], dict[str, Any]]


class Endpoint:
    """A small threaded HTTP server for /metrics, /healthz and /readyz."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, ready: Ready) -> None:
        handler = _handler(registry, ready)
        server_class = _Server6 if ":" in host else ThreadingHTTPServer
        try:
            self._server = server_class((host, port), handler)
        except OSError as exc:
            where = _address(host, port)
            raise ConfigError(f"metrics.listen: cannot listen on {where}: {exc.strerror or exc}") from None
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s/metrics, health on /healthz and /readyz", _address(host, self.port))

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _handler(registry: CollectorRegistry, ready: Ready) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "forwarder"

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))  # or OpenMetrics
                self._reply(200, content_type, encoder(registry))
            elif path == "/healthz":
                self._reply(200, "text/plain; charset=utf-8", b"ok\n")
            elif path == "/readyz":
                body = ready()
                status = 200 if body["ready"] else 503
                self._reply(status, "application/json", json.dumps(body).encode() + b"\n")
            else:
                self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz, /readyz\n")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
            """Scrapes are not logged (one every 15 s would drown the log)."""

    return Handler
