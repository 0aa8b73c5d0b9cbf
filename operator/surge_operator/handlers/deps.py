"""What handlers need, built once at start-up and kept in kopf's memo.

Everything with I/O is behind a Protocol (`KubeApi`, `JetStreamOps`, `SnapshotSource`,
`ScaleTargetFactory`), so handler logic is unit-tested with small fakes; the integration
and e2e tests run the same code against a real API server and nats-server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from surge_operator.api import MessagingClusterSpec
from surge_operator.handlers.state import Registry
from surge_operator.jetstream import JetStreamOps, NatsAuth
from surge_operator.kube import ClusterObject, KubeApi
from surge_operator.leader import Leadership, Unfenced
from surge_operator.metrics import OperatorMetrics
from surge_operator.natsops.admin import NatsAdmin
from surge_operator.policy.types import Snapshot
from surge_operator.settings import OperatorConfig
from surge_workers.pipeline import PipelineConfig


class SnapshotSource(Protocol):
    """One tick's metrics for one cluster (JetStream, optionally Prometheus)."""

    async def snapshot(
        self,
        cluster: ClusterObject,
        *,
        url: str,
        auth: NatsAuth,
        pipeline: PipelineConfig,
        spec: MessagingClusterSpec,
        at: float,
        current_replicas: int,
        ready_replicas: int,
    ) -> Snapshot: ...

    def forget(self, cluster: ClusterObject) -> None: ...


class ScaleTarget(Protocol):
    """Sets the worker count (the Kubernetes Deployment here; local processes in the demo)."""

    async def scale(self, replicas: int) -> None: ...


ScaleTargetFactory = Callable[[ClusterObject, str], ScaleTarget]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    config: OperatorConfig
    kube: KubeApi
    js: JetStreamOps
    snapshots: SnapshotSource
    scale_target: ScaleTargetFactory
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    registry: Registry = field(default_factory=Registry)
    now: Callable[[], datetime] = _utcnow
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    #: system-account operations on managed NATS (None: the NATS step is skipped)
    nats_admin: NatsAdmin | None = None
    #: The Lease (fenced leadership): destructive NATS actions run only while it holds.
    leadership: Leadership = field(default_factory=Unfenced)
