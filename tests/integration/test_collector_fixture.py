"""Self-tests of the integration-test infrastructure (tests/support).

Plain Python sockets are the sender, so these prove what the real rsyslog
collector records (byte for byte, or exactly how it alters a message) and that
the moto S3 endpoint and TLS material work -- before any forwarder code is
involved.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.support.certs import TlsFiles, mint_client_cert
from tests.support.rsyslog import (
    CollectorError,
    CollectorFactory,
    CollectorFormatError,
    Rsyslog,
    free_port,
    parse_records,
)
from tests.support.s3 import S3Server

pytestmark = pytest.mark.integration

RFC5424 = (
    b"<134>1 2026-11-28T07:25:12.123Z host cato - - - CEF:0|Cato Networks|Cato SASE Platform"
    b"|1.0|Internet Firewall|Internet Firewall|3|rt=1795850712123 src=10.0.0.1"
)
RFC3164 = b"<134>Nov 28 07:25:12 host cato: body"
UTF8 = "<134>1 2026-11-28T07:25:12Z host cato - - - city=Zürich 東京 ✓".encode()
ESCAPES = rb"<134>Nov 28 07:25:12 host cato: CEF:0|Cato\|Networks|x|1|a\=b|c\\d|5|k=v\=w\\"
LEADING_BOM = b"\xef\xbb\xbf<134>Nov 28 07:25:12 host cato: frame starts with a UTF-8 BOM"
BOM = b"<134>1 2026-11-28T07:25:12Z host cato - - - \xef\xbb\xbfBOM-prefixed MSG"
SPACES = b"  <134>Nov 28 07:25:12 host cato: padded with spaces and a tab\t  "
CR_END = b"<134>Nov 28 07:25:12 host cato: ends with CR\r"
HIGH_BYTES = b"<134>Nov 28 07:25:12 host cato: latin-1 \xe9 and invalid utf-8 \xff\xfe"
CONTROL = b"<134>Nov 28 07:25:12 host cato: bell\x07 esc\x1b del\x7f"

# Messages every transport can carry (no LF: newline framing cannot).
COMMON = [RFC5424, RFC3164, UTF8, ESCAPES, LEADING_BOM, BOM, SPACES, CR_END, HIGH_BYTES, CONTROL]


def big(n: int, tag: bytes = b"big") -> bytes:
    """A valid-looking RFC 5424 message of exactly n bytes with varied content."""
    head = b"<134>1 2026-11-28T07:25:12Z host cato - - - " + tag + b" "
    body = ("Zürich 東京 \\| \\= \\\\ 0123456789 " * (n // 20 + 1)).encode()
    msg = (head + body)[:n]
    return msg.decode("utf-8", errors="ignore").encode()[:n].ljust(n, b"x")


BIG_70K = big(70_000)
BIG_300K = big(300_000)
UDP_MAX = big(65_507, b"udpmax")  # largest IPv4 UDP payload


def octet(msg: bytes) -> bytes:
    """RFC 6587 octet-counted frame."""
    return b"%d %s" % (len(msg), msg)


def send_udp(port: int, msgs: Iterable[bytes]) -> None:
    """One datagram per message."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for m in msgs:
            s.sendto(m, ("127.0.0.1", port))


def send_tcp(port: int, data: bytes, *, confirm: bool = False) -> None:
    """Send bytes over one TCP connection.

    With ``confirm``, half-close and wait for rsyslog to close its side: it has
    then read (and queued) everything we sent.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        if confirm:
            s.shutdown(socket.SHUT_WR)
            assert s.recv(1) == b""


def send_tls(
    port: int,
    data: bytes,
    ctx: ssl.SSLContext,
    server_hostname: str = "localhost",
) -> None:
    """Send bytes over one TLS connection verified with ``ctx``, then close gracefully.

    A plain ``close()`` right after ``sendall`` can lose the tail: the server's
    TLS 1.3 session tickets sit unread in our receive buffer, so the kernel
    answers the close with RST and rsyslog discards what it had not yet read
    (seen with the ossl driver). So: send close_notify (``unwrap``) and wait
    until rsyslog closes its side -- it has then read everything we sent.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        tls = ctx.wrap_socket(raw, server_hostname=server_hostname)
        try:
            tls.sendall(data)
            plain = tls.unwrap()  # gtls answers close_notify with a bare FIN: SSLEOFError
            while plain.recv(4096):
                pass
        except ssl.SSLEOFError:
            pass
        finally:
            tls.close()


# --------------------------------------------------------------------------- UDP
def test_udp_datagrams_arrive_byte_for_byte(collector: CollectorFactory) -> None:
    rs = collector("udp")
    sent = [*COMMON, b"<134>Nov 28 07:25:12 host cato: two\nlines\n", UDP_MAX]
    send_udp(rs.port, sent)
    assert rs.wait_for(len(sent), timeout=10) == sent
    assert rs.assert_quiet(len(sent), settle=0.2) == sent


