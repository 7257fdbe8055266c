"""Configuration: one YAML file, loaded into a tree of frozen dataclasses by ``load_config``.

Environment variables are substituted in string values: ``${VAR}`` (an error when VAR is
unset) and ``${VAR:-default}``. A value that is exactly one reference may fill a number or
boolean key (``port: ${SYSLOG_PORT:-514}``).

Every error names the key path, what was expected and what was given, on one line:
``output.port: expected an integer 1-65535, got "sixty"``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from forwarder.errors import ConfigError

PROTOCOLS = ("udp", "tcp", "tls", "relp", "relp-tls", "file", "stdout")
NETWORK_PROTOCOLS = ("udp", "tcp", "tls", "relp", "relp-tls")
TLS_PROTOCOLS = ("tls", "relp-tls")
STREAM_PROTOCOLS = ("tcp", "tls")
# output.max_message_bytes when not given. udp: the largest IPv4 UDP payload (65535 - 8 - 20,
# = transport.UDP_MAX_PAYLOAD). tcp/tls/relp/relp-tls: 1 MiB, parser.max_record_bytes' default, so
# out of the box any event the parser takes passes whole (lower it to the collector's
# limit). file/stdout: none. Reasons in config.example.yaml.
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
SECRET_KEYS = frozenset({"secret_access_key", "session_token", "zip_password"})


def _choice(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _range(low: float, high: float | None = None) -> dict[str, Any]:
    return {"min": low, "max": high}


@dataclass(frozen=True)
class SourceConfig:
    """Where the Log Exporter's files are: an S3 bucket and prefix."""

    bucket: str = field(metadata={"required": True, "nonempty": True})
    prefix: str = ""
    region: str = "us-east-1"
    endpoint_url: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""
    profile: str = ""
    key_pattern: str = r"CATO(\d+)\.zip$"
    discovery: str = field(default="list", metadata=_choice("list", "probe"))
    key_template: str = "CATO{sequence:020d}.zip"
    max_gap_files: int = field(default=100_000, metadata=_range(1))
    zip_password: str = ""
    poll_interval_secs: float = field(default=30.0, metadata=_range(0.1))
    start: int | str = "earliest"
    download_dir: str = ""
    max_attempts: int = field(default=5, metadata=_range(1, 1000))
    on_bad_file: str = field(default="stop", metadata=_choice("stop", "quarantine"))
    bad_file_retry_secs: float = field(default=2.0, metadata=_range(0.01))
    max_member_bytes: int = field(default=10 << 30, metadata=_range(1))
    prefetch_files: int = field(default=2, metadata=_range(0, 64))
    prefetch_bytes: int = field(default=256 << 20, metadata=_range(0))
    s3_retry_mode: str = field(default="standard", metadata=_choice("standard", "adaptive", "legacy"))
    s3_max_attempts: int = field(default=5, metadata=_range(1, 100))
    connect_timeout_secs: float = field(default=10.0, metadata=_range(0.1))
    read_timeout_secs: float = field(default=60.0, metadata=_range(0.1))


@dataclass(frozen=True)
class ParserConfig:
    """How a file's lines become records."""

    format: str = field(default="auto", metadata=_choice("auto", "cef", "json"))
    max_record_bytes: int = field(default=1_048_576, metadata=_range(64))
    # light: what passthrough checks for free (CEF header fields, whole JSON objects); full:
    # every record parsed (always so with output.encoding cef, leef or json).
    validate: str = field(default="light", metadata=_choice("light", "full"))
    # Invalid UTF-8: replace (sent with U+FFFD, counted, dead-lettered), reject (dead-lettered
    # only) or keep (sent as it is, unchecked: the fastest pass-through).
    invalid_utf8: str = field(default="replace", metadata=_choice("replace", "reject", "keep"))
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
    min_version: str = field(default="1.2", metadata=_choice("1.2", "1.3"))


