"""The long links the network benchmark uses (tests/support/delayproxy.py, delaylink.py):
what goes in comes out, byte for byte, both ways, and never before its delay."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.support.delaylink import DelayLink
from tests.support.delayproxy import DelayProxy

pytestmark = pytest.mark.integration

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB, every byte value
ECHO = (
    "import socket, sys\n"
    "server = socket.create_server((sys.argv[1], 0))\n"
    "print(server.getsockname()[1], flush=True)\n"
    "conn, _ = server.accept()\n"
    "while data := conn.recv(1 << 20):\n"
    "    conn.sendall(data)\n"
)


def _echoed(address: tuple[str, int]) -> tuple[bytes, float, float]:
    """(what came back for PAYLOAD, seconds to connect, seconds for the first echo)."""
    started = time.monotonic()
    with socket.create_connection(address, timeout=10) as sock:
        connected = time.monotonic() - started
        sock.sendall(b"x")
        sock.recv(1)
        first = time.monotonic() - started - connected
        sender = threading.Thread(target=lambda: (sock.sendall(PAYLOAD), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
        sender.join(10)
    return b"".join(chunks), connected, first


def test_delay_proxy_relays_both_ways_exactly_and_holds_each_chunk() -> None:
    """Through a proxy holding chunks 10 ms each way, an echo comes back whole and in order, and
    the first answer no sooner than 20 ms after its message left."""
    echo = subprocess.Popen([sys.executable, "-c", ECHO, "127.0.0.1"], stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None
        port = int(echo.stdout.readline())
        with DelayProxy(("127.0.0.1", port), delay_ms=10) as proxy:
            back, _, first = _echoed(("127.0.0.1", proxy.port))
    finally:
        echo.kill()
        echo.wait(10)
        echo.stdout.close()  # type: ignore[union-attr]
    assert back == PAYLOAD
    assert first >= 0.02


def test_delay_link_carries_tcp_between_namespaces_with_a_round_trip() -> None:
    """Over the link holding packets 10 ms each way, connecting takes a round trip (TCP's own
    handshake crosses it), and an echo from the far namespace comes back byte for byte."""
    with DelayLink(delay_ms=10) as link:
        command = link.far_command([sys.executable, "-c", ECHO, link.far_address])
        echo = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert echo.stdout is not None
            port = int(echo.stdout.readline())
            result: list[tuple[bytes, float, float]] = []

            def near_side() -> None:  # a thread of its own: only it moves into the near namespace
                link.enter_near()
                result.append(_echoed((link.far_address, port)))

            thread = threading.Thread(target=near_side)
            thread.start()
            thread.join(30)
        finally:
            echo.kill()
            echo.wait(10)
            echo.stdout.close()  # type: ignore[union-attr]
    back, connected, first = result[0]
    assert back == PAYLOAD
    assert connected >= 0.02 and first >= 0.02
