"""A JetStream-only `SnapshotSource` for the operator's autoscaling loop.

Reads the stream and the per-priority consumers once per tick through
`surge_workers.queue_state` and turns successive reads into rates: arrivals from the
stream's last sequence, completions from the shrinking of (pending + ack-pending) plus
arrivals. Prometheus latency is optional and left to the autoscaler's own MetricsSource;
without it the policy works from backlog and oldest-message age.
"""

from __future__ import annotations

import nats.errors

from surge_operator.api import MessagingClusterSpec, Priority
from surge_operator.errors import NatsUnavailableError, ProvisioningError
from surge_operator.jetstream import JetStreamOps, NatsAuth
from surge_operator.kube import ClusterObject
from surge_operator.policy.types import PriorityMetrics, Snapshot, frozen_mapping
from surge_workers.pipeline import PipelineConfig
from surge_workers.queue_state import QueueState, QueueStateUnavailable, read_queue_state


def rates(previous: QueueState | None, current: QueueState) -> tuple[float | None, float | None]:
    """(arrival rate, completion rate) between two reads, None on the first read."""
    if previous is None:
        return None, None
    dt = current.observed_at - previous.observed_at
    if dt <= 0:
        return None, None
    arrivals = max(0, current.last_seq - previous.last_seq)
    drained = previous.backlog + arrivals - current.backlog
    return arrivals / dt, max(0.0, drained / dt)


def to_snapshot(
    previous: QueueState | None,
    current: QueueState,
    *,
    at: float,
    current_replicas: int,
    ready_replicas: int,
) -> Snapshot:
    """Pure: two queue reads -> the policy's Snapshot."""
    arrival, completion = rates(previous, current)
    total_backlog = current.backlog
    metrics: dict[Priority, PriorityMetrics] = {}
    for wire, q in current.priorities.items():
        prio = Priority(wire.value)
        share_rate: float | None = None
        if arrival is not None:
            # Per-priority arrivals from the growth of that consumer's backlog plus its
            # share of completions; never negative.
            prev_q = previous.priorities.get(wire) if previous else None
            grown = (q.backlog - prev_q.backlog) if prev_q is not None else 0
            share = (q.backlog / total_backlog) if total_backlog else 1 / len(current.priorities)
            dt = current.observed_at - (previous.observed_at if previous else current.observed_at)
            share_rate = max(0.0, (grown / dt if dt > 0 else 0.0) + (completion or 0.0) * share)
            if arrival == 0:
                share_rate = 0.0
        metrics[prio] = PriorityMetrics(
            backlog=q.backlog,
            arrival_rate=share_rate,
            oldest_unacked_age=q.oldest_unacked_age,
        )
    return Snapshot(
        at=at,
        observed_at=current.observed_at,
        priorities=frozen_mapping(metrics),
        current_replicas=current_replicas,
        ready_replicas=ready_replicas,
        completion_rate=completion,
        waiting=sum(q.num_pending for q in current.priorities.values()),
    )


class JetStreamSnapshots:
    def __init__(self, js: JetStreamOps) -> None:
        self._js = js
        self._previous: dict[str, QueueState] = {}

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
    ) -> Snapshot:
        js = await self._js.jetstream(url, auth)
        try:
            state = await read_queue_state(js, pipeline, now=at)
        except QueueStateUnavailable as exc:
            raise ProvisioningError(str(exc)) from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise NatsUnavailableError(f"reading queue state: {type(exc).__name__}") from None
        previous = self._previous.get(cluster.uid)
        self._previous[cluster.uid] = state
        return to_snapshot(
            previous,
            state,
            at=at,
            current_replicas=current_replicas,
            ready_replicas=ready_replicas,
        )

    def forget(self, cluster: ClusterObject) -> None:
        self._previous.pop(cluster.uid, None)


__all__ = ["JetStreamSnapshots", "rates", "to_snapshot"]
