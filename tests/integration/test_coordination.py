"""Coordination against a real S3 endpoint (moto server): the conditional writes it relies on,
a store that ignores them refused, leases taken, renewed, balanced, taken over and released,
and a pipeline's state (checkpoint, dead letters, quarantine) beside its lease."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import botocore.exceptions
import pytest

from forwarder.compose import coordination_objects
from forwarder.config import S3Coordination
from forwarder.coordination.coordinator import Coordinator
from forwarder.coordination.objects import NO_SUCH_ETAG, Objects, verify_conditions
from forwarder.coordination.state import S3Checkpoint, S3DeadLetter, S3Quarantine
from forwarder.coordination.view import FleetView
from forwarder.core.checkpoint import Position
from forwarder.errors import CheckpointError, ConfigError, LeaseLost
from forwarder.formats.records import Record
from tests.support.s3proxy import S3Proxy

pytestmark = pytest.mark.integration

STATE = "fleet-state"
NAMES = [f"p{i:02d}" for i in range(12)]


def settings(endpoint: str, **extra: Any) -> S3Coordination:
    values: dict[str, Any] = {
        "bucket": STATE, "prefix": "fleet/", "endpoint_url": endpoint, "access_key_id": "testing",
        "secret_access_key": "testing", "lease_secs": 30.0, "grace_secs": 1.0, **extra,
    }  # fmt: skip
    return S3Coordination(**values)


def coordinator(
    endpoint: str, me: str, names: list[str], clock: Any = time.monotonic, **extra: Any
) -> Coordinator:
    config = settings(endpoint, **extra)
    return Coordinator(config, names, coordination_objects(config), me, clock=clock)


@pytest.fixture
def state(s3: Any) -> Any:
    client = s3.client()
    client.create_bucket(Bucket=STATE)
    return client


def conditions_enforced(client: Any) -> dict[str, bool]:
    """Which conditional writes the endpoint behind *client* refuses as it must (412)."""
    client.put_object(Bucket=STATE, Key="c/k", Body=b"first", IfNoneMatch="*")

    def refused(call: Any, **args: Any) -> bool:
        try:
            call(Bucket=STATE, Key="c/k", **args)
        except botocore.exceptions.ClientError as exc:
            return bool(exc.response["ResponseMetadata"]["HTTPStatusCode"] == 412)
        return False

    return {
        "put If-None-Match": refused(client.put_object, Body=b"second", IfNoneMatch="*"),
        "put If-Match": refused(client.put_object, Body=b"third", IfMatch=NO_SUCH_ETAG),
        "delete If-Match": refused(client.delete_object, IfMatch=NO_SUCH_ETAG),
    }


def test_a_store_that_ignores_conditions_is_noticed_and_refused(s3: Any, state: Any) -> None:
    """moto refuses (412) a create over an existing key and a write or delete on a stale ETag
    (more in test_moto_capabilities.py) and the fleet's start-up check passes there; behind a
    proxy that drops If-Match/If-None-Match (a store that ignores them) the same requests go
    through — so these tests notice if moto stops enforcing — and the forwarder refuses to
    coordinate through it, naming every condition ignored."""
    everything = dict.fromkeys(("put If-None-Match", "put If-Match", "delete If-Match"), True)
    assert conditions_enforced(state) == everything
    verify_conditions(coordination_objects(settings(s3.endpoint_url)), "fwd-a")  # passes, leaves nothing
    assert "Contents" not in state.list_objects_v2(Bucket=STATE, Prefix="fleet/")
    state.delete_object(Bucket=STATE, Key="c/k")
    with S3Proxy(s3.endpoint_url, ignore_conditions=True) as proxy:
        client = s3.client(endpoint_url=proxy.endpoint_url)
        assert conditions_enforced(client) == dict.fromkeys(everything, False)
        with pytest.raises(ConfigError) as caught:
            coordinator(proxy.endpoint_url, "fwd-a", NAMES).start()
    assert str(caught.value) == (
        f"coordination: s3://{STATE}/fleet/ ignores If-None-Match: * on PUT, If-Match on PUT, If-Match on "
        "DELETE (a write it had to refuse went through): forwarders cannot share pipelines safely through "
        "this store; use AWS S3 or a store that enforces conditional writes, or coordination.kind: none"
    )


def held(*fleet: Coordinator) -> list[int]:
    return [len(c.wanted()) for c in fleet]


def settle(*fleet: Coordinator, rounds: int = 3) -> None:
    """Rounds of every forwarder in turn, the runner's part played: what is let go is stopped."""
    for _ in range(rounds):
        for c in fleet:
            c.round()
            c.stopped([lease for lease in list(c._leases.values()) if lease.releasing or lease.lost])