def test_udp_burst_of_3000_datagrams_all_arrive(collector: CollectorFactory) -> None:
    rs = collector("udp")
    granted = re.search(r"actual os socket rcvbuf size (\d+)", rs.internal_messages())
    assert granted is not None and int(granted.group(1)) >= 32 * 1024 * 1024
    sent = [
        b"<134>1 2026-11-28T07:25:12Z host cato - - - CEF:0|seq=%06d|%s" % (i, b"p" * 200)
        for i in range(3000)
    ]
    send_udp(rs.port, sent)
    got = rs.wait_for(3000, timeout=20)
    assert sorted(got) == sent  # nothing lost, nothing duplicated
    assert got == sent  # one sender, one socket: order kept too


# --------------------------------------------------------------------------- TCP
def test_tcp_octet_counted_frames_arrive_byte_for_byte(collector: CollectorFactory) -> None:
    rs = collector("tcp")
    sent = [
        *COMMON,
        BIG_70K,
        BIG_300K,  # above imtcp's default maxFrameSize (200000)
        b"<134>Nov 28 07:25:12 host cato: embedded\nnewline and trailing one\n",
        b"7 digits",  # starts with a digit: only octet counting can carry it
    ]
    send_tcp(rs.port, b"".join(octet(m) for m in sent))
    assert rs.wait_for(len(sent), timeout=10) == sent


def test_tcp_newline_frames_arrive_byte_for_byte(collector: CollectorFactory) -> None:
    rs = collector("tcp")
    sent = [*COMMON, BIG_70K]
    send_tcp(rs.port, b"".join(m + b"\n" for m in sent))
    assert rs.wait_for(len(sent), timeout=10) == sent


def test_tcp_mixed_framing_on_separate_connections(collector: CollectorFactory) -> None:
    rs = collector("tcp")
    send_tcp(rs.port, octet(RFC5424) + octet(RFC3164), confirm=True)
    send_tcp(rs.port, UTF8 + b"\n", confirm=True)
    assert rs.wait_for(3, timeout=10) == [RFC5424, RFC3164, UTF8]


def test_nul_bytes_are_the_documented_alteration(collector: CollectorFactory) -> None:
    """rsyslog's parser drops one trailing NUL and turns inner NULs into '#000'."""
    rs = collector("tcp")
    send_tcp(rs.port, octet(b"<134>a\x00b") + octet(b"<134>trailing\x00"))
    assert rs.wait_for(2, timeout=10) == [b"<134>a#000b", b"<134>trailing"]


def test_empty_messages_are_the_documented_alteration(collector: CollectorFactory) -> None:
    """Empty messages are never recorded; whitespace-only ones are."""
    udp = collector("udp")
    send_udp(udp.port, [b"", b" ", b"\n", b"<134>last"])
    tcp = collector("tcp")
    send_tcp(tcp.port, b"\n" + octet(b" ") + b"\n<134>last\n", confirm=True)
    assert udp.wait_for(3, timeout=10) == [b" ", b"\n", b"<134>last"]
    assert tcp.wait_for(2, timeout=10) == [b" ", b"<134>last"]
    assert udp.assert_quiet(3, settle=0.2) and tcp.assert_quiet(2, settle=0)


# --------------------------------------------------------------------------- TLS
@pytest.mark.parametrize("driver", ["gtls", "ossl"])
def test_tls_octet_counted_frames_arrive_byte_for_byte(
    collector: CollectorFactory, certs: TlsFiles, driver: str
) -> None:
    rs = collector("tls", tls_driver=driver)
    sent = [*COMMON, BIG_70K]
    send_tls(rs.port, b"".join(octet(m) for m in sent), certs.client_context())
    assert rs.wait_for(len(sent), timeout=10) == sent


def test_tls_certificate_is_valid_for_ip_and_rejected_without_ca(
    collector: CollectorFactory, certs: TlsFiles
) -> None:
    rs = collector("tls")
    send_tls(rs.port, octet(RFC5424), certs.client_context(), server_hostname="127.0.0.1")
    assert rs.wait_for(1, timeout=10) == [RFC5424]
    with pytest.raises(ssl.SSLCertVerificationError):
        send_tls(rs.port, octet(RFC3164), ssl.create_default_context())
    assert rs.assert_quiet(1, settle=0.2) == [RFC5424]


def test_tls_mutual_auth_with_client_cert(
    collector: CollectorFactory, certs: TlsFiles, tmp_path: Path
) -> None:
    client = mint_client_cert(certs, tmp_path / "client", "forwarder.test")
    rs = collector("tls", tls_auth_mode="x509/name", tls_permitted_peers=["forwarder.test"])
    ctx = certs.client_context()
    ctx.load_cert_chain(client.cert_file, client.key_file)
    send_tls(rs.port, octet(RFC5424), ctx)
    assert rs.wait_for(1, timeout=10) == [RFC5424]
    # Without a client certificate the session is dropped: nothing is recorded.
    try:
        with (
            socket.create_connection(rs.address, timeout=3) as raw,
            certs.client_context().wrap_socket(raw, server_hostname="localhost") as s,
        ):
            s.sendall(octet(RFC3164))
            rejected = s.recv(1) == b""  # TLS 1.3: the rejection shows up on read
    except TimeoutError:
        rejected = False  # still connected: not rejected
    except (ssl.SSLError, ConnectionError):
        rejected = True
    assert rejected
    assert rs.assert_quiet(1, settle=0.2) == [RFC5424]


