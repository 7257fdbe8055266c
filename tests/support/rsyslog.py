"""A private, real rsyslogd collector for integration tests.

:class:`Rsyslog` starts its own ``rsyslogd -n -f <conf> -i <pidfile>`` (rsyslog
8.2302, Debian 12) with a generated configuration under a test-owned directory.
The system configuration (``/etc/rsyslog.conf``) is never read, no local-log
inputs (imuxsock, imklog) are loaded, and the single network input listens on
127.0.0.1 only.

Generated configuration (``<workdir>/rsyslog.conf``; ``{...}`` filled in)::

    global(
      maxMessageSize="{max_message_size}"     # first statement: before any module loads
      workDirectory="{workdir}/spool"
      processInternalMessages="on"            # own messages stay in this instance,
                                              # never sent to the host's /dev/log/journal
      net.enableDNS="off"
      parser.escapeControlCharactersOnReceive="off"
      parser.escape8BitCharactersOnReceive="off"
      parser.dropTrailingLFOnReception="off"
      parser.supportCompressionExtension="off"
    )
    main_queue(queue.type="FixedArray" queue.size="200000" queue.timeoutShutdown="10000")
    template(name="collector_lenraw" type="list") {
      property(name="$.len") constant(value=" ") property(name="rawmsg") constant(value="\\n")
    }
    ruleset(name="collector") {
      set $.len = strlen($rawmsg);
      action(type="omfile" name="collector_messages" file="{workdir}/messages.bin"
             template="collector_lenraw" flushOnTXEnd="on" asyncWriting="off"
             ioBufferSize="64k" fileCreateMode="0600")
    }
    # exactly one of:
    module(load="imudp")
    input(type="imudp" name="collector_udp" address="127.0.0.1" port="{port}"
          ruleset="collector" rcvbufSize="32m")
    # -- or --
    module(load="imtcp" maxSessions="1000")
    input(type="imtcp" name="collector_tcp" address="127.0.0.1" port="{port}"
          ruleset="collector" supportOctetCountedFraming="on" maxFrameSize="{max}"
          [streamDriver.name="gtls|ossl" streamDriver.mode="1"
           streamDriver.authMode="anon|x509/certvalid|x509/name"
           streamDriver.CAFile=... streamDriver.CertFile=... streamDriver.KeyFile=...
           permittedPeer=[...]])                            # tls only
    # rsyslogd's own messages (the input is bound to another ruleset, so only
    # internal messages reach the default ruleset)
    *.* action(type="omfile" name="collector_internal" file="{workdir}/rsyslogd-internal.log"
               flushOnTXEnd="on" asyncWriting="off")

Output encoding: every message is written as ``b"<decimal byte length> <rawmsg>\\n"``
(the length is ``strlen($rawmsg)``, which counts bytes). :meth:`Rsyslog.messages`
parses that framing, so messages containing LF, CR or any other byte split
unambiguously; a record whose trailing ``\\n`` is not where the length says it
must be raises :class:`CollectorFormatError`. A half-written record at the end
of the file (writer mid-``write()``) is treated as "not arrived yet".

What rsyslog alters (verified by ``tests/integration/test_collector_fixture.py``;
everything not listed here, including UTF-8, a UTF-8 BOM (at the very start
of the frame or before the RFC 5424 MSG), invalid UTF-8, DEL/ESC/BEL, leading and
trailing spaces, TAB, CR, LF inside the message, ``\\|``/``\\=``/``\\\\`` and the
RFC 5424 / RFC 3164 headers, comes through ``rawmsg`` byte for byte):

* Framing is removed, as it should be: the ``"<len> "`` octet count (TCP/TLS)
  and the terminating LF of a newline-delimited frame are not part of rawmsg.
  A trailing LF *inside* an octet-counted frame or a UDP datagram is kept
  (``parser.dropTrailingLFOnReception="off"``).
* A single NUL byte at the very end of a message is silently dropped, and a NUL
  byte anywhere else is replaced by the four bytes ``#000`` -- the rsyslog
  parser does this unconditionally (it cannot be switched off).
* Newline-delimited TCP framing ("octet stuffing") cannot carry a message that
  contains LF (it is split into two messages), and a newline-delimited frame
  whose first byte is an ASCII digit is taken for an octet-counted frame
  (imtcp decides the framing per frame by its first byte). Neither affects
  syslog messages, which start with ``<PRI>``.
* Empty messages are never recorded (an empty UDP datagram, an empty
  newline-delimited frame). RFC 6587 forbids a zero octet count; imtcp
  garbles the frame after a ``"0 "``. Whitespace-only messages are recorded.
* A message of up to ``max_message_size`` bytes (default 1 MiB) arrives whole.
  A longer octet-counted frame is a framing error: imtcp falls back to
  newline framing and records garbled pieces (count digits included).
* UDP: a datagram carries at most 65507 bytes over IPv4; bigger messages need
  TCP/TLS. Datagrams still in the kernel socket buffer when rsyslogd is
  stopped or killed are lost (UDP has no delivery guarantee).

Caveats discovered while building this:

* ``processInternalMessages`` defaults to "off" in this build, which sends
  rsyslogd's own messages to the *system* log socket. It is switched on here so
  they land in ``rsyslogd-internal.log`` instead (start-up, errors, the UDP
  buffer size actually granted, "exiting on signal 15").
* rsyslogd keeps running when an input cannot bind its port (it only logs an
  error), so :meth:`Rsyslog.start` checks ``/proc`` for a socket *owned by
  this rsyslogd process* that is bound/listening on 127.0.0.1:port, and waits
  for the ``[origin software="rsyslogd" ...] start`` line.
* ``rcvbufSize="32m"``: rsyslogd runs as root and uses ``SO_RCVBUFFORCE``, so
  the kernel grants 64 MiB (doubled) regardless of ``net.core.rmem_max``; the
  granted size is logged in rsyslogd-internal.log. 3000 back-to-back
  datagrams are not dropped.
* Sender-side TLS pitfall (matters for the forwarder too): a TLS client that
  calls ``close()`` right after ``sendall()`` can lose its last messages. The
  server's TLS 1.3 session tickets sit unread in the client's receive buffer,
  so the kernel turns the close into a RST, and rsyslog drops whatever it had
  not read yet (seen with ossl: "SSL_ERROR_SYSCALL ... errno=104", "Incomplete
  frame at end of stream"). Close gracefully: send close_notify
  (``SSLSocket.unwrap()``) and read until the server closes -- at which point
  rsyslog has read everything. gtls answers close_notify with a bare FIN
  (Python raises ``SSLEOFError``), ossl with close_notify.
* imtcp's ``maxFrameSize`` (largest accepted octet count) defaults to 200000;
  it is raised to ``max_message_size`` so long octet-counted frames are not
  rejected as framing errors.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

RSYSLOGD = os.environ.get("FORWARDER_TEST_RSYSLOGD", "/usr/sbin/rsyslogd")

PROTOCOLS = ("udp", "tcp", "tls", "relp", "relp-tls")
TLS_DRIVERS = ("gtls", "ossl")
TLS_AUTH_MODES = ("anon", "x509/certvalid", "x509/name")
# imrelp's tls.tlslib for each imtcp stream driver name (gnutls asks for a client certificate
# even without tls.authMode: its default mode is fingerprint).
_RELP_TLS_LIBS = {"gtls": "gnutls", "ossl": "openssl"}
# The Debian package that ships each rsyslog module this fixture loads (imtcp loads its stream
# driver lmnsd_<driver> itself; librelp does RELP's TLS with either library). A module that
# cannot be loaded is named with its package in the start-up error; tests/unit/
# test_fresh_machine.py holds this table against the packages scripts/test installs.
MODULE_PACKAGES = {
    "imudp": "rsyslog",
    "imtcp": "rsyslog",
    "lmnsd_ptcp": "rsyslog",
    "lmnsd_gtls": "rsyslog-gnutls",
    "lmnsd_ossl": "rsyslog-openssl",
    "imrelp": "rsyslog-relp",
}
# rsyslogd's words for a module it could not load (message 2066).
_LOAD_FAILED = re.compile(r"could not load module '([^']+)'")

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0

_LOOPBACK = "127.0.0.1"
_LIVE: set[Rsyslog] = set()  # strong refs: running instances are killed at exit


class CollectorError(RuntimeError):
    """rsyslogd could not be started or misbehaved."""


class CollectorFormatError(CollectorError):
    """The collector's output file does not follow the length-prefixed format."""


