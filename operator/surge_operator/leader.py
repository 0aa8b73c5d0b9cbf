"""Leader election on a coordination.k8s.io Lease, fenced, with client-go's timings.

kopf's own peering freezes *all* replicas of equal priority (by design, to make the
conflict visible), which does not give a hot standby. This is client-go's
leaderelection, including the parts that make it safe:

* Timings (client-go defaults): lease 15 s, renew deadline 10 s, retry period 2 s. The
  holder tries to renew every retry period; each attempt is bounded by what is left of
  the renew deadline, so a hung API call can never stretch leadership.
* The Lease is judged by *this process's monotonic clock*, never by comparing our wall
  clock with the holder's ``renewTime``: a standby notes when it first saw the current
  record (holder, renewTime, resourceVersion) and may take over only after
  ``leaseDurationSeconds`` passed on its own clock without the record changing. Clock
  skew between nodes cannot shorten that wait.
* `holds()` is true only while the last *successful* renewal started less than the renew
  deadline ago. Because a standby waits the whole lease duration (longer) after it last
  saw a change, and our renewal changed the record no earlier than it started, a holder
  that answers `holds()` truthfully cannot overlap with a successor.
* `token` is the Lease's ``leaseTransitions`` when we acquired it: it grows with every new
  holder, so destructive NATS actions carry it and refuse to act against state stamped
  by a newer leader (see `surge_operator.failover`).
* Writes use the resourceVersion (optimistic concurrency), so two candidates cannot both
  win one round.

A leader that cannot renew within the deadline sets `lost`; `run.py` then stops kopf and
exits (restarted as a standby by its Deployment).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from surge_operator.errors import KubeApiError, KubeConflictError
from surge_operator.logs import get_logger
from surge_operator.settings import LeaderSettings

log = get_logger()

T = TypeVar("T")


class Leadership(Protocol):
    """What handlers ask before a destructive action."""

    def holds(self) -> bool: ...

    @property
    def token(self) -> int: ...


class Unfenced:
    """Leadership when election is off (one replica by configuration, tests, the demo)."""

    token = 0

    def holds(self) -> bool:
        return True


def _micro(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseView:
    holder: str
    duration: float
    transitions: int
    #: What identifies one renewal: it changes every time the holder writes the Lease.
    version: str


def view(lease: dict[str, Any]) -> LeaseView:
    spec = lease.get("spec") or {}
    meta = lease.get("metadata") or {}
    return LeaseView(
        holder=str(spec.get("holderIdentity") or ""),
        duration=float(spec.get("leaseDurationSeconds") or 15),
        transitions=int(spec.get("leaseTransitions") or 0),
        version=f"{meta.get('resourceVersion', '')}/{spec.get('renewTime', '')}",
    )


@dataclass(frozen=True)
class Observation:
    """The Lease record as last seen, and when (our monotonic clock) it last changed."""

    lease: LeaseView
    changed_at: float


def observe(previous: Observation | None, lease: LeaseView, now: float) -> Observation:
    """Pure: keep the first-seen time while the record is unchanged."""
    if previous is not None and previous.lease == lease:
        return previous
    return Observation(lease, now)


def can_take(observed: Observation, identity: str, now: float) -> bool:
    """Pure: may `identity` write itself as holder at monotonic time `now`?"""
    lease = observed.lease
    if lease.holder in ("", identity):
        return True
    return now - observed.changed_at > lease.duration


class LeaseApi(Protocol):
    """The three API calls election needs (HttpKubeApi in the operator)."""

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None: ...

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...

    async def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...


class LeaseElector:
    def __init__(
        self,
        kube: LeaseApi,
        settings: LeaderSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._s = settings
        self._clock = clock
        self._observed: Observation | None = None
        self.is_leader = False
        #: Monotonic start of the last successful acquire/renew.
        self.renewed_at: float | None = None
        self._token = 0

    # -- Leadership ---------------------------------------------------------------------

    @property
    def token(self) -> int:
        return self._token

    def holds(self) -> bool:
        return (
            self.is_leader
            and self.renewed_at is not None
            and self._clock() - self.renewed_at < self._s.renew_deadline_seconds
        )

    # -- one round ------------------------------------------------------------------------

    def _manifest(self, *, acquire: bool, transitions: int) -> dict[str, Any]:
        now = _micro(datetime.now(UTC))  # informational for humans; nobody compares it
        spec: dict[str, Any] = {
            "holderIdentity": self._s.identity,
            "leaseDurationSeconds": int(self._s.lease_seconds),
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = now
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._s.lease_name, "namespace": self._s.lease_namespace},
            "spec": spec,
        }

    async def try_acquire_or_renew(self) -> bool:
        started = self._clock()
        current = await self._kube.get(
            "coordination.k8s.io/v1", "Lease", self._s.lease_namespace, self._s.lease_name
        )
        try:
            if current is None:
                await self._kube.create(self._manifest(acquire=True, transitions=0))
                self._won(started, 0)
                return True
            lease = view(current)
            self._observed = observe(self._observed, lease, started)
            if not can_take(self._observed, self._s.identity, started):
                return False
            ours = lease.holder == self._s.identity
            transitions = lease.transitions + (0 if ours else 1)
            manifest = self._manifest(acquire=not ours, transitions=transitions)
            if ours and "acquireTime" in (current.get("spec") or {}):
                manifest["spec"]["acquireTime"] = current["spec"]["acquireTime"]
            manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self._kube.replace(manifest)
            self._won(started, transitions)
            return True
        except KubeConflictError:
            return False  # someone else wrote first: they win this round

    def _won(self, started: float, transitions: int) -> None:
        self.renewed_at = started
        self._token = transitions
        self.is_leader = True

    async def _bounded(self, call: Awaitable[T], within: float) -> T:
        return await asyncio.wait_for(call, timeout=max(0.1, within))

    # -- loops -----------------------------------------------------------------------------

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Block until leader (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                won = await self._bounded(self.try_acquire_or_renew(), self._s.retry_seconds * 2)
                if won:
                    log.info(
                        "leader_elected",
                        identity=self._s.identity,
                        lease=self._s.lease_name,
                        token=self._token,
                    )
                    return True
            except (KubeApiError, TimeoutError) as exc:
                log.warning("lease_error", error=getattr(exc, "message", "timeout"))
            if not announced:
                log.info("standby", identity=self._s.identity, lease=self._s.lease_name)
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._s.retry_seconds)
        return False

    async def keep(self, lost: asyncio.Event, stop: asyncio.Event) -> None:
        """Renew every retry period until `stop`; set `lost` when a renewal fails
        outright or none succeeds within the renew deadline."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._s.retry_seconds)
                break
            assert self.renewed_at is not None
            left = self._s.renew_deadline_seconds - (self._clock() - self.renewed_at)
            try:
                if await self._bounded(self.try_acquire_or_renew(), left):
                    continue
                log.error("leadership_lost", identity=self._s.identity)
                break
            except (KubeApiError, TimeoutError) as exc:
                log.warning("lease_renew_failed", error=getattr(exc, "message", "timeout"))
                if self.holds():
                    continue
                log.error("leadership_expired", identity=self._s.identity)
                break
        if not stop.is_set():
            self.is_leader = False
            lost.set()

    async def release(self, within: float = 2.0) -> None:
        """Hand over at once on a clean shutdown instead of making the standby wait.
        Bounded: with the API server gone this gives up after `within` seconds."""
        if not self.holds():
            self.is_leader = False
            return
        self.is_leader = False
        try:
            await self._bounded(self._release(), within)
        except (KubeApiError, TimeoutError) as exc:
            log.warning("lease_release_failed", error=getattr(exc, "message", "timeout"))

    async def _release(self) -> None:
        current = await self._kube.get(
            "coordination.k8s.io/v1", "Lease", self._s.lease_namespace, self._s.lease_name
        )
        if current is not None and view(current).holder == self._s.identity:
            current["spec"]["holderIdentity"] = ""
            current["spec"]["leaseDurationSeconds"] = 1
            await self._kube.replace(current)