# ---------------------------------------------------------------- lifecycle
@pytest.mark.parametrize("protocol", ["udp", "tcp", "tls"])
def test_stop_then_start_on_same_port(collector: CollectorFactory, certs: TlsFiles, protocol: str) -> None:
    rs = collector(protocol)
    port = rs.port

    def send(msg: bytes) -> None:
        if protocol == "udp":
            send_udp(port, [msg])
        elif protocol == "tcp":
            send_tcp(port, octet(msg))
        else:
            send_tls(port, octet(msg), certs.client_context())

    send(b"<134>before restart")
    rs.wait_for(1, timeout=10)
    rs.stop()
    rs.stop()  # idempotent
    assert not rs.running
    rs.start()
    assert rs.port == port
    send(b"<134>after restart")
    assert rs.wait_for(2, timeout=10) == [b"<134>before restart", b"<134>after restart"]


def test_everything_received_is_in_the_file_after_stop(collector: CollectorFactory) -> None:
    rs = collector("tcp")
    sent = [b"<134>1 2026-11-28T07:25:12Z host cato - - - n=%05d" % i for i in range(5000)]
    send_tcp(rs.port, b"".join(octet(m) for m in sent), confirm=True)  # rsyslog read it all
    rs.stop()  # no waiting for the file before stopping
    assert rs.messages() == sent


def test_kill_then_start_again_and_clear(collector: CollectorFactory) -> None:
    rs = collector("tcp")
    send_tcp(rs.port, octet(b"<134>one"))
    rs.wait_for(1, timeout=10)
    rs.kill()
    assert not rs.running
    assert rs.pid_file.exists()  # stale pid file left by SIGKILL must not block start()
    rs.start()
    rs.clear()
    assert rs.messages() == []
    send_tcp(rs.port, octet(b"<134>two"))
    assert rs.wait_for(1, timeout=10) == [b"<134>two"]


def test_context_manager_and_wait_for_timeout(tmp_path: Path) -> None:
    with Rsyslog(tmp_path / "cm", "udp") as rs:
        assert rs.running
        conf = rs.conf_file.read_text()
        assert "/etc/rsyslog" not in conf and "imuxsock" not in conf and "imklog" not in conf
        assert 'address="127.0.0.1"' in conf
        with pytest.raises(AssertionError, match="got 0"):
            rs.wait_for(1, timeout=0.2)
    assert not rs.running


def test_start_fails_fast_with_diagnostics_when_port_taken(tmp_path: Path) -> None:
    port = free_port("tcp")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        rs = Rsyslog(tmp_path / "taken", "tcp", port=port)
        t0 = time.monotonic()
        with pytest.raises(CollectorError, match="not listening") as err:
            rs.start()
        assert time.monotonic() - t0 < 8
        assert "rsyslogd internal log" in str(err.value)
        assert not rs.running


def test_parse_records() -> None:
    data = b"3 abc\n0 \n5 a\nb\nc\n4 ab"
    assert parse_records(data) == ([b"abc", b"", b"a\nb\nc"], 17)
    assert parse_records(b"12")[0] == []  # header still being written
    with pytest.raises(CollectorFormatError):
        parse_records(b"3 abcd\n")
    with pytest.raises(CollectorFormatError):
        parse_records(b"x3 abc\n")


# ------------------------------------------------------------------------ S3
def test_s3_put_get_and_reset(s3: S3Server) -> None:
    client = s3.client()
    assert s3.endpoint_url.startswith("http://127.0.0.1:")
    client.create_bucket(Bucket="cato-logs")
    client.put_object(Bucket="cato-logs", Key="a/b.gz", Body=b"\x1f\x8bdata")
    assert client.get_object(Bucket="cato-logs", Key="a/b.gz")["Body"].read() == b"\x1f\x8bdata"
    s3.reset()
    assert client.list_buckets()["Buckets"] == []


def test_s3_fixture_starts_clean(s3: S3Server) -> None:
    assert s3.client().list_buckets()["Buckets"] == []
    s3.client().create_bucket(Bucket="left-behind")  # the next test's s3 must not see it


def test_s3_fixture_starts_clean_again(s3: S3Server) -> None:
    assert s3.client().list_buckets()["Buckets"] == []


def test_threaded_s3_server_keeps_state_across_restart() -> None:
    with S3Server(threaded=True) as server:
        server.reset()
        server.client().create_bucket(Bucket="kept")
        server.stop()
        with pytest.raises(Exception):  # noqa: B017 - any connection error
            server.client(config=_no_retry()).list_buckets()
        server.start()
        assert [b["Name"] for b in server.client().list_buckets()["Buckets"]] == ["kept"]
        server.reset()


def _no_retry() -> object:
    from botocore.config import Config

    return Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1)
