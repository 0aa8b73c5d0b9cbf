"""Per-cluster memory of the operator process, and the single writer of status.

Two tasks touch a cluster's status: the lifecycle reconcile (conditions about the stream
and owned objects) and the autoscaling daemon (live figures, Scaling, Degraded). A status
merge patch replaces lists wholesale, so two writers would overwrite each other's
conditions. Both therefore edit `ClusterState.status` under `ClusterState.lock` and
`flush()` sends only the difference from what was last written, throttled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from surge_operator.api import MessagingClusterSpec, MessagingClusterStatus
from surge_operator.jetstream import NatsAuth
from surge_operator.kube import ClusterObject, KubeApi
from surge_operator.status import from_wire, needs_write, status_patch, to_wire


@dataclass
class WorkerFigures:
    """The worker Deployment as last seen by the watch (kopf event handler)."""

    exists: bool = False
    spec_replicas: int = 0
    replicas: int = 0
    ready: int = 0
    updated: int = 0
    observed_generation: int = 0
    generation: int = 0
    #: whether the structural field manager (not the autoscaler's) owns spec.replicas
    structural_owns_replicas: bool = False

    @property
    def rolled_out(self) -> bool:
        return self.observed_generation >= self.generation and self.updated >= self.spec_replicas


@dataclass
class ClusterState:
    ref: ClusterObject
    status: MessagingClusterStatus
    written: dict[str, Any]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_write: float = 0.0
    workers: WorkerFigures = field(default_factory=WorkerFigures)
    #: the gateway Deployment, when the cluster runs one
    gateway: WorkerFigures | None = None
    #: spec of the generation last reconciled successfully (None until then)
    spec: MessagingClusterSpec | None = None
    generation: int | None = None
    stream_ready: bool = False
    #: autoscaler memory (policy.types.ScalingState), opaque here
    scaling: Any = None
    #: failover.FailoverController for multi-region clusters, opaque here
    failover: Any = None
    next_probe: float = 0.0
    published_level: int | None = None
    #: the sheddable classes published with that level (spec.sheddable())
    published_sheddable: frozenset[str] | None = None
    gateway_warned: bool = False
    #: NATS connection of the active region, once the stream was provisioned
    nats_url: str | None = None
    auth: NatsAuth | None = None
    #: resourceVersion per owned (kind, name) after our last apply: counts real changes
    resource_versions: dict[tuple[str, str], str | None] = field(default_factory=dict)
    last_reconcile: float = 0.0
    #: a change written to status must not be re-derived on the next tick
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def flush(
        self, kube: KubeApi, *, interval: float, force: bool = False, now: float | None = None
    ) -> bool:
        """Write the status difference if it matters now (see status.needs_write).
        Call with the lock held. Returns True when a write happened."""
        now = time.monotonic() if now is None else now
        patch = status_patch(self.written, self.status)
        if not patch:
            return False
        if not force and not needs_write(
            patch, since_last_write=now - self.last_write, interval=interval, old=self.written
        ):
            return False
        await kube.patch_status(self.ref.namespace, self.ref.name, patch)
        self.written = to_wire(self.status)
        self.last_write = now
        return True


def gateway_pair(cs: ClusterState, spec: MessagingClusterSpec) -> tuple[int, int] | None:
    """(ready, desired) gateway pods for WorkersReady, None when no gateway is deployed."""
    if not (spec.gateway.enabled and spec.gateway.tokens_secret is not None):
        return None
    figures = cs.gateway or WorkerFigures()
    return figures.ready, spec.gateway.replicas


class Registry:
    """ClusterState by uid. Lives in kopf's memo for the operator's lifetime."""

    def __init__(self) -> None:
        self._states: dict[str, ClusterState] = {}

    def get(self, uid: str) -> ClusterState | None:
        return self._states.get(uid)

    def ensure(self, ref: ClusterObject, raw_status: dict[str, Any] | None) -> ClusterState:
        state = self._states.get(ref.uid)
        if state is None:
            status = from_wire(raw_status)
            state = ClusterState(ref=ref, status=status, written=to_wire(status))
            self._states[ref.uid] = state
        return state

    def forget(self, uid: str) -> None:
        self._states.pop(uid, None)

    def __len__(self) -> int:
        return len(self._states)
