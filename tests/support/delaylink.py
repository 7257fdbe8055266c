"""A network link with a real round trip: two network namespaces joined by a pair of tun
devices and a bridge process that holds every packet ``delay_ms`` before passing it on.

``tc netem`` would do this in the kernel, but its module is not always there (it is not on
the development machines); tun devices are. Every packet crosses the bridge, TCP's own
acknowledgements included, so a sender sees ``2 * delay_ms`` of round trip in its
congestion window, its SIOCOUTQ and its connect time (measured: 21.8 ms to connect at
10 ms each way; ~124 MB/s through the bridge at 0 ms).

    with DelayLink(delay_ms=10) as link:
        link.enter_near()                       # this thread (and what it starts) on the near side
        far = subprocess.Popen(link.far_command(["python3", "sink.py", "--host", link.far_address]))
        ...                                     # connect to link.far_address
        link.set_delay(0)                       # the same link without the delay

Needs root (network namespaces, /dev/net/tun). The namespaces are named after this
process, so several links (and several users) do not meet; both go when the link closes.
The bridge runs as ``python -m tests.support.delaylink NEAR FAR DELAY_MS`` and takes new
delays, one number of milliseconds a line, on its standard input.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
CLONE_NEWNET = 0x40000000
DEVICE = "dlink0"
MTU = 65000
NEAR_ADDRESS, FAR_ADDRESS = "10.201.0.1", "10.201.0.2"
ROOT = Path(__file__).resolve().parents[2]


def _setns(path: str) -> None:
    """Move the calling thread into the network namespace at *path*."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def _open_tun(namespace: str) -> int:
    """A tun device DEVICE created in *namespace*; its file descriptor (the device lives as
    long as it is open)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        _setns(f"/var/run/netns/{namespace}")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", DEVICE.encode(), IFF_TUN | IFF_NO_PI))
        return fd
    finally:
        _setns(f"/proc/self/fd/{home}")
        os.close(home)


class _Direction:
    """Packets from one tun to the other, each held until its time comes."""

    def __init__(self, source: int, target: int, delay: list[float]) -> None:
        self._source, self._target, self._delay = source, target, delay
        self._held: deque[tuple[float, bytes]] = deque()
        self._ready = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        while True:
            packet = os.read(self._source, MTU + 100)
            with self._ready:
                self._held.append((time.monotonic() + self._delay[0], packet))
                self._ready.notify()

    def _write(self) -> None:
        while True:
            with self._ready:
                while not self._held:
                    self._ready.wait()
                due, packet = self._held.popleft()
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            with contextlib.suppress(OSError):  # a packet the other side refuses is a lost packet
                os.write(self._target, packet)


def bridge(near: str, far: str, delay_ms: float) -> None:
    """The bridge process: open both tun devices, say "ready", relay until stdin closes."""
    near_fd, far_fd = _open_tun(near), _open_tun(far)
    delay = [delay_ms / 1000]
    _Direction(near_fd, far_fd, delay)
    _Direction(far_fd, near_fd, delay)
    print("ready", flush=True)
    for line in sys.stdin:
        delay[0] = float(line) / 1000


class DelayLink:
    """Two namespaces, ``near`` and ``far``, with a link holding packets *delay_ms* each way."""

    def __init__(self, delay_ms: float = 0.0) -> None:
        self.near, self.far = f"fwdnear{os.getpid()}", f"fwdfar{os.getpid()}"
        self.near_address, self.far_address = NEAR_ADDRESS, FAR_ADDRESS
        self.delay_ms = delay_ms
        self._bridge: subprocess.Popen[str] | None = None

    def start(self) -> DelayLink:
        """Create the namespaces, start the bridge, give both ends their addresses."""
        for namespace in (self.near, self.far):
            subprocess.run(["ip", "netns", "add", namespace], check=True)
        self._bridge = subprocess.Popen(
            [sys.executable, "-m", "tests.support.delaylink", self.near, self.far, str(self.delay_ms)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._bridge.stdout is not None
        if self._bridge.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the delay link's bridge did not start")
        for namespace, address in ((self.near, self.near_address), (self.far, self.far_address)):
            for command in (
                ["link", "set", "lo", "up"],
                ["addr", "add", f"{address}/30", "dev", DEVICE],
                ["link", "set", DEVICE, "mtu", str(MTU), "up"],
            ):
                subprocess.run(["ip", "-n", namespace, *command], check=True)
        return self

    def set_delay(self, delay_ms: float) -> None:
        """Hold packets *delay_ms* each way from now on."""
        assert self._bridge is not None and self._bridge.stdin is not None
        self._bridge.stdin.write(f"{delay_ms}\n")
        self._bridge.stdin.flush()
        self.delay_ms = delay_ms
        time.sleep(0.05 + 2 * delay_ms / 1000)  # packets held under the old delay leave first

    def enter_near(self) -> None:
        """Move the calling thread (and what it starts from now on) into the near namespace."""
        _setns(f"/var/run/netns/{self.near}")

    def far_command(self, argv: list[str]) -> list[str]:
        """*argv* to run in the far namespace."""
        return ["ip", "netns", "exec", self.far, *argv]

    def close(self) -> None:
        """Stop the bridge (its tun devices go with it) and delete both namespaces."""
        if self._bridge is not None:
            for pipe in (self._bridge.stdin, self._bridge.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
            self._bridge.kill()
            self._bridge.wait(10)
            self._bridge = None
        for namespace in (self.near, self.far):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)

    def __enter__(self) -> DelayLink:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":
    bridge(sys.argv[1], sys.argv[2], float(sys.argv[3]))