def test_pipelines_spread_evenly_and_move_back_when_a_forwarder_comes_back(s3: Any, state: Any) -> None:
    """One forwarder takes all 12; a second and third make it let go down to its share (4 each);
    a fourth joins (3 each); one closing cleanly hands its leases over at the next round."""
    a, b, c = (coordinator(s3.endpoint_url, me, NAMES) for me in ("fwd-a", "fwd-b", "fwd-c"))
    settle(a, rounds=1)
    assert held(a) == [12]
    settle(a, b, c)
    assert held(a, b, c) == [4, 4, 4]
    owners = {
        json.loads(state.get_object(Bucket=STATE, Key=f"fleet/leases/{n}.json")["Body"].read())["owner"]
        for n in NAMES
    }
    assert owners == {"fwd-a", "fwd-b", "fwd-c"}
    d = coordinator(s3.endpoint_url, "fwd-d", NAMES)
    settle(a, b, c, d)
    assert held(a, b, c, d) == [3, 3, 3, 3]
    assert {n for x in (a, b, c, d) for n in x.wanted()} == set(NAMES)  # each pipeline once
    d.close()
    assert "Contents" not in state.list_objects_v2(Bucket=STATE, Prefix="fleet/members/fwd-d")
    settle(a, b, c, rounds=2)
    assert sorted(held(a, b, c)) == [4, 4, 4]


def test_a_lease_not_renewed_is_taken_over_and_the_old_owner_is_fenced(s3: Any, state: Any) -> None:
    """fwd-a stops renewing (paused); past lease_secs + grace_secs on S3's clock fwd-b takes its
    leases (epoch 2) and claims the checkpoint. fwd-a, its own clock frozen as if it had not
    noticed: its checkpoint write is refused by S3 (412) and its renewal finds the lease taken;
    it sends and saves nothing more. fwd-b's progress stands, and no write of fwd-a came after
    its claim."""
    state.put_bucket_versioning(Bucket=STATE, VersioningConfiguration={"Status": "Enabled"})
    frozen = [1000.0]
    a = coordinator(s3.endpoint_url, "fwd-a", ["acme", "beta"], clock=lambda: frozen[0], lease_secs=1.0)
    b = coordinator(s3.endpoint_url, "fwd-b", ["acme", "beta"], lease_secs=1.0)
    a.round()
    lease_a = a.lease("acme")
    assert lease_a is not None and set(a.wanted()) == {"acme", "beta"}
    store_a = S3Checkpoint(a.objects, "acme", "s3://cato-logs/acme/", lease_a)
    store_a.lock()
    store_a.save(Position({"sequence": 1}, 100))
    time.sleep(3.1)  # past lease 1 s + grace 1 s, on S3's whole-second clock (rounded down)
    b.round()
    assert set(b.wanted()) == {"acme", "beta"}
    lease_b = b.lease("acme")
    assert lease_b is not None and lease_b.epoch == 2
    store_b = S3Checkpoint(b.objects, "acme", "s3://cato-logs/acme/", lease_b)
    store_b.lock()
    assert store_b.load() == Position({"sequence": 1}, 100)
    with pytest.raises(
        LeaseLost, match=r"pipeline acme: lease lost: its checkpoint write was refused: fwd-b"
    ):
        store_a.save(Position({"sequence": 1}, 200))
    with pytest.raises(LeaseLost):
        lease_a.check()  # the fence stays closed: nothing more is sent either
    a.round()
    beta = a._leases["beta"]
    assert beta.lost == "taken over by fwd-b (epoch 2)" and a.wanted() == {}
    store_b.save(Position({"sequence": 1}, 150))
    versions = state.list_object_versions(Bucket=STATE, Prefix="fleet/state/acme/checkpoint.json")["Versions"]
    writers = [
        json.loads(state.get_object(Bucket=STATE, Key=v["Key"], VersionId=v["VersionId"])["Body"].read())[
            "owner"
        ]
        for v in reversed(versions)  # oldest first
    ]
    assert writers == ["fwd-a", "fwd-a", "fwd-b", "fwd-b"]  # claim, save; claim, save: none of A's after


def test_a_clean_close_releases_leases_and_heartbeat(s3: Any, state: Any) -> None:
    """close() deletes every lease it holds (If-Match) and its heartbeat: nothing of it is left."""
    a = coordinator(s3.endpoint_url, "fwd-a", NAMES[:3])
    a.start()
    a.round()
    assert len(a.wanted()) == 3
    a.close()
    assert "Contents" not in state.list_objects_v2(Bucket=STATE, Prefix="fleet/")


def test_renewals_keep_a_lease_alive_on_the_coordinators_thread(s3: Any, state: Any) -> None:
    """Started, the coordinator renews every renew_secs: after several lease periods the lease
    is still its own, its fence open, its serial grown."""
    a = coordinator(s3.endpoint_url, "fwd-a", ["acme"], lease_secs=1.0, renew_secs=0.3)
    a.start()
    try:
        deadline = time.monotonic() + 5
        while not a.wanted() and time.monotonic() < deadline:
            time.sleep(0.05)
        lease = a.lease("acme")
        assert lease is not None
        time.sleep(3.0)
        lease.check()
        assert lease.serial >= 5 and a.status[0] is True
    finally:
        a.close()


