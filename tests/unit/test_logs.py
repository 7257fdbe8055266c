"""Unit tests for forwarder.observe.logs: JSON fields, masked secrets, collapsed repeats, the live line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from forwarder.observe.logs import RepeatFilter, mask, setup_logging, show_status
from tests.support.clock import Clock

log = logging.getLogger("forwarder.test")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("forwarder.x", level, __file__, 1, message, None, None)


def test_json_lines_carry_the_documented_fields() -> None:
    """JSON lines have time, level, logger, message, and extras such as key and records as fields."""
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    log.info("%s: delivered (%d records)", "s3://b/k", 3, extra={"key": "k", "records": 3})
    (line,) = json_lines(stream)
    assert {"time", "level", "logger", "message", "key", "records"} <= line.keys()
    assert line["level"] == "INFO" and line["logger"] == "forwarder.test"
    assert line["message"] == "s3://b/k: delivered (3 records)" and line["records"] == 3


def test_auto_is_text_on_a_terminal_and_json_otherwise() -> None:
    """log.format auto: text for a person at a terminal, JSON lines for a machine."""
    terminal, pipe = Terminal(), io.StringIO()
    setup_logging("info", "auto", terminal)
    log.info("hello")
    setup_logging("info", "auto", pipe)
    log.info("hello")
    assert terminal.getvalue().rstrip().endswith("INFO    hello")
    assert json_lines(pipe)[0]["message"] == "hello"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_are_masked_in_every_line(fmt: str) -> None:
    """A secret that reaches a log line anyway (message, extra field) is written as ***."""
    stream = io.StringIO()
    setup_logging("info", fmt, stream, secrets=["zip-pässword", "S3CRET-key"])
    log.warning("password zip-pässword and key S3CRET-key", extra={"key": "S3CRET-key"})
    text = stream.getvalue()
    for form in ("zip-pässword", "zip-p\\u00e4ssword", "S3CRET-key"):
        assert form not in text
    assert "password *** and key ***" in text


def test_short_secrets_are_not_masked() -> None:
    """A secret shorter than 4 characters would garble every line that has it: not masked."""
    stream = io.StringIO()
    setup_logging("info", "text", stream, secrets=["pw"])
    log.info("upward")
    assert "upward" in stream.getvalue()


def test_mask_replaces_every_occurrence() -> None:
    """mask() replaces each secret wherever it occurs."""
    assert mask("a-SEC-b-SEC", ["SEC", ""]) == "a-***-b-***"


def test_repeats_within_the_window_are_counted_not_written() -> None:
    """The same message again within the window is dropped; the next one written says how many."""
    clock = Clock(1000.0)
    repeats = RepeatFilter(60, clock)
    assert repeats.filter(record("collector down"))
    for _ in range(4):
        clock.now += 10
        assert not repeats.filter(record("collector down"))
    assert repeats.filter(record("something else"))
    clock.now += 30  # 70 s after the first
    again = record("collector down")
    assert repeats.filter(again)
    assert again.getMessage() == "collector down (repeated 4 more times in 70s)"
    clock.now += 1
    assert not repeats.filter(record("collector down"))  # a new window began


def test_repeats_differ_by_level_and_text() -> None:
    """Only the same logger, level and text count as a repeat."""
    repeats = RepeatFilter(60, Clock(1000.0))
    assert repeats.filter(record("x"))
    assert repeats.filter(record("x", logging.ERROR))
    assert repeats.filter(record("y"))


def test_repeats_that_stop_are_summed_up_later() -> None:
    """Repeats of a message that does not come back are summed up once its window is over."""
    clock = Clock(1000.0)
    repeats = RepeatFilter(60, clock)
    repeats.filter(record("stuck"))
    clock.now += 1
    repeats.filter(record("stuck"))
    repeats.filter(record("stuck"))
    assert repeats.due() == []
    clock.now += 60
    (summary,) = repeats.due()
    assert summary.getMessage() == "stuck (repeated 2 more times in 61s)"
    assert summary.levelno == logging.WARNING
    assert repeats.due() == []


def test_repeat_summaries_are_written_with_the_next_line_and_at_close() -> None:
    """The handler writes due summaries before the next line, and every pending one when closed."""
    stream = io.StringIO()
    setup_logging("info", "json", stream, repeat_window_secs=3600)
    for _ in range(3):
        log.warning("collector down")
    setup_logging("info", "json", io.StringIO())  # replacing the handler closes the old one
    messages = [line["message"] for line in json_lines(stream)]
    assert messages == ["collector down", "collector down (repeated 2 more times in 0s)"]


def test_no_window_writes_every_line() -> None:
    """repeat_window_secs 0: nothing is collapsed."""
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    for _ in range(3):
        log.warning("same")
    assert len(json_lines(stream)) == 3


def test_live_line_stays_below_log_lines_on_a_terminal() -> None:
    """On a terminal the status line is cleared for each log line and drawn again after it."""
    terminal = Terminal()
    setup_logging("info", "text", terminal)
    show_status("backlog: 10 files left")
    log.info("a line")
    show_status("")
    text = terminal.getvalue()
    assert text.startswith("\r\x1b[Kbacklog: 10 files left\r\x1b[K")
    assert "INFO    a line\nbacklog: 10 files left\r\x1b[K" in text
    assert text.endswith("\r\x1b[K")


def test_no_live_line_when_not_on_a_terminal() -> None:
    """Without a terminal (or with JSON), show_status writes nothing."""
    pipe = io.StringIO()
    setup_logging("info", "text", pipe)
    show_status("backlog")
    terminal = Terminal()
    setup_logging("info", "json", terminal)
    show_status("backlog")
    assert pipe.getvalue() == "" and terminal.getvalue() == ""
