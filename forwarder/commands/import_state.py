"""``forwarder import-state``: start from the storage file of Cato's client script.

The storage file holds two numbers: the last entry (file sequence number) the script
downloaded and its attempts at the next one. The pipeline's checkpoint is seeded so that
the first file forwarded is the one after that entry: nothing is lost or sent twice when
switching over. Only the pipeline writes its checkpoint: this builds it and asks it to. In
a fleet (``coordination.kind: s3``) it takes the pipeline's lease for the while (refusing
when a running forwarder holds it) and writes the checkpoint in S3.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

from forwarder.commands.common import EXIT_OK, load
from forwarder.compose import build_coordinator, build_pipeline
from forwarder.errors import ConfigError
from forwarder.sources.exporter import LogExporterSource


def read_vendor_state(path: Path) -> tuple[int, int]:
    """(last entry downloaded, attempts) from the client script's storage file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the storage file: {exc.strerror}") from None
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if not 1 <= len(numbers) <= 2:
        raise ConfigError(
            f"{path}: expected the client script's storage file (the last entry downloaded and the "
            f"number of attempts), got {text.strip()[:60]!r}"
        )
    return numbers[0], numbers[1] if len(numbers) > 1 else 0


def cmd_import_state(args: argparse.Namespace) -> int:
    config = load(args)
    pipeline_config = config.pipeline(args.pipeline)
    path = Path(args.storage_file)
    last, attempts = read_vendor_state(path)
    fleet = build_coordinator(dataclasses.replace(config, pipelines=(pipeline_config,)), greedy=True)
    try:
        if fleet is not None:
            fleet.start()
            if fleet.lease(pipeline_config.name) is None:
                raise ConfigError(
                    f"import-state: pipeline {pipeline_config.name} is held by a running forwarder of the "
                    "fleet (see forwarder status); stop the fleet first"
                )
        pipeline = build_pipeline(pipeline_config, fleet=fleet)
        if not isinstance(pipeline.source, LogExporterSource):
            raise ConfigError(
                f"import-state: the client script's storage file is for source.kind: log_exporter, "
                f"not {pipeline_config.source.kind}"
            )
        pipeline.open()
        try:
            pipeline.seed(pipeline.source.imported(last), force=args.force)
        finally:
            pipeline.close()
    finally:
        if fleet is not None:
            fleet.close()
    note = f"; it had made {attempts} attempts at file {last + 1}" if attempts else ""
    print(f"imported {path}: last file downloaded {last}{note}. The next file forwarded is {last + 1}.")
    return EXIT_OK
