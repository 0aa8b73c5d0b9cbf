"""The metrics snapshot: JetStream read directly each tick, Prometheus when configured.

This is the only place that turns wire data into a policy `Snapshot`:

* backlog per priority = consumer num_pending + num_ack_pending;
* arrivals per priority from the stream's per-subject message counts between two reads
  (`stream_info(subjects_filter=...)`), total arrivals from `last_seq` deltas when the
  per-subject counts are unavailable (split by backlog share);
* completions = arrivals - backlog growth, i.e. ack progress, per priority and in total;
* oldest unacked age from the first message after each consumer's ack floor;
* offered rate per priority (accepted + what the gateway throttled or shed) from the
  gateways' cumulative counters under ``offered.<instance>`` in the degradation bucket:
  per-instance deltas between two reads, instances whose counters are older than
  `OFFERED_MAX_AGE` ignored, a decrease (restarted gateway) taken as a new baseline; never
  below the accepted arrival rate, and None when no gateway reports;
* optional p95 queue wait and error ratio from Prometheus (prometheus-api-client, run in a
  thread because it is synchronous).

A failed read never raises into the decision loop: it returns a snapshot without metrics
(`priorities` empty, `observed_at` of the last good read), and the policy holds. With
``missing_raises`` (the operator) a missing stream or consumer raises ConsumerMissingError
instead, so the shell can hold *and* say which consumer is gone in a condition.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from nats.js import JetStreamContext

from surge_operator.api import Priority, PrometheusSpec
from surge_operator.engine import MetricsSource as MetricsSource  # the engine's Protocol
from surge_operator.errors import ConsumerMissingError
from surge_operator.policy.types import PRIORITY_ORDER, PriorityMetrics, Snapshot
from surge_workers.contract import (
    OFFERED_KEY_PREFIX,
    OfferedCounts,
    decode_offered,
    degradation_bucket,
    priority_filter,
)
from surge_workers.contract import Priority as WirePriority
from surge_workers.pipeline import PipelineConfig
from surge_workers.queue_state import QueueState, QueueStateUnavailable, read_queue_state

log = structlog.get_logger("surge.metrics")

#: Gateway counters older than this (unix seconds, by the operator's wall clock) belong to
#: a gateway that stopped reporting and are ignored.
OFFERED_MAX_AGE = 10.0


class PrometheusError(Exception):
    """A Prometheus query failed or returned something that is not a number."""


@dataclass(frozen=True, slots=True)
class PrometheusReading:
    p95_wait: Mapping[Priority, float]
    error_rate: float | None


#: Seconds one Prometheus query may take (connect + read) before the tick goes on without it.
PROMETHEUS_TIMEOUT = 2.0


class PrometheusQueries:
    """p95 queue wait (per `priority` label, or one value for all) and error ratio."""

    def __init__(
        self,
        url: str,
        p95_wait_query: str | None,
        error_rate_query: str | None = None,
        *,
        timeout: float = PROMETHEUS_TIMEOUT,
    ) -> None:
        from prometheus_api_client import PrometheusConnect

        self.url = url
        self.p95_wait_query = p95_wait_query
        self.error_rate_query = error_rate_query
        # Certificates are verified (disable_ssl=False) and every query is bounded: a hung
        # or impersonated Prometheus must not stall or steer the autoscaler.
        self._client = PrometheusConnect(url=url, disable_ssl=False, timeout=timeout)

    @classmethod
    def from_spec(cls, spec: PrometheusSpec | None) -> PrometheusQueries | None:
        """From `spec.autoscaling.prometheus`; None when there is nothing to ask."""
        if spec is None or not (spec.p95_wait_query or spec.error_rate_query):
            return None
        return cls(spec.url, spec.p95_wait_query, spec.error_rate_query)

    def read(self) -> PrometheusReading:
        p95: dict[Priority, float] = {}
        if self.p95_wait_query:
            for labels, value in self._vector(self.p95_wait_query):
                name = labels.get("priority")
                if name is None:
                    p95.update(dict.fromkeys(PRIORITY_ORDER, value))
                elif name in {p.value for p in PRIORITY_ORDER}:
                    p95[Priority(name)] = value
        error_rate = None
        if self.error_rate_query:
            values = [v for _, v in self._vector(self.error_rate_query)]
            error_rate = max(values) if values else None
        return PrometheusReading(p95_wait=p95, error_rate=error_rate)

    def _vector(self, query: str) -> list[tuple[dict[str, str], float]]:
        try:
            result: Any = self._client.custom_query(query=query)
        except Exception as err:  # the client raises plain Exceptions and requests errors
            raise PrometheusError(f"{self.url}: {query!r}: {err}") from err
        samples = []
        for item in result or []:
            try:
                value = float(item["value"][1])
            except (KeyError, IndexError, TypeError, ValueError) as err:
                raise PrometheusError(f"{query!r}: unexpected sample {item!r}") from err
            if math.isfinite(value):
                samples.append((dict(item.get("metric", {})), value))
        return samples


@dataclass(frozen=True, slots=True)
class _Reading:
    at: float
    state: QueueState
    per_subject: Mapping[Priority, int] | None
    #: Fresh gateway counters by KV key; None when they could not be read.
    offered: Mapping[str, OfferedCounts] | None = None


class JetStreamMetricsSource:
    """Reads one pipeline's queue state each tick and turns deltas into rates."""

    def __init__(
        self,
        js: JetStreamContext,
        pipeline: PipelineConfig,
        *,
        prometheus: PrometheusQueries | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        missing_raises: bool = False,
    ) -> None:
        self.js = js
        self.pipeline = pipeline
        self.missing_raises = missing_raises
        self.prometheus = prometheus
        self.clock = clock
        self.wall_clock = wall_clock
        self._previous: _Reading | None = None
        self._last_good_at: float | None = None
        self.log = log.bind(stream=pipeline.stream)

    async def snapshot(self, *, at: float, current_replicas: int, ready_replicas: int) -> Snapshot:
        try:
            reading = await self._read()
        except QueueStateUnavailable as err:
            self.log.warning("jetstream_read_failed", error=str(err))
            if self.missing_raises:
                raise ConsumerMissingError(str(err)) from err
            return self._empty(at, current_replicas, ready_replicas)
        except (
            nats.errors.Error,
            nats.js.errors.Error,
            TimeoutError,
        ) as err:
            self.log.warning("jetstream_read_failed", error=str(err))
            return self._empty(at, current_replicas, ready_replicas)
        prom = await self._read_prometheus()
        previous, self._previous = self._previous, reading
        self._last_good_at = reading.at
        return build_snapshot(
            previous,
            reading,
            at=at,
            current_replicas=current_replicas,
            ready_replicas=ready_replicas,
            prometheus=prom,
        )

    async def _read(self) -> _Reading:
        at = self.clock()
        state = await read_queue_state(self.js, self.pipeline, now=self.wall_clock())
        counts: dict[Priority, int] = {}
        for priority in PRIORITY_ORDER:
            subject = priority_filter(self.pipeline.subject_prefix, WirePriority(priority.value))
            info = await self.js.stream_info(self.pipeline.stream, subjects_filter=subject)
            counts[priority] = sum((info.state.subjects or {}).values())
        # Per-subject counts only measure arrivals while acked messages stay stored.
        per_subject = counts if self.pipeline.retention == "limits" else None
        offered = await self._read_offered()
        return _Reading(at=at, state=state, per_subject=per_subject, offered=offered)

    async def _read_offered(self) -> Mapping[str, OfferedCounts] | None:
        """The gateways' fresh counters; None when the bucket cannot be read (the offered
        rate is then unknown and the policy falls back to accepted arrivals)."""
        bucket = degradation_bucket(self.pipeline.stream)
        prefix = f"$KV.{bucket}."
        try:
            kv = await self.js.key_value(bucket)
            # List keys from the stream's per-subject state: one request, where kv.keys()
            # would create an ordered consumer per cluster per tick (and can end early).
            info = await self.js.stream_info(
                f"KV_{bucket}", subjects_filter=f"{prefix}{OFFERED_KEY_PREFIX}.>"
            )
            raw: dict[str, bytes | None] = {}
            for subject in info.state.subjects or {}:
                key = subject[len(prefix) :]
                try:
                    raw[key] = (await kv.get(key)).value
                except nats.js.errors.KeyNotFoundError:
                    continue  # deleted (or purged) since it was listed
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as err:
            self.log.debug("offered_read_failed", error=str(err) or repr(err))
            return None
        return fresh_offered(raw, now=self.wall_clock())

    async def _read_prometheus(self) -> PrometheusReading | None:
        if self.prometheus is None:
            return None
        try:
            return await asyncio.to_thread(self.prometheus.read)
        except PrometheusError as err:
            self.log.warning("prometheus_read_failed", error=str(err))
            return None

    def _empty(self, at: float, current: int, ready: int) -> Snapshot:
        return Snapshot(
            at=at,
            observed_at=self._last_good_at if self._last_good_at is not None else -math.inf,
            priorities={},
            current_replicas=current,
            ready_replicas=ready,
        )


