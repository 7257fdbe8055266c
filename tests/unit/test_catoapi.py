"""The Cato API kinds' settings (forwarder.config.catoapi), the call budget, and the warning and
readiness check before a marker expires (forwarder.sources.feedhealth, forwarder.observe.health)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from forwarder.config import (
    AuditFeedConfig,
    EventsFeedConfig,
    load_config,
    parse_config,
    redacted,
    secret_values,
)
from forwarder.errors import ConfigError
from forwarder.observe.health import Health
from forwarder.sources.catoapi import CallBudget
from forwarder.sources.feedhealth import FeedHealth
from tests.support.clock import Clock


def source(lines: str, kind: str = "events_feed") -> str:
    return f"source:\n  kind: {kind}\n  api_key: ${{CATO_API_KEY}}\n{lines}output:\n  protocol: stdout\n"


def load(lines: str, kind: str = "events_feed") -> Any:
    return parse_config(source(lines, kind), env={"CATO_API_KEY": "k-123-secret"}).pipeline().source


def test_one_account_or_several_as_text() -> None:
    """account_ids takes one ID or a list (numbers or strings), kept as text without repeats."""
    assert load("  account_ids: 12345\n").account_ids == ("12345",)
    assert load("  account_ids: [12345, '678', 12345]\n").account_ids == ("12345", "678")


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ("", "source.account_ids: required key is missing"),
        (
            "  account_ids: []\n",
            "source.account_ids: expected an account ID or a list of them, got an empty list",
        ),
        ("  account_ids: [12345, acme]\n", "source.account_ids[1]: expected a Cato account ID (digits"),
        (
            "  account_ids: 1\n  endpoint: http://api.catonetworks.com\n",
            "source.endpoint: expected an https:// URL",
        ),
        ("  account_ids: 1\n  endpoint: https://cc.catonetworks.com\n", "is the management application, not"),
        (
            "  account_ids: 1\n  endpoint: https://api.catonetworks.com/graphql\n",
            "expected the path /api/v1/",
        ),
        (
            "  account_ids: 1\n  marker_max_age_secs: 300000\n",
            "source.marker_max_age_secs: expected a number 1-",
        ),
        ("  account_ids: 1\n  bucket: b\n", "source.bucket: unknown key"),
    ],
)
def test_bad_settings_say_which_key_and_what_was_expected(lines: str, error: str) -> None:
    """Each bad setting is one line naming the key, what was expected and what was given."""
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace("[", r"\[")):
        load(lines)


def test_the_audit_start_is_latest_or_a_time() -> None:
    """audit_feed's start: latest or an RFC 3339 time; anything else is refused."""
    assert load("  account_ids: 1\n  start: 2026-11-28T07:00:00Z\n", "audit_feed").start
    with pytest.raises(ConfigError, match="source.start: expected latest or a time"):
        load("  account_ids: 1\n  start: yesterday\n", "audit_feed")


def test_the_api_key_is_a_secret() -> None:
    """api_key from ${VAR}: masked in the shown config and in the log's mask list."""
    config = parse_config(source("  account_ids: 1\n"), env={"CATO_API_KEY": "k-123-secret"})
    assert redacted(config)["pipelines"][0]["source"]["api_key"] == "***"
    assert "k-123-secret" in secret_values(config)


def test_the_host_alone_gets_the_graphql_path() -> None:
    """endpoint may be the regional host alone; the GraphQL path is added."""
    settings = load("  account_ids: 1\n  endpoint: https://api.us1.catonetworks.com\n")
    assert settings.url == "https://api.us1.catonetworks.com/api/v1/graphql2"


def test_the_budget_lets_calls_go_at_once_until_the_minute_is_spent() -> None:
    """No wait while fewer than the allowance went out in the last minute; then until the oldest leaves it."""
    clock = Clock(1000.0)
    budget = CallBudget(3, 60.0, clock)
    for _ in range(3):
        assert budget.wait_secs() == 0
        budget.record()
        clock.now += 1
    assert budget.wait_secs() == pytest.approx(57.0)
    clock.now = 1060.0
    assert budget.wait_secs() == 0


def test_no_window_of_a_minute_holds_more_calls_than_allowed() -> None:
    """Calls made whenever the budget allows: any 60 s holds at most the allowance."""
    clock = Clock(0.0)
    budget = CallBudget(100, 60.0, clock)
    sent = []
    while clock.now < 300:
        wait = budget.wait_secs()
        clock.now += wait if wait else 0.05
        if not wait:
            budget.record()
            sent.append(clock.now)
    assert max(sum(1 for t in sent if start <= t < start + 60) for start in sent) <= 100
    assert len(sent) >= 500  # and the allowance is used: 100 a minute


def test_a_failure_past_the_age_limit_is_a_loud_error(caplog: pytest.LogCaptureFixture) -> None:
    """A failed call with the last success older than marker_max_age_secs: an error with the time left."""
    clock = Clock(1_000_000.0)
    reports: list[tuple[float, float]] = []
    health = FeedHealth("eventsFeed", 3600, lambda at, stale: reports.append((at, stale)), clock)
    health.answered()
    clock.now += 600
    with caplog.at_level(logging.ERROR):
        health.failed("permission denied")
    assert caplog.text == ""
    clock.now += 7200
    with caplog.at_level(logging.ERROR):
        health.failed("permission denied")
    assert "has not answered successfully for 2.2 hours" in caplog.text and "in about 2.9 days" in caplog.text
    assert reports == [(1_000_000.0, 3600)]


def test_readyz_turns_unready_when_the_api_is_silent_too_long() -> None:
    """Health's api check: ready while the last answer is younger than the limit, unready after."""
    wall = Clock(2_000_000.0)
    health = Health(600, 5, wall_clock=wall)
    assert "api" not in health.checks()
    health.source_reached(wall.now, 3600)
    assert health.checks()["api"].ok is True
    wall.now += 3601
    check = health.checks()["api"]
    assert check.ok is False and "unready after source.marker_max_age_secs: 3600s" in check.detail
    assert not health.ready()


def test_the_api_example_config_loads_and_shows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """config.api.example.yaml loads as it is; its events and audit sources hold the defaults."""
    monkeypatch.setenv("CATO_API_KEY", "example-key")
    config = load_config(Path(__file__).resolve().parents[2] / "config.api.example.yaml")
    events, audit = (p.source for p in config.pipelines)
    assert isinstance(events, EventsFeedConfig) and isinstance(audit, AuditFeedConfig)
    defaults = EventsFeedConfig(api_key="example-key", account_ids=("12345",))
    assert events == defaults
    assert (audit.max_calls_per_min, audit.poll_interval_secs, audit.start) == (5, 60.0, "latest")
    assert audit == AuditFeedConfig(api_key="example-key", account_ids=("12345",))