def test_a_pipelines_state_lives_beside_its_lease(s3: Any, state: Any) -> None:
    """The checkpoint (with the writer's name), dead letters (an object per commit, counted by
    name) and quarantine list go under state/<pipeline>/; status reads them without writing."""
    a = coordinator(s3.endpoint_url, "fwd-a", ["acme"])
    a.round()
    lease = a.lease("acme")
    assert lease is not None
    store = S3Checkpoint(a.objects, "acme", "s3://cato-logs/acme/", lease)
    store.lock()
    assert store.load() is None
    letters = S3DeadLetter(a.objects, "acme", lease)
    for n in range(3):
        letters.add(
            "s3://cato-logs/acme/CATO1.zip", Record(n, "a.log", n + 1, f"bad {n}".encode(), "bad"), "not CEF"
        )
    letters.commit()
    letters.add("s3://cato-logs/acme/CATO2.zip", Record(8, "a.log", 9, b"worse", "bad"), "not JSON")
    letters.commit()
    S3Quarantine(a.objects, "acme", lease).add({"sequence": 3, "key": "acme/CATO3.zip", "reason": "bad zip"})
    store.record_quarantine({"sequence": 3, "key": "acme/CATO3.zip"}, "bad zip")
    store.save(Position({"sequence": 4}, 7))
    view = FleetView(a.settings, a.objects)
    before = state.list_objects_v2(Bucket=STATE, Prefix="fleet/state/")["KeyCount"]
    reader = view.checkpoint("acme", "s3://cato-logs/acme/")
    assert reader.load() == Position({"sequence": 4}, 7) and reader.quarantined[0]["reason"] == "bad zip"
    assert reader.stored["owner"] == "fwd-a" and reader.stored["epoch"] == 1
    summary = view.dead_letters("acme")
    assert summary["records"] == 4 and summary["last"]["reason"] == "not JSON"
    holder = view.holder("acme")
    assert holder is not None and holder.owner == "fwd-a" and not holder.expired
    assert state.list_objects_v2(Bucket=STATE, Prefix="fleet/state/")["KeyCount"] == before == 4
    with pytest.raises(CheckpointError, match="read only"):
        reader.save(None)
    state.put_object(Bucket=STATE, Key="fleet/state/acme/checkpoint.json", Body=b"{ torn")
    with pytest.raises(CheckpointError, match="the checkpoint is corrupt"):
        view.checkpoint("acme", "s3://cato-logs/acme/").load()


def test_two_forwarders_racing_for_one_free_lease_one_wins(s3: Any, state: Any) -> None:
    """Rounds run at the same moment on threads: the conditional create lets exactly one take it."""
    fleet = [coordinator(s3.endpoint_url, f"fwd-{i}", ["acme"]) for i in range(4)]
    barrier = threading.Barrier(len(fleet))

    def race(c: Coordinator) -> None:
        barrier.wait()
        c.round()

    threads = [threading.Thread(target=race, args=(c,)) for c in fleet]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(held(*fleet)) == [0, 0, 0, 1]


def test_objects_name_their_place_in_errors(s3: Any) -> None:
    """A missing bucket is a FetchError naming the fleet's URL, not an empty answer."""
    objects: Objects = coordination_objects(settings(s3.endpoint_url, bucket="no-such-bucket"))
    with pytest.raises(Exception, match=r"s3://no-such-bucket/fleet/members/: NoSuchBucket"):
        objects.list("members/")


def test_requests_per_round_are_what_the_readme_counts(s3: Any, state: Any) -> None:
    """Settled (each at its share), a forwarder's round costs one PUT per lease it holds, one
    PUT of its heartbeat and one LIST of the members — nothing more (README "Running a fleet")."""
    with S3Proxy(s3.endpoint_url) as proxy:
        fleet = [coordinator(proxy.endpoint_url, me, NAMES) for me in ("fwd-a", "fwd-b", "fwd-c")]
        settle(*fleet)
        assert held(*fleet) == [4, 4, 4]
        proxy.requests.clear()
        rounds = 5
        for _ in range(rounds):
            for c in fleet:
                c.round()
        kinds: dict[tuple[str, str], int] = {}
        for request in proxy.requests:
            what = "list" if "list-type" in request.query else request.path.split("/")[3]
            kinds[(request.method, what)] = kinds.get((request.method, what), 0) + 1
    assert kinds == {
        ("PUT", "leases"): rounds * 12,
        ("PUT", "members"): rounds * 3,
        ("GET", "list"): rounds * 3,
    }
