"""The configuration's typed tree: frozen dataclasses, one per section, and their constants.

A field's ``metadata`` tells the loader how to check it: ``choices``, ``min``/``max``,
``required``, ``nonempty``. Units are in the names (``_secs``, ``_bytes``).

    Config
    ├── pipelines: PipelineConfig, ...   one per account (or integration) forwarded
    │   ├── name
    │   ├── source: SourceConfig          where the events are (by ``kind``)
    │   ├── parser: ParserConfig          how an object's lines become records
    │   ├── output: OutputConfig          the collector, and how events are wrapped for it
    │   ├── checkpoint: CheckpointConfig  where the position is kept
    │   └── batch: BatchConfig            events per acknowledged batch
    ├── log: LogConfig                    the forwarder's own log
    ├── metrics: MetricsConfig            /metrics, /healthz, /readyz
    ├── workers: "auto" or a number       processes reading objects, shared by the pipelines
    └── coordination: Coordination        alone, or a fleet sharing the pipelines (``coordination``)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forwarder.config.coordination import Coordination, NoCoordination
from forwarder.config.fields import choice, limits
from forwarder.config.sources import SOURCE_KINDS, SourceConfig
from forwarder.errors import ConfigError

PROTOCOLS = ("udp", "tcp", "tls", "relp", "relp-tls", "file", "stdout")
NETWORK_PROTOCOLS = ("udp", "tcp", "tls", "relp", "relp-tls")
TLS_PROTOCOLS = ("tls", "relp-tls")
STREAM_PROTOCOLS = ("tcp", "tls")
# output.max_message_bytes when not given. udp: the largest IPv4 UDP payload (65535 - 8 - 20).
# tcp/tls/relp/relp-tls: 1 MiB, parser.max_record_bytes' default, so out of the box any event
# the parser takes passes whole (lower it to the collector's limit). file/stdout: none.
DEFAULT_MAX_MESSAGE_BYTES = {"udp": 65507, **dict.fromkeys(("tcp", "tls", "relp", "relp-tls"), 1 << 20)}
# RFC 5424 6.1: every receiver MUST take messages of 480 octets; a smaller limit is refused.
MIN_MESSAGE_BYTES = 480
# output.max_events_per_sec when not given, udp only (the transport paces each datagram):
# a burst of 3,000 datagrams into rsyslog with the default receive buffer lost 28-57% of
# them; paced at 5,000/s in 10 ms slices none, at 10,000/s up to 3% (2-core machine).
UDP_DEFAULT_EVENTS_PER_SEC = 2000
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13,
    "console": 14, "solaris-cron": 15, "local0": 16, "local1": 17, "local2": 18,
    "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip
# output.max_unacked_bytes when not given. TCP over a 20 ms round trip (benchmarks/links.py,
# 200k events): 1 MiB took 1.64x the time of the same link at 0 ms, 4 MiB 1.14x, 16 MiB
# 1.08x. 4 MiB allows 200 MB/s at 20 ms, and bounds what a crash resends.
DEFAULT_MAX_UNACKED_BYTES = 4 << 20
# output.relp_window when not given. librelp's default, 128, caps a session at 6,400 messages/s
# at 20 ms round trip; through a proxy adding 10 ms each way to rsyslog's answers
# (benchmarks/links.py, 100k events), 1024 took 2.45x the time at 0 ms, 4096 1.08x.
DEFAULT_RELP_WINDOW = 4096
# The name a single-pipeline file's pipeline gets.
DEFAULT_PIPELINE = "default"
# workers: at most this many processes (far beyond any core count it is meant to follow).
MAX_WORKERS = 256


@dataclass(frozen=True)
class ParserConfig:
    """How an object's lines become records."""

    format: str = field(default="auto", metadata=choice("auto", "cef", "json"))
    max_record_bytes: int = field(default=1_048_576, metadata=limits(64))
    # light: what passthrough checks for free (CEF header fields, whole JSON objects); full:
    # every record parsed (always so with output.encoding cef, leef or json).
    validate: str = field(default="light", metadata=choice("light", "full"))
    # Invalid UTF-8: replace (sent with U+FFFD, counted, dead-lettered), reject (dead-lettered
    # only) or keep (sent as it is, unchecked: the fastest pass-through).
    invalid_utf8: str = field(default="replace", metadata=choice("replace", "reject", "keep"))
    # Records not sent as they were, one JSON line each; empty = dead_letter.jsonl beside the checkpoint.
    dead_letter_path: str = ""


@dataclass(frozen=True)
class TlsConfig:
    """TLS client settings (protocols tls and relp-tls)."""

    ca_file: str = ""  # a file, or a directory of hashed CA certificates
    cert_file: str = ""
    key_file: str = ""
    verify: bool = True
    server_name: str = ""  # the name the certificate must carry; empty = output.host
    min_version: str = field(default="1.2", metadata=choice("1.2", "1.3"))


