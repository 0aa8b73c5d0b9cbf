"""Leader election on a coordination.k8s.io Lease, so two operator replicas are safe.

kopf's own peering freezes *all* replicas of equal priority (by design, to make the
conflict visible), which does not give a hot standby. This is the client-go pattern:
the holder renews the Lease every `lease/3` seconds; a standby takes it over only after
`leaseDurationSeconds` passed without renewal; writes use the resourceVersion for
optimistic concurrency, so two candidates cannot both win. A leader that fails to renew
for a whole lease duration stops its operator (and the process exits to be restarted as
a standby), so there is never a window with two active leaders longer than clock skew.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from surge_operator.errors import KubeApiError, KubeConflictError
from surge_operator.kube import HttpKubeApi
from surge_operator.logs import get_logger
from surge_operator.settings import LeaderSettings

log = get_logger()


def _micro(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class LeaseView:
    holder: str
    renewed: datetime | None
    duration: float
    transitions: int


def view(lease: dict[str, Any]) -> LeaseView:
    spec = lease.get("spec") or {}
    return LeaseView(
        holder=str(spec.get("holderIdentity") or ""),
        renewed=_parse(spec.get("renewTime")) or _parse(spec.get("acquireTime")),
        duration=float(spec.get("leaseDurationSeconds") or 15),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def can_take(lease: LeaseView, identity: str, now: datetime) -> bool:
    """Pure: may `identity` write itself as holder now?"""
    if lease.holder in ("", identity):
        return True
    if lease.renewed is None:
        return True
    return now - lease.renewed > timedelta(seconds=lease.duration)


class LeaseElector:
    def __init__(self, kube: HttpKubeApi, settings: LeaderSettings) -> None:
        self._kube = kube
        self._s = settings
        self.is_leader = False

    def _manifest(self, now: datetime, *, acquire: bool, transitions: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self._s.identity,
            "leaseDurationSeconds": int(self._s.lease_seconds),
            "renewTime": _micro(now),
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = _micro(now)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._s.lease_name, "namespace": self._s.lease_namespace},
            "spec": spec,
        }

    async def try_acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        current = await self._kube.get(
            "coordination.k8s.io/v1", "Lease", self._s.lease_namespace, self._s.lease_name
        )
        try:
            if current is None:
                await self._kube.create(self._manifest(now, acquire=True, transitions=0))
                return True
            lease = view(current)
            if not can_take(lease, self._s.identity, now):
                return False
            ours = lease.holder == self._s.identity
            manifest = self._manifest(
                now,
                acquire=not ours,
                transitions=lease.transitions + (0 if ours else 1),
            )
            if ours and "acquireTime" in (current.get("spec") or {}):
                manifest["spec"]["acquireTime"] = current["spec"]["acquireTime"]
            manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self._kube.replace(manifest)
            return True
        except KubeConflictError:
            return False  # someone else wrote first: they win this round

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Block until leader (True) or `stop` is set (False)."""
        period = max(0.5, self._s.lease_seconds / 3)
        announced = False
        while not stop.is_set():
            try:
                if await self.try_acquire_or_renew():
                    self.is_leader = True
                    log.info("leader_elected", identity=self._s.identity, lease=self._s.lease_name)
                    return True
            except KubeApiError as exc:
                log.warning("lease_error", error=exc.message)
            if not announced:
                log.info("standby", identity=self._s.identity, lease=self._s.lease_name)
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
        return False

    async def keep(self, lost: asyncio.Event, stop: asyncio.Event) -> None:
        """Renew until `stop`; set `lost` if the lease cannot be renewed in time."""
        period = max(0.5, self._s.lease_seconds / 3)
        last_ok = asyncio.get_running_loop().time()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=period)
                break
            except TimeoutError:
                pass
            try:
                if await self.try_acquire_or_renew():
                    last_ok = asyncio.get_running_loop().time()
                    continue
                log.error("leadership_lost", identity=self._s.identity)
                break
            except KubeApiError as exc:
                log.warning("lease_renew_failed", error=exc.message)
                if asyncio.get_running_loop().time() - last_ok < self._s.lease_seconds:
                    continue
                log.error("leadership_expired", identity=self._s.identity)
                break
        if not stop.is_set():
            self.is_leader = False
            lost.set()

    async def release(self) -> None:
        """Hand over at once on a clean shutdown instead of making the standby wait."""
        if not self.is_leader:
            return
        try:
            current = await self._kube.get(
                "coordination.k8s.io/v1", "Lease", self._s.lease_namespace, self._s.lease_name
            )
            if current is not None and view(current).holder == self._s.identity:
                current["spec"]["holderIdentity"] = ""
                current["spec"]["leaseDurationSeconds"] = 1
                await self._kube.replace(current)
        except KubeApiError as exc:
            log.warning("lease_release_failed", error=exc.message)
        self.is_leader = False
