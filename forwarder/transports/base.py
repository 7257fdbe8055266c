"""What a transport is, and the words for what goes wrong connecting to a collector.

A transport keeps a window of batches in flight: ``write`` sends one batch after those
written before and returns without waiting for its acknowledgement; ``acknowledged``
says how many more of the written batches, oldest first, the collector has acknowledged.
What "acknowledged" means depends on the protocol (see each module): udp, file and stdout
acknowledge a batch as ``write`` returns, tcp and tls when the collector's TCP stack has
every byte of it, relp when the collector answered every message.

A SendError (from ``write`` or ``acknowledged``) means the connection is gone: every batch
written and not yet reported acknowledged is lost, and the caller writes them again, in
order, on the transport's next connection (``core.delivery`` does). A transport reports
the acknowledgements it holds before it reports a failure, so that as little as possible
is sent twice. The in-flight bookkeeping, retries and the checkpoint live in the caller.
"""

from __future__ import annotations

import socket
import ssl
from typing import Protocol

from forwarder.errors import SendError


class Transport(Protocol):
    """Sends batches of messages in a window; see the module docstring."""

    max_message_bytes: int | None  # the longest message it can carry (None: no limit)
    paces_itself: bool  # keeps output.max_events_per_sec itself (per datagram)

    @property
    def label(self) -> str:
        """Names the collector in messages."""
        ...

    def write(self, messages: list[bytes]) -> None:
        """Send *messages* after the batches written before, without waiting for their
        acknowledgement (a full window waits for room first); SendError: see above."""
        ...

    def acknowledged(self, wait_secs: float) -> int:
        """How many more written batches (oldest first) were acknowledged since the last
        call; waits up to *wait_secs* for one when none was (0: just look). SendError: the
        connection failed (or nothing was acknowledged within ``output.ack_timeout_secs``)."""
        ...

    def probe(self) -> None:
        """Connect now (nothing in flight); SendError if that fails."""
        ...

    def close(self) -> None:
        """Close, letting the collector take what was written (bounded)."""
        ...


class Held:
    """What a windowed transport holds for its next ``acknowledged()``: batches acknowledged,
    and a failure, reported after them (so that as little as possible is sent twice)."""

    def __init__(self) -> None:
        self.acknowledged = 0
        self.failure: SendError | None = None

    def report(self) -> int:
        """The acknowledgements held (then none), else the failure held, raised."""
        if self.acknowledged:
            count, self.acknowledged = self.acknowledged, 0
            return count
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        return 0

    def fail(self, exc: SendError) -> None:
        """*exc* from write(): raised now, or held until the acknowledgements held are reported."""
        if not self.acknowledged:
            raise exc
        self.failure = exc


class AckedOnWrite:
    """For transports whose ``write`` returns once the batch is delivered (udp, file, stdout):
    every batch written is acknowledged at once."""

    _unreported = 0

    def _delivered(self) -> None:
        self._unreported += 1

    def acknowledged(self, wait_secs: float) -> int:
        count, self._unreported = self._unreported, 0
        return count


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