@dataclass(frozen=True)
class OutputConfig:
    """The collector, and how each event is wrapped for it."""

    protocol: str = field(default="tcp", metadata=choice(*PROTOCOLS))
    host: str = "127.0.0.1"
    port: int = field(default=514, metadata=limits(1, 65535))
    # Failover: collectors as "host:port" (port optional), tried in order; replaces host/port.
    hosts: tuple[str, ...] = ()
    failback_secs: float = field(default=300.0, metadata=limits(1))
    framing: str = field(default="octet_counting", metadata=choice("octet_counting", "newline"))
    header: str = field(default="rfc5424", metadata=choice("rfc5424", "rfc3164", "none"))
    # The header's time: the event's (CEF rt/end, JSON time/creationTime) or when it is sent.
    header_time: str = field(default="event", metadata=choice("event", "now"))
    # The message body: the record's text as it is, or every event rendered as CEF, LEEF or JSON.
    encoding: str = field(default="passthrough", metadata=choice("passthrough", "cef", "leef", "json"))
    app_name: str = field(default="cato", metadata={"nonempty": True})
    hostname: str = ""
    facility: str = field(default="local0", metadata=choice(*FACILITIES))
    tls: TlsConfig = field(default_factory=TlsConfig)
    path: str = ""
    connect_timeout_secs: float = field(default=10.0, metadata=limits(0.1))
    ack_timeout_secs: float = field(default=30.0, metadata=limits(0.1))
    # Bytes of messages sent and not yet acknowledged, at most (one batch goes whatever its
    # size): the window that keeps a long link busy, and what a crash may send again.
    max_unacked_bytes: int = field(default=DEFAULT_MAX_UNACKED_BYTES, metadata=limits(1))
    # relp, relp-tls: messages sent and not yet answered, at most (librelp's default: 128).
    relp_window: int = field(default=DEFAULT_RELP_WINDOW, metadata=limits(1, 100_000))
    retry_initial_secs: float = field(default=1.0, metadata=limits(0.01))
    retry_max_secs: float = field(default=60.0, metadata=limits(0.01))
    # Events (udp: datagrams) per second at most; 0 = no limit. The default depends on the
    # protocol: see UDP_DEFAULT_EVENTS_PER_SEC.
    max_events_per_sec: int = field(default=0, metadata=limits(0))
    # The longest syslog message (header and event, unframed) to send; 0 = no limit. The
    # default depends on the protocol (DEFAULT_MAX_MESSAGE_BYTES); see formats.oversize.
    max_message_bytes: int = field(default=1 << 20, metadata=limits(0))
    oversize: str = field(default="truncate", metadata=choice("truncate", "split", "drop"))


@dataclass(frozen=True)
class CheckpointConfig:
    """Where the position is kept, and how often it is written."""

    path: str = "./state/checkpoint.json"
    # Written (and fsynced) at most this often while delivering; also at every stop, at the
    # end of a pass, before a gap or bad-file note, and whenever pacing or a retry waits.
    interval_secs: float = field(default=1.0, metadata=limits(0))
    # Quarantined objects are listed here (JSON lines); empty = quarantine.jsonl beside path.
    quarantine_path: str = ""


@dataclass(frozen=True)
class BatchConfig:
    """How many events go out between two checkpoints."""

    max_events: int = field(default=1000, metadata=limits(1, 1_000_000))


@dataclass(frozen=True)
class PipelineConfig:
    """One pipeline: a source, and everything between it and its collector."""

    source: SourceConfig = field(
        default_factory=SourceConfig, metadata={"required": True, "kinds": SOURCE_KINDS}
    )
    name: str = DEFAULT_PIPELINE
    parser: ParserConfig = field(default_factory=ParserConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)

    @property
    def shared_by_queue(self) -> bool:
        """Its source reads a queue that several readers share (Events Integration through SQS):
        every forwarder of a fleet runs it; the queue, not a lease, spreads the work."""
        return bool(getattr(self.source, "discovery", "") == "sqs")


@dataclass(frozen=True)
class LogConfig:
    """The forwarder's own log."""

    level: str = field(default="info", metadata=choice("debug", "info", "warning", "error"))
    format: str = field(default="auto", metadata=choice("auto", "text", "json"))
    # While a backlog lasts, a progress line this often (0 = none).
    progress_interval_secs: float = field(default=60.0, metadata=limits(0))
    # The same message again within this time is counted, not shown (0 = show every one).
    repeat_window_secs: float = field(default=60.0, metadata=limits(0))


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus metrics and health endpoint."""

    # HOST:PORT to serve /metrics, /healthz and /readyz on; empty = off.
    listen: str = ""
    # /readyz turns unready when held this long on an object that cannot be read.
    stuck_after_secs: float = field(default=600.0, metadata=limits(1))
    # While idle, the collector connection is checked at most this often (for /readyz).
    probe_interval_secs: float = field(default=5.0, metadata=limits(0.1))


@dataclass(frozen=True)
class Config:
    """The whole configuration: the pipelines, the process-wide log, metrics and workers, and
    whether forwarders share the pipelines."""

    pipelines: tuple[PipelineConfig, ...]
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # Worker processes that read and encode objects for every pipeline (forwarder.core.workers):
    # "auto" = one per core this process may use; 1 = none, each pipeline's thread reads.
    workers: int | str = "auto"
    coordination: Coordination = field(default_factory=NoCoordination)

    def pipeline(self, name: str | None = None) -> PipelineConfig:
        """The pipeline called *name*; without a name, the only one (a single-pipeline file)."""
        if name is None:
            if len(self.pipelines) != 1:
                names = ", ".join(p.name for p in self.pipelines)
                raise ConfigError(f"pipelines: {len(self.pipelines)} pipelines ({names}); name one")
            return self.pipelines[0]
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        known = ", ".join(p.name for p in self.pipelines)
        raise ConfigError(f"--pipeline {name}: no pipeline of that name (the config has: {known})")
