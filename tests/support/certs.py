"""Per-run TLS material for integration tests, minted with ``trustme``.

:func:`mint_server_certs` creates a throw-away CA and a server certificate valid
for ``localhost`` and ``127.0.0.1`` and writes them as PEM files;
:func:`mint_client_cert` issues a client certificate from the same CA (for
mutual TLS against a collector started with ``tls_auth_mode="x509/certvalid"``
or ``"x509/name"``). Keys are ECDSA P-256 (trustme's default), which both
rsyslog TLS drivers (gtls, ossl) and Python's ``ssl`` accept. trustme's leaf
certificates carry both the serverAuth and clientAuth extended key usages.

Nothing here is secret: the files are test fixtures and are thrown away with
the pytest tmp dir.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme

SERVER_IDENTITIES: tuple[str, ...] = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS server: the CA that signed it, its chain and its key.

    ``ca`` is the in-memory trustme CA, kept so that more certificates (e.g.
    client certificates) can be issued from it; it takes no part in equality.
    """

    ca_file: Path
    cert_file: Path
    key_file: Path
    ca: trustme.CA = field(repr=False, compare=False)

    def client_context(self) -> ssl.SSLContext:
        """An ``ssl`` client context that trusts only this CA (hostname checks on)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        return ctx


@dataclass(frozen=True)
class ClientCert:
    """PEM files of a client certificate (leaf + chain) and its private key."""

    cert_file: Path
    key_file: Path
    common_name: str


def mint_server_certs(directory: Path) -> TlsFiles:
    """Mint a CA and a server cert for localhost/127.0.0.1 into ``directory``.

    Writes ``ca.pem``, ``server.pem`` (leaf then chain) and ``server.key``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="forwarder tests")
    server = ca.issue_cert(*SERVER_IDENTITIES, common_name="localhost")
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key_file))
    key_file.chmod(0o600)
    return TlsFiles(ca_file=ca_file, cert_file=cert_file, key_file=key_file, ca=ca)


def mint_client_cert(
    tls: TlsFiles,
    directory: Path,
    common_name: str = "forwarder-client",
    *identities: str,
) -> ClientCert:
    """Issue a client certificate from ``tls.ca`` into ``directory``.

    The certificate's subject CN is ``common_name`` and its subjectAltName holds
    ``identities`` (default: ``common_name`` as a DNS name), which is what
    rsyslog's ``x509/name`` mode matches against ``permittedPeer``. Writes
    ``<common_name>.pem`` and ``<common_name>.key``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    leaf = tls.ca.issue_cert(*(identities or (common_name,)), common_name=common_name)
    cert_file = directory / f"{common_name}.pem"
    key_file = directory / f"{common_name}.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key_file))
    key_file.chmod(0o600)
    return ClientCert(cert_file=cert_file, key_file=key_file, common_name=common_name)


def context_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) in memory, from a new CA; the server's certificate
    is valid for ``localhost`` and ``127.0.0.1``."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*SERVER_IDENTITIES).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client
