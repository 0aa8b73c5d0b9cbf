"""What handlers need, built once at start-up and kept in kopf's memo.

Everything with I/O is behind a Protocol (`KubeApi`, `JetStreamOps`, `MetricsSources`,
`ScaleTargetFactory`; the last two hand out the engine's MetricsSource and ScaleTarget),
so handler logic is unit-tested with small fakes; the integration and e2e tests run the
same code against a real API server and nats-server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from surge_operator.api import MessagingClusterSpec
from surge_operator.engine import MetricsSource, ScaleTarget
from surge_operator.handlers.state import Registry
from surge_operator.jetstream import JetStreamOps, NatsAuth
from surge_operator.kube import ClusterObject, KubeApi
from surge_operator.leader import Leadership, Unfenced
from surge_operator.metrics import OperatorMetrics
from surge_operator.natsops.admin import NatsAdmin
from surge_operator.settings import OperatorConfig
from surge_workers.pipeline import PipelineConfig


class MetricsSources(Protocol):
    """The engine's MetricsSource for each cluster (JetStream, optionally Prometheus),
    kept between ticks because a source turns counters into rates."""

    async def source(
        self,
        cluster: ClusterObject,
        *,
        url: str,
        auth: NatsAuth,
        pipeline: PipelineConfig,
        spec: MessagingClusterSpec,
    ) -> MetricsSource: ...

    def forget(self, cluster: ClusterObject) -> None: ...


#: (cluster, worker Deployment name, its observed (replicas, ready)) -> the engine's target.
ScaleTargetFactory = Callable[[ClusterObject, str, Callable[[], tuple[int, int]]], ScaleTarget]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    config: OperatorConfig
    kube: KubeApi
    js: JetStreamOps
    snapshots: MetricsSources
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
