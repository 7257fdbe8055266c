"""A fast TCP sink for the benchmark: accepts connections one after another and counts bytes.

Run as ``python sink.py [--host ADDRESS]``: it listens on 127.0.0.1 (or ADDRESS: the far
end of a delay link, ``benchmarks/links.py``) on a free port, prints ``{"port": N}``,
then for each connection, once the peer has closed it, one JSON line
``{"bytes": ..., "newlines": ..., "eof_at": ...}`` where ``eof_at`` is ``time.monotonic()``
(the same clock in every process of the machine) when the end of the stream was read. It
does nothing else with the bytes, so the baseline pipeline and the forwarder meet the
same, cheap reader. It exits when its standard input closes.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

BUFFER_BYTES = 1 << 20


def serve(server: socket.socket) -> None:
    """Read every connection to its end, one at a time, and report what it carried."""
    buffer = bytearray(BUFFER_BYTES)
    while True:
        conn, _ = server.accept()
        total = newlines = 0
        first_at = 0.0
        with conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            recv_into = conn.recv_into
            while True:
                count = recv_into(buffer)
                if not count:
                    break
                if not total:
                    first_at = time.monotonic()
                total += count
                newlines += buffer.count(b"\n", 0, count)
        report = {"bytes": total, "newlines": newlines, "first_at": first_at, "eof_at": time.monotonic()}
        print(json.dumps(report), flush=True)


def main() -> None:
    host = sys.argv[sys.argv.index("--host") + 1] if "--host" in sys.argv else "127.0.0.1"
    server = socket.create_server((host, 0), backlog=16)
    print(json.dumps({"port": server.getsockname()[1]}), flush=True)
    threading.Thread(target=serve, args=(server,), daemon=True).start()
    sys.stdin.read()  # the benchmark closes our stdin when it is done with us


if __name__ == "__main__":
    main()
