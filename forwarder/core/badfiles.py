"""Objects that download but cannot be read: tried again, then held or quarantined.

An object whose content cannot be read (corrupt, wrong password, over the member limit,
not what its name says: BadFileError) is tried ``source.max_attempts`` times, the waits
doubling from ``source.bad_file_retry_secs`` (up to BAD_FILE_RETRY_MAX_SECS), each failure
one log line and counted in the checkpoint (so a restart keeps counting). Then
``source.on_bad_file`` decides: ``stop`` holds the pipeline on it (FetchError: later
objects wait, every poll tries again) until it is replaced; ``quarantine`` lists it with
its reason in the quarantine file — made durable (fsync) before the pipeline's checkpoint
moves past it — and the pipeline moves on.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forwarder.core.checkpoint import Failure, now_text
from forwarder.core.delivery import Stopped
from forwarder.errors import BadFileError, FetchError

log = logging.getLogger("forwarder.core.pipeline")

# The wait between attempts at a bad file doubles from source.bad_file_retry_secs up to this.
BAD_FILE_RETRY_MAX_SECS = 300.0


@dataclass(frozen=True)
class BadFilePolicy:
    """``source.max_attempts``, ``bad_file_retry_secs`` and ``on_bad_file``."""

    max_attempts: int = 5
    retry_secs: float = 2.0
    on_bad_file: str = "stop"


class QuarantineList:
    """The quarantine file: one JSON line per object given up on, written durably (before
    the checkpoint moves past it: a crash between the two lists the object twice)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, entry: dict[str, Any]) -> None:
        """Append *entry* (and when), fsynced; FetchError when it cannot be written."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({**entry, "at": now_text()}, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise FetchError(f"{self.path}: cannot record the quarantined object: {exc.strerror}") from exc


def next_step(policy: BadFilePolicy, failure: Failure, exc: BadFileError, stop: threading.Event) -> bool:
    """After the failed attempt *failure* counts: True to try again (after the wait), False
    to quarantine the object; FetchError under ``stop`` once the attempts are used up."""
    attempt = f"attempt {failure.attempts} of {policy.max_attempts}"
    if failure.attempts < policy.max_attempts:
        delay = min(BAD_FILE_RETRY_MAX_SECS, policy.retry_secs * 2 ** (failure.attempts - 1))
        log.warning("%s (%s; trying again in %gs)", exc, attempt, delay, extra={"key": failure.key})
        if stop.wait(delay):
            raise Stopped()
        return True
    if policy.on_bad_file == "quarantine":
        log.error(
            "%s (%s): quarantined, moving on (see forwarder status)", exc, attempt, extra={"key": failure.key}
        )
        return False
    raise FetchError(
        f"{exc} ({attempt}; on_bad_file: stop holds the position here: replace the object, or set "
        "source.on_bad_file: quarantine)"
    )


def spare(policy: BadFilePolicy, exc: BadFileError, key: str, stop: threading.Event) -> None:
    """After a read that failed through no fault of the object (``WorkerDied`` not suspect:
    its worker died holding it): no attempt counts; the usual wait, Stopped when a stop
    comes during it."""
    log.warning(
        "%s (not counted as a failed attempt at it; trying again in %gs)",
        exc,
        policy.retry_secs,
        extra={"key": key},
    )
    if stop.wait(policy.retry_secs):
        raise Stopped()
