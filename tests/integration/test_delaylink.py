"""The long-link support for benchmarks (issue 14) is real: a TCP connect over a DelayLink costs one round
trip (2 x delay) because TCP's own packets cross the delay, bytes arrive intact and in order both ways,
nothing is left behind; the DelayProxy delays application answers by 2 x delay. Needs root and iproute2."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.delaylink import DelayLink, namespaces
from tests.support.delayproxy import DelayProxy

pytestmark = pytest.mark.integration

PORT = 5301

# In B: accept connections; echo every byte back until EOF.
ECHO = """import socket, sys
s = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    c, _ = s.accept()
    with c:
        while data := c.recv(1 << 16):
            c.sendall(data)
"""

# In A: time 7 connects (a 1-byte echo each), then send N pseudo-random bytes while reading the echo;
# print the connect times and the digests of what was sent and what came back.
CLIENT = """import hashlib, json, random, socket, sys, threading, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = []
for _ in range(7):
    t0 = time.perf_counter()
    c = socket.create_connection((host, port))
    times.append(time.perf_counter() - t0)
    c.sendall(b"!"); assert c.recv(1) == b"!"; c.close()
payload = random.Random(14).randbytes(n)
c = socket.create_connection((host, port))
back = hashlib.sha256(); got = [0]
def read():
    while data := c.recv(1 << 16):
        back.update(data); got[0] += len(data)
reader = threading.Thread(target=read); reader.start()
c.sendall(payload); c.shutdown(socket.SHUT_WR); reader.join()
print(json.dumps({"connect": times, "sent": hashlib.sha256(payload).hexdigest(),
                  "back": back.hexdigest(), "back_len": got[0]}))
"""


def _start_echo(link: DelayLink) -> subprocess.Popen[str]:
    echo = link.popen_in(
        link.ns_b, [sys.executable, "-c", ECHO, str(PORT)], stdout=subprocess.PIPE, text=True
    )
    assert echo.stdout is not None and echo.stdout.readline() == "ready\n"
    return echo


def test_connect_costs_one_round_trip_and_bytes_cross_intact_in_order() -> None:
    """Between two namespaces a connect takes 2 x delay (+ a little) and 8 MB echo back byte for byte."""
    with DelayLink(delay_ms=25) as link:
        _start_echo(link)
        argv = [sys.executable, "-c", CLIENT, link.addr_b, str(PORT), str(8 << 20)]
        out = link.run_in(link.ns_a, argv, capture_output=True, text=True, timeout=120, check=True).stdout
    result = json.loads(out)
    connect_ms = statistics.median(result["connect"]) * 1000
    assert 50.0 <= connect_ms < 65.0, result["connect"]
    assert result["back_len"] == 8 << 20
    assert result["back"] == result["sent"]


def test_the_callers_own_namespace_can_be_side_a() -> None:
    """With a_in_root the test process itself connects over the delay, and gets its data back intact."""
    payload = random.Random(15).randbytes(1 << 20)
    with DelayLink(delay_ms=10, a_in_root=True) as link:
        assert link.ns_a is None
        _start_echo(link)
        connects = []
        for _ in range(3):
            t0 = time.perf_counter()
            socket.create_connection((link.addr_b, PORT), timeout=10).close()
            connects.append((time.perf_counter() - t0) * 1000)
        with socket.create_connection((link.addr_b, PORT), timeout=10) as conn:
            received = bytearray()

            def read() -> None:
                while data := conn.recv(1 << 16):
                    received.extend(data)

            reader = threading.Thread(target=read)
            reader.start()
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            reader.join(30)
    assert 20.0 <= statistics.median(connects) < 40.0, connects
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


def test_teardown_leaves_no_namespace_device_or_process_behind() -> None:
    """After the block (even one left by an exception) namespaces, tun devices and processes are gone."""
    before = set(namespaces())
    with pytest.raises(RuntimeError), DelayLink(delay_ms=5) as link:
        echo = _start_echo(link)
        sleeper = link.popen_in(link.ns_a, ["sleep", "300"])
        bridge = link.bridge_pid
        assert bridge is not None and Path(f"/proc/{bridge}").exists()
        assert {link.ns_a, link.ns_b} <= set(namespaces())
        raise RuntimeError("test body failed")
    assert set(namespaces()) == before
    assert echo.poll() is not None and sleeper.poll() is not None
    assert not (Path("/sys/class/net") / link.tun_a).exists()
    assert not Path(f"/proc/{bridge}").exists()


def test_delay_proxy_delays_each_answer_by_a_round_trip() -> None:
    """Through a DelayProxy of 10 ms an answered request takes 2 x 10 ms and the bytes are unchanged."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(1 << 16):
                    conn.sendall(data.upper())

        answering = threading.Thread(target=answer)
        answering.start()
        with (
            DelayProxy(0, server.getsockname()[:2], delay_ms=10) as proxy,
            socket.create_connection(("127.0.0.1", proxy.port)) as conn,
        ):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rtts, answers = [], []
            for i in range(10):
                t0 = time.perf_counter()
                conn.sendall(b"rsp %d\n" % i)
                answers.append(conn.recv(100))
                rtts.append((time.perf_counter() - t0) * 1000)
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(1) == b""  # the far end's close came back through the proxy
        answering.join(10)
    assert answers == [b"RSP %d\n" % i for i in range(10)]
    assert 20.0 <= statistics.median(rtts) < 30.0, rtts
