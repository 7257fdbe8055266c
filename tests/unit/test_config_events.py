"""Unit tests for the settings of source.kind events_integration: defaults and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from forwarder.config import load_config, parse_config
from forwarder.config.sources import EventsIntegrationConfig, SqsSettings
from forwarder.errors import ConfigError

BASE = "source:\n  kind: events_integration\n  bucket: cato-events\n"
QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/cato-events"


def source(extra: str = "") -> EventsIntegrationConfig:
    found = parse_config(BASE + extra, env={}).pipeline().source
    assert isinstance(found, EventsIntegrationConfig)
    return found


def error(extra: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + extra, env={})
    return str(info.value)


def test_defaults_list_the_prefix_with_an_hour_window() -> None:
    """discovery list, an hour's look-back, dated folders skipped, a full listing hourly, replaced
    objects reported, a poll every 30 s."""
    found = source()
    assert (found.discovery, found.lookback_secs, found.partitions, found.full_listing_secs) == (
        "list", 3600.0, "auto", 3600.0
    )  # fmt: skip
    assert (found.on_replaced, found.poll_interval_secs, found.start) == ("report", 30.0, "earliest")


def test_sqs_takes_a_queue_url_and_polls_every_second_unless_told() -> None:
    """With discovery: sqs the queue settings are read and each pass follows the last at 1 s."""
    found = source(f"  discovery: sqs\n  sqs:\n    queue_url: {QUEUE}\n    visibility_timeout_secs: 300\n")
    assert (found.sqs.queue_url, found.sqs.visibility_timeout_secs, found.poll_interval_secs) == (
        QUEUE,
        300,
        1.0,
    )
    assert (
        source(
            f"  discovery: sqs\n  sqs: {{queue_url: {QUEUE}}}\n  poll_interval_secs: 5\n"
        ).poll_interval_secs
        == 5
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "  discovery: sqs\n",
            'source.sqs.queue_url: expected a queue URL such as "https://sqs.eu-west-1.amazonaws.com/'
            '123456789012/cato-events", got ""',
        ),
        (
            "  sqs: {queue_url: " + QUEUE + "}\n",
            "source.sqs: only applies to discovery: sqs, but discovery is list",
        ),
        (
            f"  discovery: sqs\n  start: latest\n  sqs: {{queue_url: {QUEUE}}}\n",
            "source.start: only applies to discovery: list (with sqs, what the queue holds is what is "
            "delivered)",
        ),
        (
            "  start: yesterday\n",
            'source.start: expected earliest, latest or an ISO 8601 time such as "2026-11-28T07:00:00Z", '
            'got "yesterday"',
        ),
        ("  lookback_secs: 5\n", "source.lookback_secs: expected a number >= 60, got 5"),
        (
            "  sqs: {wait_time_secs: 30}\n  discovery: sqs\n",
            "source.sqs.wait_time_secs: expected an integer 0-20, got 30",
        ),
        ("  key_pattern: x\n", "source.key_pattern: unknown key"),
        ("  discovery: probe\n", 'source.discovery: expected one of list, sqs, got "probe"'),
    ],
)
def test_settings_that_do_not_fit_are_one_line_errors(extra: str, expected: str) -> None:
    """Each error names the key path, what was expected and what was given."""
    assert error(extra).startswith(expected)


def test_start_takes_an_iso_time_with_or_without_a_zone() -> None:
    """2026-11-28T07:00:00Z and 2026-11-28 07:00 (UTC) are both times to start from."""
    assert source("  start: '2026-11-28T07:00:00Z'\n").start == "2026-11-28T07:00:00Z"
    assert source("  start: '2026-11-28 07:00'\n").start == "2026-11-28 07:00"


def test_the_example_file_of_the_kind_loads_and_shows_its_defaults() -> None:
    """config.events-integration.example.yaml loads as it is; its source values are the defaults."""
    example = Path(__file__).resolve().parents[2] / "config.events-integration.example.yaml"
    config = load_config(example).pipeline()
    assert config.source == EventsIntegrationConfig(bucket="cato-events", prefix="cato/")
    assert config.parser.max_record_bytes == 64 << 20
    commented = example.read_text().split("#sqs:", 1)[1].split("\n  # The ledger", 1)[0]
    sqs = yaml.safe_load("sqs:" + "\n".join(line.replace("  #", "  ", 1) for line in commented.splitlines()))
    assert SqsSettings(**sqs["sqs"]) == SqsSettings(queue_url=sqs["sqs"]["queue_url"])