@dataclass(frozen=True)
class OutputConfig:
    """The collector, and how each event is wrapped for it."""

    protocol: str = field(default="tcp", metadata=_choice(*PROTOCOLS))
    host: str = "127.0.0.1"
    port: int = field(default=514, metadata=_range(1, 65535))
    # Failover: collectors as "host:port" (port optional), tried in order; replaces host/port.
    hosts: tuple[str, ...] = ()
    failback_secs: float = field(default=300.0, metadata=_range(1))
    framing: str = field(default="octet_counting", metadata=_choice("octet_counting", "newline"))
    header: str = field(default="rfc5424", metadata=_choice("rfc5424", "rfc3164", "none"))
    # The header's time: the event's (CEF rt/end, JSON time/creationTime) or when it is sent.
    header_time: str = field(default="event", metadata=_choice("event", "now"))
    # The message body: the record's text as it is, or every event rendered as CEF, LEEF or JSON.
    encoding: str = field(default="passthrough", metadata=_choice("passthrough", "cef", "leef", "json"))
    app_name: str = field(default="cato", metadata={"nonempty": True})
    hostname: str = ""
    facility: str = field(default="local0", metadata=_choice(*FACILITIES))
    tls: TlsConfig = field(default_factory=TlsConfig)
    path: str = ""
    connect_timeout_secs: float = field(default=10.0, metadata=_range(0.1))
    ack_timeout_secs: float = field(default=30.0, metadata=_range(0.1))
    retry_initial_secs: float = field(default=1.0, metadata=_range(0.01))
    retry_max_secs: float = field(default=60.0, metadata=_range(0.01))
    # Events (udp: datagrams) per second at most; 0 = no limit. The default depends on the
    # protocol: see UDP_DEFAULT_EVENTS_PER_SEC.
    max_events_per_sec: int = field(default=0, metadata=_range(0))
    # The longest syslog message (header and event, unframed) to send; 0 = no limit. The
    # default depends on the protocol (DEFAULT_MAX_MESSAGE_BYTES); see forwarder.formats.oversize.
    max_message_bytes: int = field(default=1 << 20, metadata=_range(0))
    oversize: str = field(default="truncate", metadata=_choice("truncate", "split", "drop"))


@dataclass(frozen=True)
class CheckpointConfig:
    """Where the position is kept."""

    path: str = "./state/checkpoint.json"
    # Quarantined files are listed here (JSON lines); empty = quarantine.jsonl beside path.
    quarantine_path: str = ""


@dataclass(frozen=True)
class BatchConfig:
    """How many events go out between two checkpoints."""

    max_events: int = field(default=1000, metadata=_range(1, 1_000_000))


