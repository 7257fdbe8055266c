"""The forwarder's own log: readable text on a terminal, JSON lines otherwise.

JSON lines (python-json-logger) carry stable fields: ``time``, ``level``, ``logger``,
``message``, ``pipeline`` (the pipeline the line is about, when it is about one), plus
``key``, ``member``, ``line`` and ``records`` where a message is about an object or a
record, and ``files_remaining``, ``events_remaining``, ``events_per_sec``, ``eta_secs`` and
``lag_secs`` on backlog progress lines. Text lines about a pipeline other than the one of a
single-pipeline file start with its name in brackets.

- **No secrets.** No secret value is ever passed to a log call; as a second line of
  defence, every secret value of the config (and the AWS_* secrets of the environment) is
  replaced by ``***`` in whatever is written, also JSON-escaped.
- **Repeats.** The same message (same logger, level and text) again within
  ``log.repeat_window_secs`` is counted, not written. The next time it is written, it says
  ``(repeated N more times in Ns)``; repeats that stop are summed up like that with the
  next line written, or at exit.
- **Live line.** On a terminal (text format), ``show_status`` keeps one status line
  (backlog progress) below the log; log lines are written above it.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from forwarder.core.context import PIPELINE

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
MASK = "***"
# Shorter secret values are not masked: masking "pw" would garble every line that has it.
MIN_MASKED_CHARS = 4
# The repeat filter forgets messages not seen for a window once it holds this many.
REPEATS_KEPT = 256
_CLEAR_LINE = "\r\x1b[K"


@dataclass
class _Seen:
    shown_at: float
    count: int = 0  # repeats not written since shown_at
    last: logging.LogRecord | None = None


class RepeatFilter(logging.Filter):
    """Lets a message through once per *window_secs*; counts the repeats in between."""

    def __init__(self, window_secs: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._window = window_secs
        self._clock = clock
        self._seen: dict[tuple[str, str, int, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self._window <= 0:
            return True
        message = record.getMessage()
        key = (getattr(record, "pipeline", ""), record.name, record.levelno, message)
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen.shown_at < self._window:
            seen.count += 1
            seen.last = record
            return False
        if seen is not None and seen.count:
            record.msg, record.args = message + _repeated(seen.count, now - seen.shown_at), None
        self._seen[key] = _Seen(now)
        if len(self._seen) > REPEATS_KEPT:
            self._seen = {k: s for k, s in self._seen.items() if s.count or now - s.shown_at < self._window}
        return True

    def due(self, everything: bool = False) -> list[logging.LogRecord]:
        """Summary lines for messages whose repeats stopped (all of them with *everything*)."""
        now = self._clock()
        summaries = []
        for key, seen in list(self._seen.items()):
            if seen.count and seen.last is not None and (everything or now - seen.shown_at >= self._window):
                summary = logging.makeLogRecord(seen.last.__dict__)
                summary.msg, summary.args = key[3] + _repeated(seen.count, now - seen.shown_at), None
                summaries.append(summary)
                del self._seen[key]
        return summaries


def _repeated(count: int, secs: float) -> str:
    return f" (repeated {count} more time{'' if count == 1 else 's'} in {secs:.0f}s)"


def _name_pipeline(record: logging.LogRecord) -> bool:
    """Give *record* the ``pipeline`` it is about (a logging filter)."""
    if not hasattr(record, "pipeline"):
        name = PIPELINE.get()
        if name:
            record.pipeline = name
    return True


class _TextFormatter(logging.Formatter):
    """The text format, with ``[pipeline]`` before the message when there are several."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        name = getattr(record, "pipeline", "")
        if not name or name == "default":
            return super().formatMessage(record)
        message = record.message
        record.message = f"[{name}] {message}"
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that masks secrets, drops repeats and keeps a live line on a terminal."""

    def __init__(self, stream: IO[str], secrets: Iterable[str], repeats: RepeatFilter, live: bool) -> None:
        super().__init__(stream)
        self.repeats = repeats
        self.addFilter(_name_pipeline)
        self.addFilter(repeats)
        self.live = live
        self._status = ""
        self._masks = sorted(
            {
                form
                for secret in secrets
                if len(secret) >= MIN_MASKED_CHARS
                for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1])
            },
            key=len,
            reverse=True,
        )

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record), self._masks)

    def emit(self, record: logging.LogRecord) -> None:
        status = self._status
        if status:
            self.stream.write(_CLEAR_LINE)
        for summary in self.repeats.due():
            super().emit(summary)
        super().emit(record)
        if status:
            self.stream.write(status)
            self.flush()

    def set_status(self, text: str) -> None:
        """Show *text* as the live line (empty: remove it)."""
        width = shutil.get_terminal_size().columns
        with self.lock:  # type: ignore[union-attr]
            self._status = text[: width - 1]
            try:
                self.stream.write(_CLEAR_LINE + self._status)
                self.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._status:
                self.stream.write(_CLEAR_LINE)
                self._status = ""
            for summary in self.repeats.due(everything=True):
                super().emit(summary)
        super().close()


def mask(text: str, secrets: Iterable[str]) -> str:
    """*text* with every occurrence of each of *secrets* replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def show_status(text: str) -> None:
    """Set the live status line on a terminal; does nothing when the log is not on one."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler) and handler.live:
            handler.set_status(text)


def setup_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: IO[str] | None = None,
    secrets: Iterable[str] = (),
    repeat_window_secs: float = 0.0,
) -> None:
    """Send the log to *stream* (stderr) as text or JSON; "auto" picks text on a terminal.

    *secrets* are masked in every line; a message repeated within *repeat_window_secs* is
    counted instead of written (0: every one is written).
    """
    stream = stream or sys.stderr
    terminal = stream.isatty()
    if fmt == "auto":
        fmt = "text" if terminal else "json"
    handler = _Handler(stream, secrets, RepeatFilter(repeat_window_secs), live=terminal and fmt == "text")
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(_TextFormatter(TEXT_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, _Handler):
            old.close()  # writes the repeats it still counts
    root.addHandler(handler)
    root.setLevel(level.upper())
    # boto's own chatter (credential discovery, request dumps) stays out, also when debugging:
    # its debug lines carry request headers.
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
