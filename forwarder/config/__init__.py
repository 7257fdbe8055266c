"""The configuration: one YAML file loaded into a tree of frozen dataclasses (see ``loader``)."""

from forwarder.config.loader import (
    DEFAULT_MAX_MESSAGE_BYTES,
    FACILITIES,
    Config,
    LogConfig,
    MetricsConfig,
    OutputConfig,
    ParserConfig,
    SourceConfig,
    exposed_secrets_warning,
    load_config,
    parse_config,
    redacted,
    secret_values,
    split_listen,
    substitute_env,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "FACILITIES",
    "Config",
    "LogConfig",
    "MetricsConfig",
    "OutputConfig",
    "ParserConfig",
    "SourceConfig",
    "exposed_secrets_warning",
    "load_config",
    "parse_config",
    "redacted",
    "secret_values",
    "split_listen",
    "substitute_env",
]
