"""A long link with a real round trip: two network namespaces joined by a user-space delay bridge.

``tc qdisc ... netem`` is not available on the project's machines, so :class:`DelayLink` builds the
delay itself: a tun device in each of two fresh network namespaces (MTU 65000, addresses
``10.201.x.1`` and ``10.201.x.2`` of a /30), and a bridge subprocess (this file run as a script)
that reads every IP packet from one tun fd and writes it to the other after holding it
``delay_ms`` milliseconds (one FIFO per direction timed by ``time.monotonic``, ``select`` on the
two fds, no rate limit, no loss). Everything crosses the bridge -- data, TCP's own ACKs, SYNs -- so
a TCP connect costs 2 x delay and congestion control sees a real round trip (unlike a delaying
TCP proxy, see :mod:`tests.support.delayproxy`). Needs root and iproute2's ``ip`` (both on a fresh
machine of this project's kind).

Measured on the project's 2-core machine with :func:`measure` (``python tests/support/delaylink.py
--measure``: a Python sender in A ``sendall``-ing 200 MB in 1 MiB writes to a Python receiver in B,
timed from before ``connect`` to the receiver's 8-byte count after EOF; 3 runs each)::

    delay each way   TCP connect (steady / first of a process)   200 MB bulk transfer
    0 ms             0.09 ms / 1-6 ms                             0.22-0.37 s (540-930 MB/s)
    10 ms            20.4 ms / 21.5-24.5 ms                       1.57 s (127 MB/s)
    25 ms            50.6 ms                                      -

At 10 ms the bridge is not the limit: the kernel's default send buffer (``net.ipv4.tcp_wmem`` max
4 MiB) over a 20 ms round trip is -- as on a real 20 ms link with Linux defaults. With
``tcp_wmem``/``tcp_rmem`` max raised to 32 MiB in both namespaces (``link.run_in(ns, ["sysctl",
"-w", ...])``; each namespace has its own) the same transfer took 0.46 s (430 MB/s). New
namespaces start with the kernel defaults, e.g. ``tcp_slow_start_after_idle = 1``.

Usage::

    with DelayLink(delay_ms=10) as link:
        sink = link.popen_in(link.ns_b, ["rsyslogd", "-n", ...])        # listens on link.addr_b
        link.run_in(link.ns_a, ["forwarder", "run", ...], check=True)   # sends to link.addr_b

With ``a_in_root=True`` side A is the caller's own namespace (``ns_a`` is None; ``run_in(None, ...)``
runs a command directly), so a process there still reaches the host's loopback services (a moto
server) while its traffic to ``addr_b`` crosses the delay. On exit the bridge and every process
started with :meth:`popen_in` (and any other process still in a namespace) are killed and the
namespaces deleted; the tun devices vanish with the bridge's fds. Namespaces left by a dead test
process (``dl<pid>x<n>``) are removed at start.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import os
import re
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from types import TracebackType
from typing import Any

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
MTU = 65000
_COUNTER = itertools.count()
_LIVE: set[DelayLink] = set()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


def namespaces() -> list[str]:
    """The names of all network namespaces (``ip netns list``)."""
    out = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _remove_stale() -> None:
    for name in namespaces():
        match = re.fullmatch(r"dl(\d+)x\d+[ab]", name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", name)


class DelayLink:
    """Two network namespaces whose only link holds every packet ``delay_ms`` ms each way."""

    def __init__(self, delay_ms: float = 10.0, *, a_in_root: bool = False) -> None:
        self.delay_ms = float(delay_ms)
        n = next(_COUNTER)
        tag = f"dl{os.getpid()}x{n}"
        self.ns_a: str | None = None if a_in_root else f"{tag}a"
        self.ns_b: str = f"{tag}b"
        self.tun_a, self.tun_b = f"{tag}a", f"{tag}b"  # at most 15 characters for pids < 10**8
        base = ((os.getpid() * 64 + n) % 16384) * 4  # a /30 of 10.201.0.0/16, unique per instance
        prefix = f"10.201.{base // 256}"
        self.addr_a, self.addr_b = f"{prefix}.{base % 256 + 1}", f"{prefix}.{base % 256 + 2}"
        self._made: list[str] = []
        self._bridge: subprocess.Popen[bytes] | None = None
        self._procs: list[subprocess.Popen[Any]] = []

    @property
    def rtt_ms(self) -> float:
        """The round trip the link adds: 2 x delay."""
        return 2 * self.delay_ms

    @property
    def bridge_pid(self) -> int | None:
        """The bridge process (SIGSTOP it to partition the link, SIGCONT to heal it), None when stopped."""
        return self._bridge.pid if self._bridge is not None else None

    def start(self) -> DelayLink:
        """Create namespaces, tun devices, addresses and start the bridge; returns self."""
        _remove_stale()
        _LIVE.add(self)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _setup(self) -> None:
        fds = [_open_tun(self.tun_a), _open_tun(self.tun_b)]
        try:
            for ns, tun, addr in ((self.ns_a, self.tun_a, self.addr_a), (self.ns_b, self.tun_b, self.addr_b)):
                netns: list[str] = []
                if ns is not None:
                    _ip("netns", "add", ns)
                    self._made.append(ns)
                    _ip("link", "set", tun, "netns", ns)
                    netns = ["-n", ns]
                    _ip(*netns, "link", "set", "lo", "up")
                _ip(*netns, "link", "set", tun, "mtu", str(MTU), "addrgenmode", "none")
                _ip(*netns, "addr", "add", f"{addr}/30", "dev", tun)
                _ip(*netns, "link", "set", tun, "up")
            self._bridge = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), str(fds[0]), str(fds[1]), str(self.delay_ms)],
                pass_fds=fds,
                stdin=subprocess.PIPE,  # the bridge exits when this pipe closes (our process died)
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
            assert self._bridge.stdout is not None
            if self._bridge.stdout.readline() != b"ready\n":
                raise RuntimeError(f"the delay bridge did not start (exit code {self._bridge.poll()})")
        finally:
            for fd in fds:
                os.close(fd)

    def _argv(self, ns: str | None, argv: list[str]) -> list[str]:
        return list(argv) if ns is None else ["ip", "netns", "exec", ns, *argv]

    def run_in(self, ns: str | None, argv: list[str], **run_kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run(argv)`` inside namespace ``ns`` (None: the caller's own)."""
        return subprocess.run(self._argv(ns, argv), **run_kw)

    def popen_in(self, ns: str | None, argv: list[str], **popen_kw: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen(argv)`` inside namespace ``ns``; killed at :meth:`close` if still running."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self._argv(ns, argv), **popen_kw)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        """Kill what was started, stop the bridge, delete the namespaces (idempotent)."""
        for proc in [*self._procs, *([self._bridge] if self._bridge else [])]:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._procs.clear()
        self._bridge = None
        for ns in reversed(self._made):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:  # what the started processes left behind (their children)
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", ns)
        self._made.clear()
        _LIVE.discard(self)

    def __enter__(self) -> DelayLink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DelayLink {self.addr_a}({self.ns_a}) <-{self.delay_ms:g} ms-> {self.addr_b}({self.ns_b})>"


@atexit.register
def _close_leftovers() -> None:
    for link in list(_LIVE):
        with contextlib.suppress(Exception):
            link.close()


def bridge(fd_a: int, fd_b: int, delay_s: float, control: int = 0) -> None:
    """Copy packets between two tun fds, each held ``delay_s``; returns when ``control`` reads EOF."""
    for fd in (fd_a, fd_b):
        os.set_blocking(fd, False)
    queues: dict[int, deque[tuple[float, bytes]]] = {fd_a: deque(), fd_b: deque()}
    other = {fd_a: fd_b, fd_b: fd_a}
    read, write, monotonic = os.read, os.write, time.monotonic
    os.write(1, b"ready\n")
    while True:
        now = monotonic()
        timeout: float | None = None
        for src, queue in queues.items():
            while queue and queue[0][0] <= now:
                with contextlib.suppress(OSError):  # a packet the peer stack refuses is lost, as on a wire
                    write(other[src], queue.popleft()[1])
            if queue:
                wait = queue[0][0] - now
                timeout = wait if timeout is None else min(timeout, wait)
        ready = select.select([fd_a, fd_b, control], [], [], timeout)[0]
        now = monotonic()
        due = now + delay_s
        for src in ready:
            if src == control:
                if not read(control, 4096):
                    return
                continue
            queue = queues[src]
            for _ in range(256):  # a burst at most, then serve the other side too
                try:
                    queue.append((due, read(src, MTU + 64)))
                except BlockingIOError:
                    break


_SINK = """import socket, struct, sys
s = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
c, _ = s.accept()
n, buf = 0, bytearray(1 << 20)
while k := c.recv_into(buf):
    n += k
c.sendall(struct.pack("!Q", n))
"""
_SOURCE = """import socket, struct, sys, time
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = memoryview(b"x" * (1 << 20))
t0 = time.perf_counter()
s = socket.create_connection((host, port))
t1 = time.perf_counter()
left = total
while left > 0:
    s.sendall(chunk[: min(left, len(chunk))])
    left -= len(chunk)
s.shutdown(socket.SHUT_WR)
assert struct.unpack("!Q", s.recv(8))[0] == total
print(t1 - t0, time.perf_counter() - t0)
"""


def measure(link: DelayLink, nbytes: int = 200_000_000, port: int = 5201) -> tuple[float, float]:
    """(connect seconds, transfer seconds) of one Python bulk transfer of ``nbytes`` from A to B, timed
    from before ``connect`` until the receiver confirmed the count after EOF."""
    sink = link.popen_in(
        link.ns_b, [sys.executable, "-c", _SINK, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None and sink.stdout.readline() == "ready\n"
    argv = [sys.executable, "-c", _SOURCE, link.addr_b, str(port), str(nbytes)]
    out = link.run_in(link.ns_a, argv, check=True, capture_output=True, text=True, timeout=300).stdout
    sink.wait(30)
    connect, total = (float(x) for x in out.split())
    return connect, total


if __name__ == "__main__" and sys.argv[1:2] == ["--measure"]:
    for delay in (0, 10):  # python tests/support/delaylink.py --measure: the docstring's table
        with DelayLink(delay) as measured:
            for _ in range(3):
                c, t = measure(measured)
                print(f"{delay} ms: connect {c * 1000:.1f} ms, 200 MB in {t:.2f} s ({200 / t:.0f} MB/s)")
elif __name__ == "__main__":
    bridge(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000.0)
