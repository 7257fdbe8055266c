"""The configuration: one YAML file, loaded into a tree of frozen dataclasses.

``model`` is the tree, ``sources`` the settings of each kind of source (``catoapi``: the
API kinds'), ``coordination`` those of a fleet, ``tree`` builds a dataclass from a mapping,
``checks`` looks at several keys at once, ``loader`` reads the file (one pipeline, or
``pipelines:`` with ``defaults:``), ``secrets`` keeps secrets out of sight.
"""

from forwarder.config.catoapi import AuditFeedConfig, CatoApiAccess, EventsFeedConfig
from forwarder.config.coordination import Coordination, NoCoordination, S3Coordination
from forwarder.config.loader import load_config, parse_config, split_listen, substitute_env
from forwarder.config.model import (
    DEFAULT_MAX_MESSAGE_BYTES,
    FACILITIES,
    BatchConfig,
    CheckpointConfig,
    Config,
    LogConfig,
    MetricsConfig,
    OutputConfig,
    ParserConfig,
    PipelineConfig,
    TlsConfig,
)
from forwarder.config.secrets import exposed_secrets_warning, redacted, secret_values
from forwarder.config.sources import SOURCE_KINDS, S3Access, SourceConfig

__all__ = [
    "AuditFeedConfig",
    "CatoApiAccess",
    "EventsFeedConfig",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "FACILITIES",
    "SOURCE_KINDS",
    "BatchConfig",
    "Coordination",
    "CheckpointConfig",
    "Config",
    "LogConfig",
    "MetricsConfig",
    "NoCoordination",
    "OutputConfig",
    "ParserConfig",
    "PipelineConfig",
    "S3Access",
    "S3Coordination",
    "SourceConfig",
    "TlsConfig",
    "exposed_secrets_warning",
    "load_config",
    "parse_config",
    "redacted",
    "secret_values",
    "split_listen",
    "substitute_env",
]
