"""A TCP proxy on 127.0.0.1 that holds every chunk it relays for a while, each way.

Application-level answers (RELP's ``rsp`` frames) are messages, so a proxy that delays
what it relays gives them a true round trip: a sender that waits for answers sees
``2 * delay_ms``. TCP's own acknowledgements do not cross it (each side talks to the proxy
on loopback): for a link where they do, see ``tests/support/delaylink.py``.

    with DelayProxy(("127.0.0.1", rsyslog.port), delay_ms=10) as proxy:
        ...  # send to proxy.port: every answer comes back 20 ms after its message left

Each connection gets two relays (one per direction): a reader thread stamps each chunk
with the time it may leave, a writer thread sends it then, in order. The delay can be
changed while it runs (``delay_ms``); chunks already held keep their time. A side that
closes is closed on the other side once what it sent has been relayed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from types import TracebackType


class _Relay:
    """One direction of one connection: chunks from *source* to *target*, each held."""

    def __init__(self, proxy: DelayProxy, source: socket.socket, target: socket.socket) -> None:
        self._proxy = proxy
        self._source, self._target = source, target
        self._held: deque[tuple[float, bytes]] = deque()  # (when it may leave, chunk); b"" = EOF
        self._ready = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = self._source.recv(1 << 20)
            except OSError:
                chunk = b""
            with self._ready:
                self._held.append((time.monotonic() + self._proxy.delay_ms / 1000, chunk))
                self._ready.notify()
            if not chunk:
                return

    def _write(self) -> None:
        while True:
            with self._ready:
                while not self._held:
                    self._ready.wait()
                due, chunk = self._held.popleft()
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            try:
                if not chunk:
                    self._target.shutdown(socket.SHUT_WR)
                    return
                self._target.sendall(chunk)
            except OSError:
                with contextlib.suppress(OSError):
                    self._source.shutdown(socket.SHUT_RDWR)  # the other side is gone: so is this one
                return


class DelayProxy:
    """Listens on 127.0.0.1 (``port``) and relays to *target*, holding each chunk *delay_ms*."""

    def __init__(self, target: tuple[str, int], delay_ms: float = 0.0) -> None:
        self.target = target
        self.delay_ms = delay_ms
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            _Relay(self, client, server)
            _Relay(self, server, client)

    def close(self) -> None:
        """Stop listening and drop every relayed connection."""
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
