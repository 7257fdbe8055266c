"""What every command does first: read the config, set up the log, pick the pipelines."""

from __future__ import annotations

import argparse
import logging

from forwarder.config import Config, PipelineConfig, exposed_secrets_warning, load_config, secret_values
from forwarder.config.checks import state_files
from forwarder.coordination.view import FleetView
from forwarder.core.checkpoint import Checkpoint, CheckpointStore
from forwarder.errors import ConfigError
from forwarder.observe.logs import setup_logging

log = logging.getLogger("forwarder")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_INCOMPLETE = 4
EXIT_INTERRUPTED = 130


def load(args: argparse.Namespace) -> Config:
    """The config the command line names, with the log set up from it."""
    if not args.config:
        raise ConfigError("--config FILE is required (or set FORWARDER_CONFIG); see config.example.yaml")
    config = load_config(args.config)
    setup_logging(
        args.log_level or config.log.level,
        args.log_format or config.log.format,
        secrets=secret_values(config),
        repeat_window_secs=config.log.repeat_window_secs,
    )
    if warning := exposed_secrets_warning(args.config):
        log.warning("%s", warning)
    return config


def chosen(config: Config, args: argparse.Namespace) -> tuple[PipelineConfig, ...]:
    """The pipelines ``--pipeline NAME`` picks: that one, or all."""
    name = getattr(args, "pipeline", None)
    return (config.pipeline(name),) if name else config.pipelines


def checkpoint_to_read(config: PipelineConfig, source_id: str, fleet: FleetView | None) -> Checkpoint:
    """A pipeline's checkpoint, to read (``status``, ``check``): its local file, or in S3."""
    if fleet is None:
        return CheckpointStore(state_files(config)["checkpoint.path"], source_id)
    return fleet.checkpoint(config.name, source_id)
