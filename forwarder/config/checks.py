"""Checks that look at several keys at once, and the defaults that depend on other keys.

``output_defaults`` works on the raw ``output`` mapping (what was given decides what is
refused and what is filled in); ``pipeline`` on a built pipeline; ``distinct`` on them all.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from forwarder.config.model import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MIN_MESSAGE_BYTES,
    NETWORK_PROTOCOLS,
    PROTOCOLS,
    STREAM_PROTOCOLS,
    TLS_PROTOCOLS,
    UDP_DEFAULT_EVENTS_PER_SEC,
    PipelineConfig,
)
from forwarder.config.tree import join
from forwarder.errors import ConfigError

_NETWORK = (NETWORK_PROTOCOLS, "udp, tcp, tls, relp or relp-tls")
# Keys that only some protocols take, and which.
_ONLY = {
    "framing": (STREAM_PROTOCOLS, "tcp or tls"),
    "tls": (TLS_PROTOCOLS, "tls or relp-tls"),
    "host": _NETWORK,
    "hosts": _NETWORK,
    "port": _NETWORK,
    "path": (("file",), "file"),
    "relp_window": (("relp", "relp-tls"), "relp or relp-tls"),
    "max_unacked_bytes": (("tcp", "tls", "relp", "relp-tls"), "tcp, tls, relp or relp-tls"),
}


def output_defaults(raw: Any, where: str) -> Any:
    """Refuse output settings that do not fit the protocol, and fill protocol-dependent defaults."""
    if not isinstance(raw, dict):
        return {} if raw is None else raw
    out = dict(raw)
    protocol = out.get("protocol", "tcp")
    if protocol not in PROTOCOLS:
        return out  # the tree reports the bad protocol
    path = join(where, "output")
    for key, (protocols, names) in _ONLY.items():
        if key in out and protocol not in protocols:
            raise ConfigError(
                f"{path}.{key}: only applies to protocol {names}, but protocol is {protocol} "
                f"(remove {path}.{key} or change {path}.protocol)"
            )
    if "hosts" in out and ("host" in out or "port" in out):
        raise ConfigError(f"{path}.hosts: give either hosts (for failover) or host and port, not both")
    if protocol == "file" and not out.get("path"):
        raise ConfigError(f"{path}.path: required with protocol file (the file to append events to)")
    out.setdefault("port", {"tls": 6514, "relp": 20514, "relp-tls": 20514}.get(protocol, 514))
    out.setdefault("header", "none" if protocol in ("file", "stdout") else "rfc5424")
    out.setdefault("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES.get(protocol, 0))
    out.setdefault("max_events_per_sec", UDP_DEFAULT_EVENTS_PER_SEC if protocol == "udp" else 0)
    tls = out.get("tls")
    if isinstance(tls, dict) and tls.get("key_file") and not tls.get("cert_file"):
        raise ConfigError(f"{path}.tls.key_file: given without {path}.tls.cert_file (the client certificate)")
    return out


def pipeline(config: PipelineConfig, raw: dict[str, Any], where: str) -> PipelineConfig:
    """*config* with its source's own checks applied; ConfigError for keys that do not fit."""
    source = config.source.checked(raw.get("source") or {}, join(where, "source"))
    parser = config.parser
    record_bytes = getattr(source, "default_max_record_bytes", None)  # the kind's own default
    if record_bytes and "max_record_bytes" not in (raw.get("parser") or {}):
        parser = dataclasses.replace(parser, max_record_bytes=record_bytes)
    output = config.output
    path = join(where, "output")
    size = output.max_message_bytes
    if size and size < MIN_MESSAGE_BYTES:
        raise ConfigError(
            f"{path}.max_message_bytes: expected 0 (no limit) or an integer >= {MIN_MESSAGE_BYTES} "
            f"(RFC 5424's least a collector must take), got {size}"
        )
    udp_max = DEFAULT_MAX_MESSAGE_BYTES["udp"]
    if output.protocol == "udp" and not MIN_MESSAGE_BYTES <= size <= udp_max:
        raise ConfigError(
            f"{path}.max_message_bytes: expected an integer {MIN_MESSAGE_BYTES}-{udp_max} with protocol "
            f"udp (the largest UDP payload is {udp_max} bytes), got {size}"
        )
    if output.retry_max_secs < output.retry_initial_secs:
        raise ConfigError(
            f"{path}.retry_max_secs: expected a number >= {path}.retry_initial_secs "
            f"({output.retry_initial_secs:g}), got {output.retry_max_secs:g}"
        )
    return dataclasses.replace(config, source=source, parser=parser)


def state_files(config: PipelineConfig) -> dict[str, Path]:
    """The files a pipeline writes its state to: checkpoint, dead letters, quarantine list."""
    checkpoint = Path(config.checkpoint.path)
    return {
        "checkpoint.path": checkpoint,
        "parser.dead_letter_path": Path(
            config.parser.dead_letter_path or checkpoint.with_name("dead_letter.jsonl")
        ),
        "checkpoint.quarantine_path": Path(
            config.checkpoint.quarantine_path or checkpoint.with_name("quarantine.jsonl")
        ),
    }


def distinct(pipelines: list[PipelineConfig]) -> None:
    """Names are unique, and no two pipelines write one state file (checkpoint, dead letters,
    quarantine list): they would overwrite each other's position."""
    owners: dict[Path, str] = {}
    names: set[str] = set()
    for i, config in enumerate(pipelines):
        where = f"pipelines[{i}] ({config.name})"
        if config.name in names:
            raise ConfigError(
                f"{where}.name: another pipeline is called {config.name!r} (names must be unique)"
            )
        names.add(config.name)
        for key, path in state_files(config).items():
            resolved = path.expanduser().resolve()
            if resolved in owners:
                raise ConfigError(
                    f"{where}.{key}: {path} is also {owners[resolved]}'s; give each pipeline its own "
                    '(e.g. defaults: {checkpoint: {path: "/var/lib/forwarder/{pipeline}/checkpoint.json"}})'
                )
            owners[resolved] = f"{where}"