def free_port(kind: str = "both") -> int:
    """Return a loopback port that is currently free.

    ``kind`` is ``"tcp"``, ``"udp"`` or ``"both"`` (free for TCP and UDP). There is
    an unavoidable race between this check and the server binding the port;
    :meth:`Rsyslog.start` retries with a new port when it picked the port itself.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((_LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            if kind == "tcp":
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((_LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise CollectorError("could not find a free loopback port")


def missing_packages(log: str) -> str:
    """One line per module rsyslogd says (in *log*) it could not load, naming the Debian
    package that ships it; "" when none failed to load."""
    lines = []
    for module in dict.fromkeys(_LOAD_FAILED.findall(log)):
        package = MODULE_PACKAGES.get(module)
        fix = (
            f"install the Debian package {package} (./scripts/test does)"
            if package
            else "add the Debian package that ships it to MODULE_PACKAGES and scripts/test"
        )
        lines.append(f"rsyslogd could not load module {module}: {fix}\n")
    return "".join(lines)


def _quote(value: str | Path) -> str:
    """Quote a value for a RainerScript string literal."""
    text = str(value)
    if any(c in text for c in '"\\\n\r'):
        raise ValueError(f"unsupported character in rsyslog config value: {text!r}")
    return f'"{text}"'


def parse_records(data: bytes) -> tuple[list[bytes], int]:
    """Parse ``b"<len> <bytes>\\n"`` records.

    Returns the complete messages and the number of bytes they occupy; an
    incomplete record at the end is not returned (it is still being written).
    Raises :class:`CollectorFormatError` on malformed data.
    """
    messages: list[bytes] = []
    pos = 0
    end = len(data)
    while pos < end:
        space = data.find(b" ", pos, pos + 21)
        if space < 0:
            if end - pos > 20 or not data[pos:end].isdigit():
                raise CollectorFormatError(f"bad record header at offset {pos}: {data[pos : pos + 40]!r}")
            break  # header still being written
        header = data[pos:space]
        if not header.isdigit():
            raise CollectorFormatError(f"bad record header at offset {pos}: {data[pos : pos + 40]!r}")
        length = int(header)
        body_start = space + 1
        body_end = body_start + length
        if body_end >= end:
            break  # body or trailing LF still being written
        if data[body_end : body_end + 1] != b"\n":
            raise CollectorFormatError(
                f"record at offset {pos} claims {length} bytes but is not followed by LF"
            )
        messages.append(data[body_start:body_end])
        pos = body_end + 1
    return messages, pos


class Rsyslog:
    """A private rsyslogd with exactly one network input on 127.0.0.1.

    ``protocol`` is ``"udp"`` (imudp), ``"tcp"`` (imtcp; accepts RFC 6587
    octet-counted and newline-terminated frames) or ``"tls"`` (imtcp with the
    ``tls_driver`` stream driver, ``gtls`` or ``ossl``; the server certificate
    comes from ``tls_cert_file``/``tls_key_file``, client certificates are
    checked against ``tls_ca_file`` when ``tls_auth_mode`` is not ``"anon"``,
    and with ``"x509/name"`` their names must match ``tls_permitted_peers``).

    All files live in ``workdir`` (created if needed): ``rsyslog.conf``,
    ``rsyslogd.pid``, ``messages.bin`` (received messages), ``rsyslogd-internal.log``
    (rsyslogd's own messages), ``rsyslogd.stderr``/``rsyslogd.stdout`` and ``spool/``.
    The port stays the same across :meth:`stop`/:meth:`start`, and so does
    ``messages.bin``: :meth:`messages` returns everything received by every run.
    """

    def __init__(
        self,
        workdir: Path,
        protocol: str,
        *,
        port: int | None = None,
        tls_ca_file: str | Path | None = None,
        tls_cert_file: str | Path | None = None,
        tls_key_file: str | Path | None = None,
        tls_auth_mode: str = "anon",
        tls_driver: str = "gtls",
        tls_permitted_peers: Sequence[str] | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        udp_rcvbuf: str = "32m",
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
        if protocol in ("tls", "relp-tls"):
            if tls_driver not in TLS_DRIVERS:
                raise ValueError(f"tls_driver must be one of {TLS_DRIVERS}, not {tls_driver!r}")
            if tls_auth_mode not in TLS_AUTH_MODES:
                raise ValueError(f"tls_auth_mode must be one of {TLS_AUTH_MODES}, not {tls_auth_mode!r}")
            if tls_cert_file is None or tls_key_file is None:
                raise ValueError(f"protocol {protocol!r} needs tls_cert_file and tls_key_file")
            if tls_auth_mode != "anon" and tls_ca_file is None:
                raise ValueError(f"tls_auth_mode {tls_auth_mode!r} needs tls_ca_file")
        self.workdir: Path = Path(workdir)
        self.protocol: str = protocol
        self._port_given = port is not None
        self.port: int = port if port is not None else free_port("udp" if protocol == "udp" else "tcp")
        self.tls_ca_file: Path | None = Path(tls_ca_file) if tls_ca_file else None
        self.tls_cert_file: Path | None = Path(tls_cert_file) if tls_cert_file else None
        self.tls_key_file: Path | None = Path(tls_key_file) if tls_key_file else None
        self.tls_auth_mode: str = tls_auth_mode
        self.tls_driver: str = tls_driver
        self.tls_permitted_peers: tuple[str, ...] = tuple(tls_permitted_peers or ())
        self.max_message_size: int = max_message_size
        self.udp_rcvbuf: str = udp_rcvbuf

        self.conf_file: Path = self.workdir / "rsyslog.conf"
        self.pid_file: Path = self.workdir / "rsyslogd.pid"
        self.messages_file: Path = self.workdir / "messages.bin"
        self.internal_log: Path = self.workdir / "rsyslogd-internal.log"
        self.stderr_file: Path = self.workdir / "rsyslogd.stderr"
        self.stdout_file: Path = self.workdir / "rsyslogd.stdout"
        self.spool_dir: Path = self.workdir / "spool"

        self._proc: subprocess.Popen[bytes] | None = None
        self._baseline: int = 0  # byte offset in messages_file; see clear()
        self._stderr_offset: int = 0  # where the current run's stderr starts
        self._internal_offset: int = 0  # where the current run's internal log starts

    # ------------------------------------------------------------------ config
    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", port)``, for ``socket.connect``/``sendto``."""
        return (_LOOPBACK, self.port)

    def modules(self) -> list[str]:
        """The rsyslog modules this instance loads (its input, and imtcp's stream driver)."""
        if self.protocol.startswith("relp"):
            return ["imrelp"]
        if self.protocol == "udp":
            return ["imudp"]
        return ["imtcp", "lmnsd_" + (self.tls_driver if self.protocol == "tls" else "ptcp")]

    def config_text(self) -> str:
        """Return the rsyslog configuration this instance runs with."""
        lines = [
            "# Generated by tests/support/rsyslog.py: a private test collector.",
            "global(",
            f'  maxMessageSize="{self.max_message_size}"',
            f"  workDirectory={_quote(self.spool_dir)}",
            '  processInternalMessages="on"',
            '  net.enableDNS="off"',
            '  parser.escapeControlCharactersOnReceive="off"',
            '  parser.escape8BitCharactersOnReceive="off"',
            '  parser.dropTrailingLFOnReception="off"',
            '  parser.supportCompressionExtension="off"',
            ")",
            # RELP: a direct queue writes each message before imrelp answers it, so an answered
            # message survives a kill -9 of the collector (a queue in memory would not).
            'main_queue(queue.type="Direct")'
            if self.protocol.startswith("relp")
            else 'main_queue(queue.type="FixedArray" queue.size="200000" queue.timeoutShutdown="10000")',
            'template(name="collector_lenraw" type="list") {',
            '  property(name="$.len") constant(value=" ") property(name="rawmsg") constant(value="\\n")',
            "}",
            'ruleset(name="collector") {',
            "  set $.len = strlen($rawmsg);",
            f'  action(type="omfile" name="collector_messages" file={_quote(self.messages_file)}',
            '         template="collector_lenraw" flushOnTXEnd="on" asyncWriting="off"',
            '         ioBufferSize="64k" fileCreateMode="0600")',
            "}",
        ]
        if self.protocol.startswith("relp"):  # imrelp: RELP with application-level acknowledgements
            tls = self.protocol == "relp-tls"
            tls_lib = f' tls.tlslib="{_RELP_TLS_LIBS[self.tls_driver]}"' if tls else ""
            lines += [
                f'module(load="imrelp"{tls_lib})',
                f'input(type="imrelp" name="collector_relp" address="{_LOOPBACK}" port="{self.port}"',
                f'      ruleset="collector" maxDataSize="{self.max_message_size}"',
            ]
            if tls:  # librelp's TLS: its own names for rsyslog's settings
                assert self.tls_cert_file is not None and self.tls_key_file is not None
                lines += [
                    f'      tls="on" tls.myCert={_quote(self.tls_cert_file.resolve())}',
                    f"      tls.myPrivKey={_quote(self.tls_key_file.resolve())}",
                ]
                if self.tls_ca_file is not None:
                    lines.append(f"      tls.caCert={_quote(self.tls_ca_file.resolve())}")
                if self.tls_auth_mode != "anon":  # anon: no client certificate asked (openssl only)
                    lines.append(f'      tls.authMode="{self.tls_auth_mode.removeprefix("x509/")}"')
                if self.tls_permitted_peers:
                    peers = ", ".join(_quote(p) for p in self.tls_permitted_peers)
                    lines.append(f"      tls.permittedPeer=[{peers}]")
            lines[-1] += ")"
        elif self.protocol == "udp":
            lines += [
                'module(load="imudp")',
                f'input(type="imudp" name="collector_udp" address="{_LOOPBACK}" port="{self.port}"',
                f'      ruleset="collector" rcvbufSize={_quote(self.udp_rcvbuf)})',
            ]
        else:
            lines += [
                'module(load="imtcp" maxSessions="1000")',
                f'input(type="imtcp" name="collector_{self.protocol}" address="{_LOOPBACK}"'
                f' port="{self.port}"',
                '      ruleset="collector" supportOctetCountedFraming="on"'
                f' maxFrameSize="{self.max_message_size}"',
            ]
            if self.protocol == "tls":
                assert self.tls_cert_file is not None and self.tls_key_file is not None
                lines += [
                    f'      streamDriver.name="{self.tls_driver}" streamDriver.mode="1"'
                    f' streamDriver.authMode="{self.tls_auth_mode}"',
                    f"      streamDriver.CertFile={_quote(self.tls_cert_file.resolve())}",
                    f"      streamDriver.KeyFile={_quote(self.tls_key_file.resolve())}",
                ]
                if self.tls_ca_file is not None:
                    lines.append(f"      streamDriver.CAFile={_quote(self.tls_ca_file.resolve())}")
                if self.tls_permitted_peers:
                    peers = ", ".join(_quote(p) for p in self.tls_permitted_peers)
                    lines.append(f"      permittedPeer=[{peers}]")
            lines[-1] += ")"
        lines += [
            f'*.* action(type="omfile" name="collector_internal" file={_quote(self.internal_log)}',
            '           flushOnTXEnd="on" asyncWriting="off")',
            "",
        ]
        return "\n".join(lines)

    # --------------------------------------------------------------- lifecycle
    @property
    def pid(self) -> int | None:
        """The running rsyslogd's pid, or None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether rsyslogd is running."""
        return self.pid is not None

    def start(self, timeout: float = START_TIMEOUT) -> Rsyslog:
        """Start rsyslogd and wait until its input really listens; returns self.

        Raises :class:`CollectorError` (with rsyslogd's stderr and internal log)
        if it is not ready within ``timeout`` seconds. When the port was picked
        automatically and turns out to be taken, a new one is picked (3 tries).
        """
        if self.running:
            raise CollectorError(f"rsyslogd already running (pid {self.pid})")
        attempts = 1 if self._port_given else 3
        for attempt in range(attempts):
            try:
                self._start_once(timeout)
                return self
            except CollectorError:
                self._terminate(signal.SIGKILL)
                if attempt + 1 >= attempts or not self._port_in_use():
                    raise
                self.port = free_port("udp" if self.protocol == "udp" else "tcp")
        raise AssertionError("unreachable")

    def _port_in_use(self) -> bool:
        kind = socket.SOCK_DGRAM if self.protocol == "udp" else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(self.address)
            except OSError:
                return True
        return False

    def _start_once(self, timeout: float) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.spool_dir.mkdir(exist_ok=True)
        self.conf_file.write_text(self.config_text(), encoding="utf-8")
        self.pid_file.unlink(missing_ok=True)  # a stale pid file (after kill()) blocks start
        internal_offset = self.internal_log.stat().st_size if self.internal_log.exists() else 0
        with self.stdout_file.open("ab") as out, self.stderr_file.open("ab") as err:
            self._stderr_offset = err.tell()
            self._internal_offset = internal_offset
            self._proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.conf_file), "-i", str(self.pid_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                start_new_session=True,  # no terminal signals (Ctrl-C) from pytest's tty
            )
        _LIVE.add(self)
        pid = self._proc.pid
        start_marker = f'x-pid="{pid}"'.encode()
        t0 = time.monotonic()
        deadline = t0 + timeout
        started_at: float | None = None
        while True:
            rc = self._proc.poll()
            if rc is not None:
                self._proc = None
                _LIVE.discard(self)
                raise CollectorError(
                    f"{self._missing_packages()}rsyslogd exited with status {rc} during start-up\n"
                    f"{self._diagnostics()}"
                )
            if started_at is None:
                log = self._read_from(self.internal_log, internal_offset)
                if start_marker in log and b"] start" in log:
                    started_at = time.monotonic()
            if started_at is not None and self._listening(pid):
                return
            now = time.monotonic()
            # The input binds before rsyslogd logs "start"; a missing socket 1.5 s
            # after that means the input failed (rsyslogd keeps running anyway).
            if now > deadline or (started_at is not None and now - started_at > 1.5):
                why = "has not logged its start and" if started_at is None else "logged its start but"
                raise CollectorError(
                    f"{self._missing_packages()}rsyslogd (pid {pid}) {why} is not listening on"
                    f" {self.protocol} {_LOOPBACK}:{self.port} after {now - t0:.1f}s\n{self._diagnostics()}"
                )
            time.sleep(0.02)

    def _listening(self, pid: int) -> bool:
        """Whether process ``pid`` owns a socket bound (UDP) / listening (TCP) on our port."""
        inodes: set[str] = set()
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
        except OSError:
            return False
        table = "/proc/net/udp" if self.protocol == "udp" else "/proc/net/tcp"
        want_local = f"0100007F:{self.port:04X}"
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            return False
        for row in rows:
            cols = row.split()
            if len(cols) < 10 or cols[1] != want_local or cols[9] not in inodes:
                continue
            if self.protocol == "udp" or cols[3] == "0A":  # 0A = TCP_LISTEN
                return True
        return False

    @staticmethod
    def _read_from(path: Path, offset: int) -> bytes:
        try:
            with path.open("rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def _missing_packages(self) -> str:
        """The packages of the modules this run could not load (see :func:`missing_packages`)."""
        err = self._read_from(self.stderr_file, self._stderr_offset)
        log = self._read_from(self.internal_log, self._internal_offset)
        return missing_packages((err + log).decode(errors="replace"))

    def _diagnostics(self) -> str:
        err = self._read_from(self.stderr_file, self._stderr_offset)
        log = self._read_from(self.internal_log, self._internal_offset)
        return (
            f"--- rsyslogd stderr ({self.stderr_file}):\n{err.decode(errors='replace')}"
            f"--- rsyslogd internal log ({self.internal_log}):\n{log.decode(errors='replace')}"
            f"--- config ({self.conf_file}):\n{self.config_text()}"
        )

    def internal_messages(self) -> str:
        """Everything rsyslogd logged about itself (all runs), decoded leniently."""
        return self._read_from(self.internal_log, 0).decode(errors="replace")

    def _terminate(self, sig: signal.Signals) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None
        _LIVE.discard(self)
        return proc.returncode

    def stop(self) -> None:
        """Stop rsyslogd with SIGTERM and wait (SIGKILL after 15 s). Idempotent.

        rsyslogd drains its queue on SIGTERM, so afterwards every message it
        had read from the network is in :attr:`messages_file`.
        """
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """Kill rsyslogd with SIGKILL (a crash: queued messages may be lost). Idempotent."""
        self._terminate(signal.SIGKILL)

    def restart(self) -> Rsyslog:
        """stop() then start() on the same port; returns self."""
        self.stop()
        return self.start()

    def __enter__(self) -> Rsyslog:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<Rsyslog {self.protocol} {_LOOPBACK}:{self.port} {state} {self.workdir}>"

    # ---------------------------------------------------------------- messages
    def messages(self) -> list[bytes]:
        """Every message received so far (since the last :meth:`clear`), exactly as framed.

        Messages are returned in the order rsyslog wrote them, which is arrival
        order for one sender connection.
        """
        data = self._read_from(self.messages_file, self._baseline)
        return parse_records(data)[0]

    def clear(self) -> None:
        """Forget the messages received so far: later :meth:`messages` calls omit them."""
        data = self._read_from(self.messages_file, self._baseline)
        self._baseline += parse_records(data)[1]

    def wait_for(self, count: int, timeout: float = 30) -> list[bytes]:
        """Poll until at least ``count`` messages arrived; return all of them.

        Raises AssertionError saying how many arrived if ``timeout`` expires.
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            msgs = self.messages()
            if len(msgs) >= count:
                return msgs
            if time.monotonic() >= deadline:
                state = "running" if self.running else "NOT running"
                raise AssertionError(
                    f"expected at least {count} messages at {self.protocol} collector"
                    f" {_LOOPBACK}:{self.port} within {timeout}s, got {len(msgs)}"
                    f" (rsyslogd {state}; see {self.workdir})"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def assert_quiet(self, count: int, settle: float = 0.5) -> list[bytes]:
        """Wait for ``count`` messages, then ``settle`` seconds more, and assert that exactly
        ``count`` arrived (none trickled in after)."""
        self.wait_for(count)
        time.sleep(settle)
        msgs = self.messages()
        assert len(msgs) == count, f"expected exactly {count} messages, got {len(msgs)}"
        return msgs


class CollectorFactory(Protocol):
    """Type of the ``collector`` fixture (tests/integration/conftest.py)."""

    def __call__(self, protocol: str, **kw: Any) -> Rsyslog:
        """Start and return a collector for ``protocol``; keywords go to :class:`Rsyslog`."""
        ...


@atexit.register
def _kill_leftovers() -> None:
    """Never leave an rsyslogd behind if a test forgot to stop one."""
    for inst in list(_LIVE):
        inst.kill()
