"""TLS for the tcp and relp transports: the client context, and the check a TLS 1.3
collector needs after the handshake.

Verification is on unless ``output.tls.verify`` is false: the collector's certificate
*and* its name (``output.host``, or ``output.tls.server_name``), TLS 1.2 at least.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable

from forwarder.config import OutputConfig
from forwarder.errors import ConfigError
from forwarder.transports.base import connect_error


def tls_context(output: OutputConfig) -> ssl.SSLContext:
    """A client context: certificate and name verification on unless tls.verify is false,
    TLS 1.2 at least (tls.min_version), CAs from a file or a directory (c_rehash'ed)."""
    tls = output.tls
    try:
        ca_dir = bool(tls.ca_file) and os.path.isdir(tls.ca_file)
        context = ssl.create_default_context(
            cafile=None if ca_dir else tls.ca_file or None, capath=tls.ca_file if ca_dir else None
        )
        context.minimum_version = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[
            tls.min_version
        ]
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"output.tls: cannot load certificates: {exc}") from None
    return context


# How long a new TLS 1.3 connection waits for a refusal the server sends after the handshake.
TLS13_ACCEPT_WAIT_SECS = 0.2


def _check_tls13_acceptance(sock: ssl.SSLSocket) -> None:
    """Raise if the collector refuses a TLS 1.3 connection right after the handshake.

    In TLS 1.3 the client's handshake ends before the server has checked the client
    certificate; a server that wants one (mutual TLS) then answers with an alert, or just
    hangs up. Without this wait the first batch would go into a connection already refused,
    its bytes acknowledged by the kernel and dropped by the collector.
    """
    if sock.version() != "TLSv1.3":
        return
    timeout = sock.gettimeout()
    sock.settimeout(TLS13_ACCEPT_WAIT_SECS)
    try:
        if sock.recv(1) == b"":
            raise ssl.SSLError("the collector closed the connection right after the handshake")
    except (TimeoutError, ssl.SSLWantReadError):
        pass  # nothing said: accepted (session tickets are consumed by the ssl layer)
    finally:
        sock.settimeout(timeout)


def tls_connector(
    connect: Callable[[], socket.socket], output: OutputConfig, host: str, label: str
) -> Callable[[], socket.socket]:
    """A function that connects (*connect*) and wraps the socket in verified TLS."""
    context = tls_context(output)
    server_name = output.tls.server_name or host

    def connect_tls() -> socket.socket:
        raw = connect()
        try:
            sock = context.wrap_socket(raw, server_hostname=server_name)
            _check_tls13_acceptance(sock)
            return sock
        except ssl.SSLError as exc:
            raw.close()
            raise connect_error(label, exc, server_name) from exc
        except BaseException:
            raw.close()
            raise

    return connect_tls
