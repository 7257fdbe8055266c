"""The forwarder's own log: readable text on a terminal, JSON lines otherwise.

JSON lines (python-json-logger) carry stable fields: ``time``, ``level``, ``logger``,
``message``, plus ``key``, ``member``, ``line`` and ``records`` where a message is about
an object or a record. No secret value is ever passed to a log call.
"""

from __future__ import annotations

import logging
import sys
from typing import IO

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


def setup_logging(level: str = "info", fmt: str = "auto", stream: IO[str] | None = None) -> None:
    """Send the log to *stream* (stderr) as text or JSON; "auto" picks text on a terminal."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # boto's own chatter (credential discovery, request dumps) stays out, also when debugging:
    # its debug lines carry request headers.
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
