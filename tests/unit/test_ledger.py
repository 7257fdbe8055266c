"""Unit tests for forwarder.sources.ledger: the objects done over a look-back window."""

from __future__ import annotations

import pytest

from forwarder.errors import CheckpointError
from forwarder.sources.ledger import DONE, NEW, REPLACED, Ledger, ledger_size

HOUR = 3600


def test_an_object_done_is_done_with_its_etag_and_replaced_with_another() -> None:
    """The ledger tells new, done (same ETag) and replaced (another ETag) apart."""
    ledger = Ledger().with_done("a.gz", 1000, "e1", HOUR)
    assert ledger.state("a.gz", "e1") == DONE
    assert ledger.state("a.gz", "e2") == REPLACED
    assert ledger.state("b.gz", "e1") == NEW


def test_the_window_follows_the_newest_object_and_prunes_behind_it() -> None:
    """since = newest done - lookback; entries written before it are pruned, later ones kept."""
    ledger = Ledger().with_done("old.gz", 1000, "e", HOUR).with_done("mid.gz", 3000, "e", HOUR)
    assert (ledger.since, ledger.newest, len(ledger)) == (0, 3000, 2)
    ledger = ledger.with_done("new.gz", 1000 + HOUR + 500, "e", HOUR)
    assert (ledger.since, ledger.newest) == (1500, 1000 + HOUR + 500)
    assert sorted(ledger.done) == ["mid.gz", "new.gz"]
    assert ledger.before_window(1499) and not ledger.before_window(1500)


def test_an_object_done_late_with_an_older_time_keeps_the_window() -> None:
    """A late object (older LastModified) done after newer ones neither moves the window back
    nor is forgotten while inside it."""
    ledger = Ledger().with_done("new.gz", 10_000, "e", HOUR).with_done("late.gz", 9_000, "e", HOUR)
    assert (ledger.since, ledger.newest) == (10_000 - HOUR, 10_000)
    assert ledger.state("late.gz", "e") == DONE


def test_the_window_never_moves_back_when_the_lookback_grows() -> None:
    """Raising lookback_secs later does not reopen what was pruned (it would be sent again)."""
    ledger = Ledger().with_done("a.gz", 10_000, "e", 600)
    assert ledger.since == 9_400
    wider = ledger.with_done("b.gz", 10_001, "e", 5 * HOUR)
    assert wider.since == 9_400


def test_a_ledger_reads_back_from_its_json_and_refuses_another_kind_of_cursor() -> None:
    """to_json round-trips through Ledger.of; a log exporter's cursor is a CheckpointError."""
    ledger = Ledger().with_done("a.gz", 1000, "e1", HOUR)
    again = Ledger.of({"ledger": ledger.to_json()})
    assert (again.since, again.newest, dict(again.done)) == (0, 1000, {"a.gz": "1000 e1"})
    assert ledger_size({"ledger": ledger.to_json()}) == 1
    assert ledger_size({"sequence": 7}) is None
    with pytest.raises(CheckpointError, match="not an events_integration ledger"):
        Ledger.of({"sequence": 7007, "key": "K/CATO7007.zip"})
    with pytest.raises(CheckpointError, match="done entry"):
        Ledger.of({"ledger": {"since": 0, "newest": 0, "done": {"a": [1000, "e1"]}}})