@dataclass(frozen=True)
class LogConfig:
    """The forwarder's own log."""

    level: str = field(default="info", metadata=_choice("debug", "info", "warning", "error"))
    format: str = field(default="auto", metadata=_choice("auto", "text", "json"))
    # While a backlog lasts, a progress line this often (0 = none).
    progress_interval_secs: float = field(default=60.0, metadata=_range(0))
    # The same message again within this time is counted, not shown (0 = show every one).
    repeat_window_secs: float = field(default=60.0, metadata=_range(0))


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus metrics and health endpoint."""

    # HOST:PORT to serve /metrics, /healthz and /readyz on; empty = off.
    listen: str = ""
    # /readyz turns unready when held this long on a file that cannot be read.
    stuck_after_secs: float = field(default=600.0, metadata=_range(1))
    # While idle, the collector connection is checked at most this often (for /readyz).
    probe_interval_secs: float = field(default=5.0, metadata=_range(0.1))


@dataclass(frozen=True)
class Config:
    """The whole configuration tree."""

    source: SourceConfig = field(metadata={"required": True})
    parser: ParserConfig = field(default_factory=ParserConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


class _Substituted(str):
    """A string that came from ``${VAR}`` substitution, so it may stand for a number."""


_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(value: str, path: str, env: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in *value*; ``$${`` stays a literal ``${``."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{path}: environment variable {name} is not set (set it, or give a default: ${{{name}:-value}})"
        )

    if "${" not in value:
        return value
    parts = value.split("$${")
    result = "${".join(_REFERENCE.sub(replace, part) for part in parts)
    return _Substituted(result)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _coerce_scalar(value: Any, kind: type, path: str, meta: Mapping[str, Any]) -> Any:
    """Check one scalar against its declared type and range; return the typed value."""
    if isinstance(value, _Substituted) and kind is not str:
        try:
            loaded = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:  # "[" or "@x" from the environment: reported below as given
            loaded = value
        value = loaded if isinstance(loaded, (int, float, bool)) else value
    low, high = meta.get("min"), meta.get("max")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_describe(value)}")
        return value
    if kind in (int, float):
        ok = isinstance(value, int) or (kind is float and isinstance(value, float))
        if not ok or isinstance(value, bool) or not _in_range(value, low, high):
            noun = "an integer" if kind is int else "a number"
            raise ConfigError(f"{path}: expected {noun}{_range_text(low, high)}, got {_describe(value)}")
        return kind(value)
    if not isinstance(value, str):
        if path.rpartition(".")[2] in SECRET_KEYS:  # a password of digits, unquoted: never echo it
            raise ConfigError(f'{path}: expected a string (quote it: "..."); a secret, so not shown')
        raise ConfigError(f"{path}: expected a string, got {_describe(value)}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{path}: expected one of {', '.join(choices)}, got {_describe(value)}")
    if meta.get("nonempty") and not value.strip():
        raise ConfigError(f"{path}: expected a non-empty string, got {_describe(value)}")
    return str(value)


def _in_range(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _number_text(value: float) -> str:
    # ":g" alone would show a limit of 1_000_000 as "1e+06"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" {_number_text(low)}-{_number_text(high)}"
    if low is not None:
        return f" >= {_number_text(low)}"
    return ""


def _substitute_tree(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return substitute_env(value, path, env)
    if isinstance(value, dict):
        return {k: _substitute_tree(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_tree(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def _build(cls: type[Any], data: Any, path: str) -> Any:
    """Build dataclass *cls* from mapping *data*, rejecting unknown keys and bad values."""
    where = path or "the config file"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            full = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{full}: unknown key{hint}; {where} takes: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        full = f"{path}.{name}" if path else name
        if name not in data:
            if fld.metadata.get("required"):
                raise ConfigError(f"{full}: required key is missing")
            continue
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _build(typing.cast(type, kind), data[name], full)
        elif isinstance(kind, types.UnionType):
            values[name] = data[name]  # checked by the owner's own validation
        elif typing.get_origin(kind) is tuple:
            items = data[name]
            if not isinstance(items, list):
                raise ConfigError(f"{full}: expected a list, got {_describe(items)}")
            item_kind = typing.get_args(kind)[0]
            values[name] = tuple(
                _coerce_scalar(item, item_kind, f"{full}[{i}]", {"nonempty": True})
                for i, item in enumerate(items)
            )
        else:
            values[name] = _coerce_scalar(data[name], kind, full, fld.metadata)
    return cls(**values)


def _check_source(raw: dict[str, Any], source: SourceConfig) -> SourceConfig:
    start = raw.get("start", "earliest")
    if isinstance(start, str) and start.strip().isdigit():
        start = int(start)
    if not (start in ("earliest", "latest") or (type(start) is int and start >= 0)):
        raise ConfigError(
            f"source.start: expected earliest, latest or a file sequence number, got {_describe(start)}"
        )
    try:
        pattern = re.compile(source.key_pattern)
    except re.error as exc:
        raise ConfigError(f"source.key_pattern: not a valid regular expression ({exc})") from None
    if pattern.groups < 1:
        raise ConfigError(
            f"source.key_pattern: expected a regular expression whose group 1 is the sequence "
            f"number, got {_describe(source.key_pattern)} (no group)"
        )
    try:
        example = source.key_template.format(sequence=7007)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"source.key_template: expected a name with {{sequence}} in it, such as "
            f'"CATO{{sequence:020d}}.zip", got {_describe(source.key_template)} ({exc})'
        ) from None
    if example == source.key_template.format(sequence=7008):
        got = _describe(source.key_template)
        raise ConfigError(f"source.key_template: expected a name with {{sequence}} in it, got {got}")
    if bool(source.access_key_id) != bool(source.secret_access_key):
        raise ConfigError(
            "source.access_key_id: access_key_id and secret_access_key go together "
            "(give both, or neither to use boto3's credential chain)"
        )
    if source.profile and source.access_key_id:
        raise ConfigError("source.profile: give either profile or access_key_id/secret_access_key, not both")
    return dataclasses.replace(source, start=start)


def _check_output(raw: Any) -> dict[str, Any]:
    """Reject settings that do not fit the protocol, and fill protocol-dependent defaults."""
    if not isinstance(raw, dict):
        return {} if raw is None else raw
    out = dict(raw)
    protocol = out.get("protocol", "tcp")
    if protocol not in PROTOCOLS:
        return out  # _build reports the bad protocol
    only = {
        "framing": (STREAM_PROTOCOLS, "tcp or tls"),
        "tls": (TLS_PROTOCOLS, "tls or relp-tls"),
        "host": (NETWORK_PROTOCOLS, "udp, tcp, tls, relp or relp-tls"),
        "hosts": (NETWORK_PROTOCOLS, "udp, tcp, tls, relp or relp-tls"),
        "port": (NETWORK_PROTOCOLS, "udp, tcp, tls, relp or relp-tls"),
        "path": (("file",), "file"),
    }
    for key, (protocols, names) in only.items():
        if key in out and protocol not in protocols:
            raise ConfigError(
                f"output.{key}: only applies to protocol {names}, but protocol is {protocol} "
                f"(remove output.{key} or change output.protocol)"
            )
    if "hosts" in out and ("host" in out or "port" in out):
        raise ConfigError("output.hosts: give either hosts (for failover) or host and port, not both")
    if protocol == "file" and not out.get("path"):
        raise ConfigError("output.path: required with protocol file (the file to append events to)")
    out.setdefault("port", {"tls": 6514, "relp": 20514, "relp-tls": 20514}.get(protocol, 514))
    out.setdefault("header", "none" if protocol in ("file", "stdout") else "rfc5424")
    out.setdefault("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES.get(protocol, 0))
    out.setdefault("max_events_per_sec", UDP_DEFAULT_EVENTS_PER_SEC if protocol == "udp" else 0)
    tls = out.get("tls")
    if isinstance(tls, dict) and tls.get("key_file") and not tls.get("cert_file"):
        raise ConfigError("output.tls.key_file: given without output.tls.cert_file (the client certificate)")
    return out


def _check_message_size(output: OutputConfig) -> None:
    size = output.max_message_bytes
    if size and size < MIN_MESSAGE_BYTES:
        raise ConfigError(
            f"output.max_message_bytes: expected 0 (no limit) or an integer >= {MIN_MESSAGE_BYTES} "
            f"(RFC 5424's least a collector must take), got {size}"
        )
    udp_max = DEFAULT_MAX_MESSAGE_BYTES["udp"]
    if output.protocol == "udp" and not MIN_MESSAGE_BYTES <= size <= udp_max:
        raise ConfigError(
            f"output.max_message_bytes: expected an integer {MIN_MESSAGE_BYTES}-{udp_max} with protocol "
            f"udp (the largest UDP payload is {udp_max} bytes), got {size}"
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the
    last silently: a second ``output:`` section would replace the first). Checked on the
    document as written, before merge keys (``<<: *defaults``) are expanded."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _refuse_repeated_keys(node)
        return node


def _refuse_repeated_keys(root: yaml.Node) -> None:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias: the same node again
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in node.value:
                stack += [key, value]
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                if (key.tag, key.value) in keys:
                    problem = f"{key.value!r} is given twice (the second would replace the first)"
                    raise yaml.constructor.ConstructorError(None, None, problem, key.start_mark)
                keys.add((key.tag, key.value))
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def parse_config(text: str, origin: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Parse YAML *text* into a Config; *origin* names the file in errors."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}:{mark.column + 1}" if mark else origin
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if raw is None:
        raise ConfigError(f"{origin}: the file is empty; see config.example.yaml")
    raw = _substitute_tree(raw, "", os.environ if env is None else env)
    if isinstance(raw, dict) and "output" in raw:
        raw["output"] = _check_output(raw["output"])
    config: Config = _build(Config, raw, "")
    source = _check_source(raw.get("source") or {}, config.source)
    _check_message_size(config.output)
    if config.output.retry_max_secs < config.output.retry_initial_secs:
        raise ConfigError(
            f"output.retry_max_secs: expected a number >= output.retry_initial_secs "
            f"({config.output.retry_initial_secs:g}), got {config.output.retry_max_secs:g}"
        )
    if config.metrics.listen:
        split_listen(config.metrics.listen)
    return dataclasses.replace(config, source=source)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML config file at *path*."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (start from config.example.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    return parse_config(text, str(path), env)


def redacted(config: Config) -> dict[str, Any]:
    """The config as plain data with every secret value masked, for display."""

    def walk(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {
                f.name: "***"
                if f.name in SECRET_KEYS and getattr(value, f.name)
                else walk(getattr(value, f.name))
                for f in dataclasses.fields(value)
            }
        return value

    result: dict[str, Any] = walk(config)
    return result


def split_listen(listen: str) -> tuple[str, int]:
    """``metrics.listen`` as (host, port): "127.0.0.1:9108", "[::1]:9108", "0.0.0.0:9108"."""
    host, _, port = listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(
            f'metrics.listen: expected HOST:PORT such as "127.0.0.1:9108" (or "" for off), '
            f"got {_describe(listen)}"
        )
    return host, int(port)


def secret_values(config: Config) -> list[str]:
    """The secret values in *config* and in the AWS_* environment, to be masked in output."""
    found = [getattr(config.source, key) for key in sorted(SECRET_KEYS)]
    found += [os.environ.get(name, "") for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    return [value for value in found if value]


def exposed_secrets_warning(path: str | Path) -> str | None:
    """A warning when the file at *path* holds a secret written in it and others may read it.

    A secret given as ``${VAR}`` is not in the file, and a file only its owner may read
    (mode 600) is fine.
    """
    try:
        mode = os.stat(path).st_mode
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    source = raw.get("source") if isinstance(raw, dict) else None
    if not mode & 0o044 or not isinstance(source, dict):
        return None
    written = [
        f"source.{key}"
        for key in sorted(SECRET_KEYS)
        if isinstance(source.get(key), str) and source[key] and "${" not in source[key]
    ]
    if not written:
        return None
    return (
        f"{path} holds {', '.join(written)} and may be read by others (mode {mode & 0o777:o}): "
        f"chmod 600 it, or give the secret as ${{VAR}} from the environment"
    )
