"""What a transport is, and the words for what goes wrong connecting to a collector.

A transport delivers a batch of syslog messages and returns only once it is acknowledged:
the whole interface is ``send(messages)``, ``probe()`` and ``close()``; ``send`` raises
SendError when the batch may not have arrived, and the pipeline then sends it again.
What "acknowledged" means depends on the protocol (see each module).
"""

from __future__ import annotations

import socket
import ssl
from typing import Protocol

from forwarder.errors import SendError


class Transport(Protocol):
    """Sends batches of messages; see the module docstring for what a return means."""

    max_message_bytes: int | None  # the longest message it can carry (None: no limit)
    paces_itself: bool  # keeps output.max_events_per_sec itself (per datagram)

    @property
    def label(self) -> str:
        """Names the collector in messages."""
        ...

    def send(self, messages: list[bytes]) -> None: ...

    def probe(self) -> None: ...

    def close(self) -> None: ...


# OpenSSL verify codes (X509_V_ERR_*) that have a plain-words explanation.
_VERIFY_REASONS = {
    2: "the collector's certificate is signed by a CA we do not trust (check output.tls.ca_file)",
    18: "the collector's certificate is self-signed and not trusted (check output.tls.ca_file)",
    19: "the collector's certificate chain ends in a CA we do not trust (check output.tls.ca_file)",
    20: "the collector's certificate is signed by a CA we do not trust (check output.tls.ca_file)",
    21: "the collector's certificate is signed by a CA we do not trust (check output.tls.ca_file)",
    9: "the collector's certificate is not valid yet (check the clocks)",
    10: "the collector's certificate has expired (renew it on the collector)",
}


def connect_error(label: str, exc: BaseException, server_name: str = "") -> SendError:
    """A one-line SendError that says why connecting to *label* failed and what to check."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason
        if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH / IP_ADDRESS_MISMATCH
            reason = (
                f"TLS certificate rejected: it is not for the name {server_name or 'we connected to'!r} "
                "(check output.host, or set output.tls.server_name to the name in the certificate)"
            )
        elif exc.verify_code in _VERIFY_REASONS:
            reason = f"TLS certificate rejected: {_VERIFY_REASONS[exc.verify_code]} [{detail}]"
        else:
            reason = f"TLS certificate rejected: {detail} (check output.tls.ca_file and output.host)"
    elif isinstance(exc, ssl.SSLError):
        reason = (
            f"TLS handshake refused by the collector ({getattr(exc, 'reason', None) or exc}); "
            "does it need a client "
            "certificate (output.tls.cert_file) or another TLS version (output.tls.min_version)?"
        )
    elif isinstance(exc, ConnectionRefusedError):
        reason = "connection refused (is the collector running and listening on this port?)"
    elif isinstance(exc, socket.gaierror):
        reason = f"cannot resolve the host name ({exc.strerror})"
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        reason = "timed out"
    else:
        reason = str(exc) or type(exc).__name__
    return SendError(f"{label}: {reason}")
