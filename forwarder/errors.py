"""The forwarder's errors, and what each one does to a run.

    ForwarderError                 base; the CLI prints its message on one line
    ├── ConfigError                bad config or usage: stops the program (exit 2)
    ├── CheckpointError            corrupt, unwritable or locked checkpoint (or an unwritable
    │   │                          dead-letter file): stops (exit 3)
    │   └── LeaseLost              a fleet's pipeline (coordination: s3) whose lease this
    │                              forwarder no longer holds (taken over, or not renewed in
    │                              time): that pipeline stops at once, sending and saving
    │                              nothing more; the process and its other pipelines go on
    ├── FetchError                 S3 trouble: the object is retried later, the checkpoint
    │   │                          stays before it
    │   ├── CredentialsError       the key was rejected: credentials are read again, then retried
    │   └── BadFileError           the object's content cannot be read (corrupt zip, wrong
    │       │                      password, bomb, not the zip, gzip or text it should be):
    │       │                      retried source.max_attempts times, then
    │       │                      source.on_bad_file (stop: stay on it; quarantine: skip it)
    │       └── WorkerDied         the worker process reading it died (killed, out of memory):
    │                              the same, an attempt at the object (core.workers)
    └── SendError                  the collector did not take a batch: the batch is sent again
                                   (with backoff) and the checkpoint does not move

A bad record is not an error: it is reported with its place, counted, written to the
dead-letter file and passed over (``forwarder.core.reports``).

Library exceptions are translated at each stage's edge (``raise FetchError(...) from exc``)
with the context a user needs: which object, which key, how to fix it.
"""

from __future__ import annotations


class ForwarderError(Exception):
    """Base of every error the forwarder reports to a user on one line."""

    exit_code = 1


class ConfigError(ForwarderError):
    """The configuration (or the command line) is wrong; names the key path."""

    exit_code = 2


class CheckpointError(ForwarderError):
    """The checkpoint cannot be read, written or locked."""

    exit_code = 3


class LeaseLost(CheckpointError):
    """This forwarder no longer owns the pipeline (its lease was taken over or ran out)."""


class FetchError(ForwarderError):
    """An object could not be listed, downloaded or unpacked."""

    exit_code = 4
    code = ""  # the S3 error code it stands for, when one (``NoSuchKey``)


class CredentialsError(FetchError):
    """S3 rejected the credentials (rotated, expired or missing key, or access denied)."""


class BadFileError(FetchError):
    """An object was downloaded but its content cannot be read."""


class SendError(ForwarderError):
    """The collector could not be reached or did not acknowledge a batch."""

    exit_code = 4


class WorkerDied(BadFileError):
    """The worker process reading an object died; the object is read again (as a bad file is).

    *suspect*: the worker was reading this object when it died, so the death counts as a
    failed attempt at it; objects the worker only held are read again without one (another
    pipeline's file may have killed it), as are those of a pool closed while stopping.
    """

    def __init__(self, message: str, suspect: bool = True) -> None:
        super().__init__(message)
        self.suspect = suspect