def build_snapshot(
    previous: _Reading | None,
    reading: _Reading,
    *,
    at: float,
    current_replicas: int,
    ready_replicas: int,
    prometheus: PrometheusReading | None,
) -> Snapshot:
    """Pure: two successive readings -> Snapshot (rates are None on the first reading)."""
    state = reading.state
    backlog = {p: state.priorities[WirePriority(p.value)].backlog for p in PRIORITY_ORDER}
    waiting = sum(state.priorities[WirePriority(p.value)].num_pending for p in PRIORITY_ORDER)
    arrivals: dict[Priority, float] | None = None
    completion_rate: float | None = None
    if previous is not None and reading.at > previous.at:
        span = reading.at - previous.at
        arrived = _arrived(previous, reading, backlog)
        arrivals = {p: max(0.0, n / span) for p, n in arrived.items()}
        prev_backlog = {
            p: previous.state.priorities[WirePriority(p.value)].backlog for p in PRIORITY_ORDER
        }
        done = sum(arrived[p] - (backlog[p] - prev_backlog[p]) for p in PRIORITY_ORDER)
        completion_rate = max(0.0, done / span)
    offered: dict[Priority, float] | None = None
    if previous is not None and reading.at > previous.at:
        offered = offered_rates(previous.offered, reading.offered, reading.at - previous.at)
    priorities = {
        p: PriorityMetrics(
            backlog=backlog[p],
            arrival_rate=None if arrivals is None else arrivals[p],
            oldest_unacked_age=_age(state, p),
            p95_wait=prometheus.p95_wait.get(p) if prometheus else None,
            offered_rate=(
                None
                if offered is None
                else max(offered[p], arrivals[p] if arrivals is not None else 0.0)
            ),
        )
        for p in PRIORITY_ORDER
    }
    return Snapshot(
        at=at,
        observed_at=reading.at,
        priorities=priorities,
        current_replicas=current_replicas,
        ready_replicas=ready_replicas,
        completion_rate=completion_rate,
        waiting=waiting,
        error_rate=prometheus.error_rate if prometheus else None,
    )


