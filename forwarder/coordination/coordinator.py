"""The coordinator: this forwarder's part in a fleet, on a thread of its own beside the runner.

Every ``renew_secs`` (a round):

1. **renew** each lease it holds (``If-Match`` on the ETag it wrote last); one refused is
   lost (another forwarder took it: its pipeline stops at once), one S3 does not answer
   is counted (``forwarder_lease_renew_failures_total``) and tried again next round — the
   pipeline's fence closes by itself when the lease runs out unrenewed;
2. **heartbeat**: writes ``members/<forwarder_id>.json`` and lists ``members/``: the
   forwarders whose heartbeat is fresh (``lease_secs + grace_secs`` on S3's clock) are
   the fleet;
3. **balance** (``balance.plan``): over its share it lets pipelines go (``releasing``: the
   runner stops them after their batch in flight, then ``stopped`` deletes the lease);
   under it, it lists ``leases/`` and takes free ones: none there (``If-None-Match: *``),
   expired (``If-Match`` on the expired version, epoch + 1), or its own that it gave up
   for lost while nobody took them.

``wanted()`` is what the runner should run here (``forwarder.coordination.steering``);
``close()`` at a clean stop releases every lease and the heartbeat, so the others take
over at their next round instead of waiting for expiry. With ``greedy`` (``run --once``,
``import-state``) it takes every free lease at once, whatever its share, and never lets go.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from forwarder.config import S3Coordination
from forwarder.coordination.balance import View, plan, share
from forwarder.coordination.lease import Lease, lease_clock, lease_key, pipeline_of, read_lease
from forwarder.coordination.members import Members
from forwarder.coordination.objects import Listed, Objects, Refused, verify_conditions
from forwarder.coordination.state import state_key
from forwarder.errors import FetchError

log = logging.getLogger(__name__)


class FleetObserver(Protocol):
    """Told how many pipelines this forwarder holds, and of each renewal S3 did not take."""

    def held(self, count: int) -> None: ...

    def renew_failed(self, pipeline: str) -> None: ...


class _Quiet:
    def held(self, count: int) -> None:
        """Nothing."""

    def renew_failed(self, pipeline: str) -> None:
        """Nothing."""


class Coordinator:
    """See the module docstring."""

    def __init__(
        self,
        settings: S3Coordination,
        pipelines: Sequence[str],
        objects: Objects,
        forwarder_id: str,
        observer: FleetObserver | None = None,
        greedy: bool = False,
        clock: Callable[[], float] = lease_clock,
    ) -> None:
        self.settings = settings
        self.me = forwarder_id
        self.objects = objects
        self.pipelines = list(pipelines)
        self.observer = observer or _Quiet()
        self._greedy = greedy
        self._clock = clock
        self._leases: dict[str, Lease] = {}  # held: running, being let go, or lost until stopped
        self._lost_etags: dict[str, str] = {}
        self._ops = threading.Lock()  # one S3 operation on a lease at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._members = Members(objects, forwarder_id, settings.lease_secs, settings.grace_secs)
        self.forwarders = 1
        self.status: tuple[bool, str] = (False, "not started")

    # --- the runner's side ------------------------------------------------------------

    def start(self) -> None:
        """Check the store's conditional writes, announce this forwarder, and start the rounds
        (greedy: take every free lease first). ConfigError when the store ignores conditions."""
        verify_conditions(self.objects, self.me)
        self._members.beat([])
        log.info(
            "coordination: forwarder %s joins the fleet at %s (leases of %gs)",
            self.me,
            self.objects.url(),
            self.settings.lease_secs,
        )
        if self._greedy:
            self.round(balance=True)
        self._thread = threading.Thread(target=self._rounds, name="coordinator", daemon=True)
        self._thread.start()

    def wanted(self) -> dict[str, Lease]:
        """The pipelines to run here now, with their leases."""
        return {
            name: lease for name, lease in list(self._leases.items()) if not (lease.lost or lease.releasing)
        }

    def lease(self, pipeline: str) -> Lease | None:
        """The lease held for *pipeline* (the fence its pipeline is built with)."""
        return self._leases.get(pipeline)

    def stopped(self, leases: Sequence[Lease]) -> None:
        """The runner stopped these pipelines (after their batch in flight): leases let go are
        deleted, lost ones forgotten."""
        for lease in leases:
            if self._leases.get(lease.pipeline) is lease:
                if not lease.lost:
                    self._release(lease)
                self._forget(lease)

    def close(self) -> None:
        """Stop the rounds; release every lease still held and the heartbeat."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for lease in list(self._leases.values()):
            if not lease.lost:
                self._release(lease)
            self._forget(lease)
        try:
            self._members.leave()
        except FetchError as exc:
            log.warning("coordination: heartbeat of %s not removed (%s); it expires by itself", self.me, exc)

    def _forget(self, lease: Lease) -> None:
        if lease.lost:
            self._lost_etags[lease.pipeline] = lease.etag
        del self._leases[lease.pipeline]
        self.observer.held(len(self.wanted()))

    # --- the rounds -------------------------------------------------------------------

    def _rounds(self) -> None:
        every = self.settings.renew_every
        if not self._greedy:  # let forwarders that start together see each other first
            self._stop.wait(every)
        while not self._stop.is_set():
            started = self._clock()
            try:
                self.round(balance=not self._greedy)
            except Exception as exc:  # a bug: the rounds must go on, or every lease runs out
                log.exception("coordination: round failed (a bug: please report it)")
                self.status = (False, f"round failed: {exc!r}")
            self._stop.wait(max(0.0, every - (self._clock() - started)))

    def round(self, balance: bool = True) -> None:
        """Renew, heartbeat, and (with *balance*) balance: one round."""
        renewed = all([self._renew(lease) for lease in list(self._leases.values()) if not lease.lost])
        try:
            self._members.beat(list(self.wanted()))
            alive = {name for name, _ in self._members.alive()}
            self.forwarders = 1 if self._greedy else len(alive | {self.me})
            if balance:
                self._balance()
        except FetchError as exc:
            self.status = (False, str(exc))
            log.warning("coordination: %s", exc)
            return
        held = len(self.wanted())
        fleet = (
            f"{self.objects.url()}: {self.forwarders} forwarders, holding {held} of "
            f"{len(self.pipelines)} pipelines (share {share(len(self.pipelines), self.forwarders)})"
        )
        self.status = (True, fleet) if renewed else (False, f"{fleet}; leases not renewed (see the log)")
        self.observer.held(held)

    @property
    def _expiry(self) -> tuple[float, float]:
        return self.settings.lease_secs, self.settings.grace_secs

    def _renew(self, lease: Lease) -> bool:
        """Renew *lease*; False when S3 did not answer."""
        key = lease_key(lease.pipeline)
        with self._ops:
            if lease.lost or self._leases.get(lease.pipeline) is not lease:
                return True  # released meanwhile
            try:
                for _ in range(2):
                    serial, sent = lease.serial + 1, self._clock()
                    try:
                        etag = self.objects.put(key, lease.body(serial), match=lease.etag)
                    except Refused:
                        stored = self.objects.get(key)
                        if stored is None or not lease.wrote(stored.body):
                            data = read_lease(stored.body) if stored is not None else {}
                            by = f"taken over by {data.get('owner', '?')} (epoch {data.get('epoch', '?')})"
                            self._lose(lease, by if stored is not None else "its lease object is gone")
                            return True
                        # An earlier renewal landed though its answer was lost: when it was sent
                        # is not known, so the deadline waits for a renewal answered now.
                        lease.adopt(stored.etag, read_lease(stored.body).get("serial", serial))
                        continue
                    lease.renewed(etag, serial, sent)
                    return True
            except FetchError as exc:
                self.observer.renew_failed(lease.pipeline)
                left = lease.deadline - self._clock()
                if left <= 0:
                    self._lose(lease, f"not renewed in time (S3 did not answer: {exc})")
                else:
                    log.warning(
                        "pipeline %s: lease not renewed (%s); it runs out in %.1fs",
                        lease.pipeline,
                        exc,
                        left,
                        extra={"pipeline": lease.pipeline},
                    )
            return False

    def _lose(self, lease: Lease, reason: str) -> None:
        if lease.lose(reason):
            log.warning(
                "pipeline %s: lease lost: %s; stopping it here",
                lease.pipeline,
                reason,
                extra={"pipeline": lease.pipeline},
            )

    def _balance(self) -> None:
        held = dict(self._leases)
        releasing = {name for name, lease in held.items() if lease.releasing or lease.lost}
        quota = share(len(self.pipelines), self.forwarders)
        listed, now = self.objects.list("leases/") if self._greedy or len(held) < quota else ([], 0.0)
        view = View(self.forwarders, {pipeline_of(item.key): item for item in listed}, now)
        todo = plan(self.me, self.pipelines, held, releasing, view, *self._expiry, self._lost_etags)
        for name in todo.release:
            lease = held[name]
            lease.releasing = True
            log.info(
                "pipeline %s: letting it go to another forwarder (%d forwarders share %d pipelines, "
                "%d each at most); after its batch in flight",
                name,
                self.forwarders,
                len(self.pipelines),
                quota,
                extra={"pipeline": name},
            )
        taken = 0
        for name in todo.take:
            if taken >= todo.wanted:
                break
            taken += self._take(name, view.leases.get(name))

    def _take(self, name: str, seen: Listed | None) -> bool:
        """Take the lease of *name* over the version *seen* listed (none: create it); False
        when another forwarder was quicker. The epoch goes on from the last one that wrote
        the pipeline's checkpoint when the lease was released (deleted)."""
        key = lease_key(name)
        match, before = "", ""
        if seen is None:
            stored = self.objects.get(state_key(name, "checkpoint.json"))
            epoch = read_lease(stored.body).get("epoch", 0) + 1 if stored is not None else 1
        else:  # expired (or still ours): over exactly that version
            stored = self.objects.get(key)
            if stored is None or stored.etag != seen.etag:
                return False  # renewed, taken or released since the listing
            data = read_lease(stored.body)
            epoch, match, before = data.get("epoch", 0) + 1, seen.etag, f" from {data.get('owner', '?')}"
        lease = Lease(name, self.me, epoch, "", 0.0, self.settings.lease_secs, clock=self._clock)
        sent = self._clock()
        try:
            etag = self.objects.put(key, lease.body(1), match=match, create=not match)
        except Refused:
            return False
        lease.renewed(etag, 1, sent)
        self._leases[name] = lease
        self._lost_etags.pop(name, None)
        log.info("pipeline %s: lease taken%s (epoch %d)", name, before, epoch, extra={"pipeline": name})
        return True

    def _release(self, lease: Lease) -> None:
        with self._ops:
            try:
                self.objects.delete(lease_key(lease.pipeline), lease.etag)
            except (FetchError, Refused) as exc:
                log.warning(
                    "pipeline %s: lease not released (%s); it expires by itself",
                    lease.pipeline,
                    exc,
                    extra={"pipeline": lease.pipeline},
                )
                return
        log.info("pipeline %s: lease released", lease.pipeline, extra={"pipeline": lease.pipeline})
