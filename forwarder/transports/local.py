"""Local outputs, like the vendor's script: a file (fsynced per batch) or standard output.

Both acknowledge a batch as ``write`` returns (``AckedOnWrite``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO

from forwarder.errors import SendError
from forwarder.transports.base import AckedOnWrite


class FileTransport(AckedOnWrite):
    """Append one event per line to a file, fsynced before the batch counts as delivered."""

    max_message_bytes: int | None = None
    paces_itself = False

    def __init__(self, path: str) -> None:
        self.label = f"file {path}"
        self._path = Path(path)
        self._handle: IO[bytes] | None = None

    def _file(self) -> IO[bytes]:
        if self._handle is None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self._path, "ab")
            except OSError as exc:
                raise SendError(f"{self.label}: cannot open for appending: {exc.strerror}") from exc
        return self._handle

    def probe(self) -> None:
        self._file()

    def write(self, messages: list[bytes]) -> None:
        handle = self._file()
        try:
            handle.write(b"".join([m + b"\n" for m in messages]))
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            self.close()
            raise SendError(f"{self.label}: write failed: {exc.strerror}") from exc
        self._delivered()

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None


class StdoutTransport(AckedOnWrite):
    """Write one event per line to standard output."""

    label = "stdout"
    max_message_bytes: int | None = None
    paces_itself = False

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer

    def probe(self) -> None:
        return None

    def write(self, messages: list[bytes]) -> None:
        try:
            self._stream.write(b"".join([m + b"\n" for m in messages]))
            self._stream.flush()
        except OSError as exc:
            raise SendError(f"stdout: write failed: {exc}") from exc
        self._delivered()

    def close(self) -> None:
        return None