def _age(state: QueueState, priority: Priority) -> float:
    age = state.priorities[WirePriority(priority.value)].oldest_unacked_age
    return 0.0 if age is None else age


def _arrived(
    previous: _Reading, reading: _Reading, backlog: Mapping[Priority, int]
) -> dict[Priority, float]:
    """Messages that arrived per priority between two readings."""
    if previous.per_subject is not None and reading.per_subject is not None:
        return {
            p: float(max(0, reading.per_subject.get(p, 0) - previous.per_subject.get(p, 0)))
            for p in PRIORITY_ORDER
        }
    # Without per-subject counts, split the stream's growth by backlog share.
    total = max(0, reading.state.last_seq - previous.state.last_seq)
    weight = sum(backlog.values())
    if weight <= 0:
        return {p: total / len(PRIORITY_ORDER) for p in PRIORITY_ORDER}
    return {p: total * backlog[p] / weight for p in PRIORITY_ORDER}


def fresh_offered(
    raw: Mapping[str, bytes | None], *, now: float, max_age: float = OFFERED_MAX_AGE
) -> dict[str, OfferedCounts]:
    """Pure: decoded gateway counters by key, without garbage and dead gateways."""
    fresh: dict[str, OfferedCounts] = {}
    for key, value in raw.items():
        counts = decode_offered(value)
        if counts is not None and now - counts.at <= max_age:
            fresh[key] = counts
    return fresh


def offered_rates(
    previous: Mapping[str, OfferedCounts] | None,
    current: Mapping[str, OfferedCounts] | None,
    span: float,
) -> dict[Priority, float] | None:
    """Pure: offered writes per second per priority between two reads of the gateways'
    counters, `span` seconds apart. Only instances present (and fresh) in both reads
    count; an instance whose total fell restarted, and its new totals are a baseline.
    None when no instance was seen twice (no gateway data)."""
    if previous is None or current is None or span <= 0:
        return None
    totals = dict.fromkeys(PRIORITY_ORDER, 0)
    seen = False
    for key, now in current.items():
        before = previous.get(key)
        if before is None:
            continue
        seen = True
        for p in PRIORITY_ORDER:
            wire = WirePriority(p.value)
            delta = now.counts.get(wire, 0) - before.counts.get(wire, 0)
            if delta > 0:
                totals[p] += delta
            # delta < 0: the gateway restarted; its counts are the new baseline (0 now).
    if not seen:
        return None
    return {p: totals[p] / span for p in PRIORITY_ORDER}
