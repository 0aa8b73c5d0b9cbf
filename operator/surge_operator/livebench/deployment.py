"""The live bench's "Deployment": real `surge-worker` processes behind the engine's
ScaleTarget Protocol, each scraped by the local Prometheus while it runs.

It is `LocalProcessTarget` (what `surge demo` scales) plus what a Deployment gives a
cluster's Prometheus for free: the scrape targets follow the pods. It also records what
it was asked for, so replica-seconds are measured from the target itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from surge_operator.localprom import PrometheusServer
from surge_operator.scale_target import LocalProcessTarget


@dataclass
class ScrapedWorkers:
    workers: LocalProcessTarget
    prometheus: PrometheusServer
    clock: Callable[[], float]
    #: Prometheus job of these workers (queries select on it).
    job: str = "workers"
    #: (time, replicas asked for) at every change, on `clock`.
    history: list[tuple[float, int]] = field(default_factory=list)

    async def current(self) -> int:
        return await self.workers.current()

    async def ready(self) -> int:
        return await self.workers.ready()

    async def scale(self, replicas: int) -> None:
        await self.workers.scale(replicas)
        self.history.append((self.clock(), replicas))
        ports = self.workers.metrics_ports()
        self.prometheus.add_targets(self.job, [f"127.0.0.1:{port}" for port in ports])

    async def close(self) -> None:
        await self.workers.close()
        self.prometheus.remove_targets(self.job)
