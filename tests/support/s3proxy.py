"""An HTTP proxy in front of the moto S3 server that plays the parts S3 plays in production.

It forwards every request to the real endpoint (moto serves STS on the same port too) and
records it (an STS call with its form), and on demand it:
- denies listing (``deny_list``): ``GET /bucket?list-type=2`` gets 403 AccessDenied, as for
  an exporter key without s3:ListBucket;
- rejects access keys (``rejected_keys``): a request signed with one gets 403
  InvalidAccessKeyId, as after a key rotation;
- answers a missing object with 403 AccessDenied instead of 404 (``missing_as_403``), as S3
  does for callers without ListBucket;
- injects faults (``faults``): a queue of "500", "503", "reset", "truncate", consumed one per
  object GET;
- drops the ``If-Match`` and ``If-None-Match`` headers (``ignore_conditions``), as an
  S3-compatible store that takes conditional writes and ignores them would.

Listens on 127.0.0.1 only; ``stop()`` shuts it down.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@dataclass(frozen=True)
class SeenRequest:
    """One request the proxy saw."""

    method: str
    path: str
    query: str
    access_key: str  # "" for an unsigned (anonymous) request
    status: int
    form: str = ""  # the body of a form POST (an STS call: Action=AssumeRole&...)


def _error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()


@dataclass
class S3Proxy:
    """See the module docstring."""

    upstream: str
    deny_list: bool = False
    missing_as_403: bool = False
    rejected_keys: set[str] = field(default_factory=set)
    faults: list[str] = field(default_factory=list)
    ignore_conditions: bool = False
    requests: list[SeenRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def listed(self) -> list[SeenRequest]:
        """Listing requests seen (whatever their answer)."""
        return [r for r in self.requests if r.method == "GET" and "list-type" in r.query]

    def object_gets(self) -> list[SeenRequest]:
        """GETs of objects (path /bucket/key)."""
        return [r for r in self.requests if r.method == "GET" and r.path.count("/") >= 2]

    def start(self) -> S3Proxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def _handle(self) -> None:
                proxy._forward(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> S3Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, handler: BaseHTTPRequestHandler, key: str, status: int, body: bytes = b"") -> None:
        parts = urlsplit(handler.path)
        form = (
            body.decode("utf-8", "replace")
            if "form-urlencoded" in handler.headers.get("Content-Type", "")
            else ""
        )
        with self._lock:
            self.requests.append(SeenRequest(handler.command, parts.path, parts.query, key, status, form))

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Content-Length", str(len(body) if handler.command != "HEAD" else 0))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        match = _CREDENTIAL.search(handler.headers.get("Authorization", ""))
        key = match.group(1) if match else ""
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        is_object_get = handler.command == "GET" and parts.path.strip("/").count("/") >= 1
        if key and key in self.rejected_keys:
            self._record(handler, key, 403)
            return self._reply(handler, 403, _error("InvalidAccessKeyId", "The key does not exist"))
        if self.deny_list and handler.command == "GET" and "list-type" in parts.query:
            self._record(handler, key, 403)
            return self._reply(handler, 403, _error("AccessDenied", "Access Denied"))
        fault = None
        if is_object_get and self.faults:
            with self._lock:
                fault = self.faults.pop(0) if self.faults else None
        if fault in ("500", "503"):
            self._record(handler, key, int(fault))
            code = "InternalError" if fault == "500" else "SlowDown"
            return self._reply(handler, int(fault), _error(code, "injected"))
        if fault == "reset":
            self._record(handler, key, 0)
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.close_connection = True
            return None
        up = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port or 80, timeout=60)
        try:
            dropped = ("host", "if-match", "if-none-match") if self.ignore_conditions else ("host",)
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in dropped}
            conn.request(handler.command, handler.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status = response.status
            if status == 404 and self.missing_as_403 and handler.command in ("GET", "HEAD"):
                self._record(handler, key, 403)
                return self._reply(handler, 403, _error("AccessDenied", "Access Denied"))
            self._record(handler, key, status, body)
            handler.send_response(status)
            skip = ("transfer-encoding", "connection", "content-length", "server", "date")
            for name, value in response.getheaders():
                if name.lower() not in skip:
                    handler.send_header(name, value)
            length = response.getheader("Content-Length") if handler.command == "HEAD" else None
            handler.send_header("Content-Length", length or str(len(data)))
            handler.end_headers()
            if handler.command != "HEAD":
                if fault == "truncate":
                    handler.wfile.write(data[: len(data) // 2])
                    handler.wfile.flush()
                    handler.close_connection = True
                    handler.connection.shutdown(socket.SHUT_RDWR)
                else:
                    handler.wfile.write(data)
        finally:
            conn.close()
        return None
