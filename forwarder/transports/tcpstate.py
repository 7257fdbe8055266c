"""What the kernel knows of a TCP connection: bytes handed over, bytes the peer
acknowledged, whether the peer hung up. Linux only (SIOCOUTQ, tcpi_bytes_acked)."""

from __future__ import annotations

import array
import fcntl
import socket
import struct
import termios

# struct tcp_info (linux/tcp.h): tcpi_bytes_acked, a u64 at byte 120 (Linux 4.1 and later).
_BYTES_ACKED = struct.Struct("=Q")
_BYTES_ACKED_AT = 120
_TCP_INFO_LEN = _BYTES_ACKED_AT + _BYTES_ACKED.size


def unacked_bytes(sock: socket.socket) -> int:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux SIOCOUTQ)."""
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)  # SIOCOUTQ == TIOCOUTQ on Linux
    return buf[0]


def _bytes_acked(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    if len(info) < _TCP_INFO_LEN:
        raise OSError("the kernel does not report tcpi_bytes_acked (Linux 4.1 or later needed)")
    return int(_BYTES_ACKED.unpack_from(info, _BYTES_ACKED_AT)[0])


def handed_to_tcp(sock: socket.socket) -> int:
    """Bytes written to *sock* since it connected (acknowledged plus still queued), in the
    units both kernel counters share: with TLS, the encrypted bytes.

    Read between two readings of the acknowledged count that agree, so that no
    acknowledgement slipped in between (only the caller writes, so nothing else moves).
    """
    while True:
        before = _bytes_acked(sock)
        queued = unacked_bytes(sock)
        if _bytes_acked(sock) == before:
            return before + queued


OPEN, CLOSED, RESET = "open", "closed", "reset"
# tcpi_state (linux/tcp_states.h). The peer's side is open in ESTABLISHED and, once we sent
# our FIN, FIN_WAIT1/2; its FIN leaves CLOSE_WAIT (or, with ours, LAST_ACK or CLOSING); a
# reset or an error (a keepalive timeout) leaves CLOSE, and so does a close both sides
# completed (TIME_WAIT is kept apart from the socket), so only use it before ours is done.
_PEER_OPEN = frozenset({1, 4, 5})  # ESTABLISHED, FIN_WAIT1, FIN_WAIT2
_PEER_FIN = frozenset({8, 9, 11})  # CLOSE_WAIT, LAST_ACK, CLOSING


def peer_state(sock: socket.socket) -> str:
    """Whether the peer is still there (OPEN), closed the connection cleanly (CLOSED: its
    FIN, which a collector's kernel sends only when the collector read everything) or not
    (RESET: a reset or an error; what it had not read is gone), from the kernel's TCP state.

    Writing into a closed socket "succeeds" and the bytes then vanish with the reset, so a
    stream is checked before every batch. The state is read rather than the socket: for
    TLS, reading would let the ssl layer answer a closed peer, which then resets.
    """
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    except OSError:
        return RESET
    if state in _PEER_OPEN:
        return OPEN
    return CLOSED if state in _PEER_FIN else RESET


def connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection with Nagle off (a batch is one write) and keepalive on."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock
