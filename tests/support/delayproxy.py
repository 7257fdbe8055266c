"""A TCP proxy that holds every chunk N ms in each direction: a true round trip for application acks.

:class:`DelayProxy` listens on ``host:listen_port`` (0: a free port, see :attr:`DelayProxy.port`),
connects each accepted client to ``target`` and forwards the bytes both ways, each chunk written
``delay_ms`` after it was read (FIFO per direction, so order is kept; an EOF is passed on as a
half-close after the same delay). A request answered by the far end therefore waits 2 x delay for
its answer -- what a RELP window or any application-level acknowledgement sees on a long link.
TCP's own ACKs do not cross the proxy (each side talks to a nearby kernel), so TCP's congestion
window and ``SIOCOUTQ`` see loopback; use :class:`tests.support.delaylink.DelayLink` for that.

One thread runs a ``select`` loop over all connections (non-blocking sockets, partial writes kept
at the head of the queue). Reading from a side pauses while more than ``max_buffer`` bytes wait to
be written for it (backpressure), so a slow collector still slows the sender down.

Measured on the project's 2-core machine (client, proxy thread and server in one Python process on
loopback; 1-byte request and 1-byte answer with TCP_NODELAY, 50 round trips; 200 MB one way to a
sink that confirms the count after EOF, 3 runs)::

    delay each way   request/answer round trip     200 MB one way
    0 ms             0.09 ms                       0.15-0.33 s (600-1300 MB/s)
    10 ms            20.4 ms (min 20.4, max 25.6)  0.57-0.68 s (300-350 MB/s; ``max_buffer`` 4 MiB
                                                   per direction and 10 ms caps it near 400 MB/s)

:meth:`DelayProxy.close` first lets what is in flight arrive (``linger``, 1 s), then resets (RST) the
connections still open, like :meth:`drop_connections`.

Usage::

    with DelayProxy(0, ("127.0.0.1", collector.port), delay_ms=10) as proxy:
        config["output"] = {"host": "127.0.0.1", "port": proxy.port, "protocol": "relp"}
        ...
        proxy.drop_connections()  # every current connection reset at once (fault tests)
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections import deque
from types import TracebackType


class _Leg:
    """One direction of one connection: bytes read from ``src`` wait in ``queue`` for ``dst``."""

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src, self.dst = src, dst
        self.queue: deque[tuple[float, memoryview]] = deque()
        self.buffered = 0
        self.eof_at: float | None = None  # when the half-close is due
        self.done = False


class DelayProxy:
    """Forward TCP from ``host:listen_port`` to ``target``, each chunk held ``delay_ms`` each way."""

    def __init__(
        self,
        listen_port: int,
        target: tuple[str, int],
        delay_ms: float = 10.0,
        *,
        host: str = "127.0.0.1",
        max_buffer: int = 4 << 20,
    ) -> None:
        self.target = target
        self.delay_ms = float(delay_ms)  # may be changed while running
        self.max_buffer = max_buffer
        self.connections = 0  # accepted so far
        self._listener = socket.create_server((host, listen_port))
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._legs: list[_Leg] = []
        self._stopping = False
        self._drop = False
        self._thread = threading.Thread(target=self._loop, name=f"DelayProxy:{self.port}", daemon=True)

    def start(self) -> DelayProxy:
        self._thread.start()
        return self

    def drop_connections(self) -> None:
        """Reset (RST) every current connection, both sides; new ones are accepted as before."""
        self._drop = True
        self._wake_w.send(b"x")

    def close(self, linger: float = 1.0) -> None:
        """Deliver what is in flight (at most ``linger`` seconds), then stop the loop and reset what is
        still open (idempotent)."""
        deadline = time.monotonic() + linger
        while self._thread.is_alive() and time.monotonic() < deadline and self._in_flight():
            time.sleep(0.005)
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(10)
        self._abort_all()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _in_flight(self) -> bool:
        return any(leg.queue or (leg.eof_at is not None and not leg.done) for leg in list(self._legs))

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _abort_all(self) -> None:
        for leg in self._legs:
            for sock in (leg.src, leg.dst):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
        self._legs.clear()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()  # target down: the client sees its connection closed
            return
        self.connections += 1
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the proxy adds no Nagle delay
        self._legs += [_Leg(client, server), _Leg(server, client)]

    def _flush(self, leg: _Leg, now: float) -> None:
        while leg.queue and leg.queue[0][0] <= now:
            due, data = leg.queue[0]
            try:
                sent = leg.dst.send(data)
            except BlockingIOError:
                return
            leg.buffered -= sent
            if sent < len(data):
                leg.queue[0] = (due, data[sent:])
                return
            leg.queue.popleft()
        if not leg.queue and leg.eof_at is not None and leg.eof_at <= now and not leg.done:
            leg.done = True
            with contextlib.suppress(OSError):
                leg.dst.shutdown(socket.SHUT_WR)

    def _abort(self, leg: _Leg) -> None:
        """Reset both sides of ``leg``'s connection, as a broken path would."""
        pair = (leg.src, leg.dst)
        self._legs = [other for other in self._legs if other.src not in pair]
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def _loop(self) -> None:
        while not self._stopping:
            if self._drop:
                self._drop = False
                self._abort_all()
            now = time.monotonic()
            for leg in list(self._legs):
                try:
                    self._flush(leg, now)
                except OSError:
                    self._abort(leg)  # the peer is gone: so is its partner's connection
            done = {leg.src for leg in self._legs if leg.done}
            for leg in [leg for leg in self._legs if leg.done and leg.dst in done]:
                self._legs.remove(leg)  # both directions are done: close this side's socket
                leg.src.close()
            timeout: float | None = None
            readers: list[socket.socket] = [self._listener, self._wake_r]
            writers: list[socket.socket] = []
            for leg in self._legs:
                if leg.queue and leg.queue[0][0] <= now:
                    writers.append(leg.dst)
                elif leg.queue or (leg.eof_at is not None and not leg.done):
                    due = leg.queue[0][0] if leg.queue else leg.eof_at
                    assert due is not None
                    timeout = due - now if timeout is None else min(timeout, due - now)
                if leg.eof_at is None and leg.buffered < self.max_buffer:
                    readers.append(leg.src)
            readable, _, _ = select.select(readers, writers, [], None if timeout is None else max(timeout, 0))
            now = time.monotonic()
            for sock in readable:
                if sock is self._listener:
                    self._accept()
                elif sock is self._wake_r:
                    sock.recv(4096)
                else:
                    self._read(sock, now)

    def _read(self, sock: socket.socket, now: float) -> None:
        leg = next((leg for leg in self._legs if leg.src is sock), None)
        if leg is None:
            return  # aborted in this round
        try:
            data = sock.recv(256 << 10)
        except BlockingIOError:
            return
        except OSError:
            self._abort(leg)
            return
        if data:
            leg.queue.append((now + self.delay_ms / 1000.0, memoryview(data)))
            leg.buffered += len(data)
        else:
            leg.eof_at = now + self.delay_ms / 1000.0
