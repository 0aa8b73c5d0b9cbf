"""Prometheus metrics of the worker and the gateway, each in its own registry (no globals).

Children for every (priority, outcome) are created up front: the hot path only calls
``inc``/``observe`` on pre-bound children, and dashboards see zeros instead of gaps.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from surge_workers.contract import PRIORITIES, Priority

WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
HANDLE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
OUTCOMES = ("ok", "retry", "dead_letter", "duplicate")


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        processed = Counter(
            "surge_worker_processed",
            "Messages finished by this worker, by priority and outcome.",
            ["priority", "outcome"],
            registry=r,
        )
        wait = Histogram(
            "surge_worker_queue_wait_seconds",
            "Enqueue (Surge-Enqueued-At) to handler start.",
            ["priority"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        handling = Histogram(
            "surge_worker_handling_seconds",
            "Handler run time.",
            ["priority"],
            buckets=HANDLE_BUCKETS,
            registry=r,
        )
        redeliveries = Counter(
            "surge_worker_redeliveries",
            "Deliveries with num_delivered > 1.",
            ["priority"],
            registry=r,
        )
        self.in_flight = Gauge("surge_worker_in_flight", "Handlers running now.", registry=r)
        self.buffered = Gauge(
            "surge_worker_buffered", "Messages pulled and waiting for a lane.", registry=r
        )
        self.degradation_level = Gauge(
            "surge_worker_degradation_level", "Degradation level this worker obeys.", registry=r
        )
        self.retries = Counter(
            "surge_worker_retries",
            "Deliveries this worker gave back to retry later, by failure: handler (charged "
            "to the delivery budget) or infra (NATS could not serve the handler; not charged).",
            ["priority", "failure"],
            registry=r,
        )
        self.dead_letters = Counter(
            "surge_worker_dead_letters",
            "Messages this worker moved to the dead-letter subject.",
            ["priority", "cause"],
            registry=r,
        )
        self.processed = {
            (p, o): processed.labels(p.value, o) for p in PRIORITIES for o in OUTCOMES
        }
        self.queue_wait = {p: wait.labels(p.value) for p in PRIORITIES}
        self.handling = {p: handling.labels(p.value) for p in PRIORITIES}
        self.redeliveries = {p: redeliveries.labels(p.value) for p in PRIORITIES}

    def processed_count(self, priority: Priority, outcome: str) -> float:
        return float(self.processed[(priority, outcome)]._value.get())


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "surge_gateway_requests",
            "HTTP requests by route and status code.",
            ["route", "code"],
            registry=r,
        )
        accepted = Counter(
            "surge_gateway_messages_accepted",
            "Messages stored in the stream (duplicates included).",
            ["priority"],
            registry=r,
        )
        rejected = Counter(
            "surge_gateway_messages_rejected",
            "Messages refused, by priority and reason.",
            ["priority", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "surge_gateway_duplicates", "Retries absorbed by message-id dedup.", registry=r
        )
        self.publish_seconds = Histogram(
            "surge_gateway_publish_seconds",
            "Time to get the JetStream ack for a request's messages.",
            buckets=HANDLE_BUCKETS,
            registry=r,
        )
        self.degradation_level = Gauge(
            "surge_gateway_degradation_level", "Degradation level the gateway obeys.", registry=r
        )
        self.accepted = {p: accepted.labels(p.value) for p in PRIORITIES}
        self._rejected = rejected

    def rejected(self, priority: str, reason: str) -> None:
        self._rejected.labels(priority, reason).inc()
