"""The operator's MetricsSources: one engine `MetricsSource` per MessagingCluster.

One `metrics_source.JetStreamMetricsSource` per MessagingCluster (it keeps the previous
reading to turn counters into rates), on the pooled NATS connection of the cluster's
active region, with Prometheus queries when `spec.autoscaling.prometheus` is set. The
source is rebuilt when what it reads changes (stream, subjects, NATS URL, Prometheus).
Times are on the operator's monotonic clock, the same one the daemon passes as `at`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from surge_operator.api import MessagingClusterSpec
from surge_operator.jetstream import JetStreamOps, NatsAuth
from surge_operator.kube import ClusterObject
from surge_operator.metrics_source import JetStreamMetricsSource, PrometheusQueries
from surge_workers.pipeline import PipelineConfig


@dataclass
class _Entry:
    key: tuple[object, ...]
    source: JetStreamMetricsSource


class JetStreamSnapshots:
    def __init__(
        self,
        js: JetStreamOps,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._js = js
        self._clock = clock
        self._wall = wall_clock
        self._sources: dict[str, _Entry] = {}

    async def source(
        self,
        cluster: ClusterObject,
        *,
        url: str,
        auth: NatsAuth,
        pipeline: PipelineConfig,
        spec: MessagingClusterSpec,
    ) -> JetStreamMetricsSource:
        prom = spec.autoscaling.prometheus
        key = (url, auth.digest(), pipeline.stream, pipeline.subject_prefix, prom)
        entry = self._sources.get(cluster.uid)
        if entry is None or entry.key != key:
            js = await self._js.jetstream(url, auth)
            entry = _Entry(
                key,
                JetStreamMetricsSource(
                    js,
                    pipeline,
                    prometheus=PrometheusQueries.from_spec(prom),
                    clock=self._clock,
                    wall_clock=self._wall,
                    missing_raises=True,
                ),
            )
            self._sources[cluster.uid] = entry
        return entry.source

    def forget(self, cluster: ClusterObject) -> None:
        self._sources.pop(cluster.uid, None)
