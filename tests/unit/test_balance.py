"""Unit tests for forwarder.coordination.balance: each forwarder's share, what it takes, what it lets go."""

from __future__ import annotations

from forwarder.coordination.balance import View, plan, rank, share
from forwarder.coordination.objects import Listed

LEASE, GRACE = 30.0, 2.0
NAMES = [f"p{i:02d}" for i in range(12)]


def listed(*names: str, modified: float = 1000.0) -> dict[str, Listed]:
    return {name: Listed(f"leases/{name}.json", f'"etag-{name}"', modified) for name in names}


def test_share_is_the_ceiling_of_pipelines_over_forwarders() -> None:
    """12 pipelines: 12 for one forwarder, 6 for two, 4 for three, 3 for four, 3 for five."""
    assert [share(12, n) for n in (1, 2, 3, 4, 5)] == [12, 6, 4, 3, 3]
    assert share(12, 0) == 12  # never divided by nothing


def test_a_lone_forwarder_wants_every_free_pipeline_in_its_own_order() -> None:
    """With no leases anywhere, a forwarder alone wants all 12, its most preferred first."""
    todo = plan("fwd-a", NAMES, [], [], View(1, {}, 2000.0), LEASE, GRACE)
    assert todo.wanted == 12 and todo.release == ()
    assert list(todo.take) == sorted(NAMES, key=lambda p: rank("fwd-a", p), reverse=True)


def test_two_forwarders_prefer_different_pipelines() -> None:
    """Rendezvous ranking: the first pipelines two forwarders reach for mostly differ."""
    a = plan("fwd-a", NAMES, [], [], View(2, {}, 2000.0), LEASE, GRACE).take[:6]
    b = plan("fwd-b", NAMES, [], [], View(2, {}, 2000.0), LEASE, GRACE).take[:6]
    assert len(set(a) & set(b)) < 6


def test_live_leases_of_others_are_not_free_expired_ones_are() -> None:
    """A lease renewed within lease_secs + grace_secs (S3's clock) is another's; older is free."""
    old = 1000.0 - LEASE - GRACE - 1
    leases = {**listed(*NAMES[:6], modified=1000.0), **listed(*NAMES[6:], modified=old)}
    todo = plan("fwd-a", NAMES, [], [], View(2, leases, 1000.5), LEASE, GRACE)
    assert set(todo.take) == set(NAMES[6:]) and todo.wanted == 6
    view = View(2, listed("p00", modified=1000.0), 1000 + LEASE + GRACE)
    edge = plan("fwd-a", NAMES, [], [], view, LEASE, GRACE)
    assert "p00" not in edge.take  # exactly lease + grace old: not yet


def test_a_forwarder_over_its_share_lets_its_least_preferred_go() -> None:
    """Holding 6 of 12 when a third forwarder appears (share 4): the 2 it ranks lowest go."""
    held = NAMES[:6]
    todo = plan("fwd-a", NAMES, held, [], View(3, listed(*NAMES), 2000.0), LEASE, GRACE)
    lowest = sorted(held, key=lambda p: rank("fwd-a", p))[:2]
    assert sorted(todo.release) == sorted(lowest) and todo.wanted == 0 and todo.take == ()


def test_nothing_is_taken_while_pipelines_are_being_let_go() -> None:
    """Leases being let go still count: a forwarder at its share with one going takes none."""
    todo = plan("fwd-a", NAMES, NAMES[:4], ["p03"], View(3, {}, 2000.0), LEASE, GRACE)
    assert todo.wanted == 0 and todo.release == ()


def test_a_pipeline_removed_from_the_config_is_let_go() -> None:
    """A lease held for a pipeline no longer configured is released, whatever the share."""
    todo = plan("fwd-a", NAMES[:3], ["p00", "gone"], [], View(1, listed("p00", "gone"), 2000.0), LEASE, GRACE)
    assert todo.release == ("gone",) and set(todo.take) == {"p01", "p02"}


def test_a_lease_given_up_for_lost_is_taken_back_while_nobody_took_it() -> None:
    """A live lease whose ETag is still the one this forwarder wrote is its own to take back."""
    leases = listed("p00", modified=1999.0)
    mine = plan("fwd-a", NAMES[:1], [], [], View(1, leases, 2000.0), LEASE, GRACE, {"p00": '"etag-p00"'})
    other = plan("fwd-a", NAMES[:1], [], [], View(1, leases, 2000.0), LEASE, GRACE, {"p00": '"older"'})
    assert mine.take == ("p00",) and other.take == ()
