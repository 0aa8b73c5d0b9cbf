"""Prometheus metrics of the reply path, registered in the worker's or gateway's registry.

Worker: replies stored per kind (duplicates absorbed by the replies stream are not
counted), and the prediction error of acknowledgements: |predicted - actual| / actual
of each acknowledged message, observed by the worker that handled it.
Gateway: Server-Sent Event clients connected, agent replies stored.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from surge_workers.contract import PRIORITIES, Priority
from surge_workers.replies import REPLY_KINDS, ReplyKind

#: Relative error buckets: 0.3 is the goal line, so it is a bucket edge.
ERROR_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0)


class ComposerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        sent = Counter(
            "surge_worker_replies_sent",
            "Replies stored in the replies stream by the composer, by kind.",
            ["kind"],
            registry=registry,
        )
        error = Histogram(
            "surge_worker_eta_error_ratio",
            "|predicted - actual| / actual wait of acknowledged messages (enqueue -> stored).",
            ["priority"],
            buckets=ERROR_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "surge_worker_intake_failures",
            "Intake messages that failed to compose or publish (redelivered).",
            registry=registry,
        )
        self.sent = {kind: sent.labels(kind.value) for kind in REPLY_KINDS}
        self.eta_error = {p: error.labels(p.value) for p in PRIORITIES}

    def replied(self, kind: ReplyKind) -> None:
        self.sent[kind].inc()

    def observe_error(self, priority: Priority, predicted: float, actual: float) -> float | None:
        """Observe and return the relative error; None when actual is not positive."""
        if actual <= 0:
            return None
        ratio = abs(predicted - actual) / actual
        self.eta_error[priority].observe(ratio)
        return ratio


class SseMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.clients = Gauge(
            "surge_gateway_sse_clients",
            "Server-Sent Event streams open now (GET /v1/conversations/{id}/events).",
            registry=registry,
        )
        sent = Counter(
            "surge_gateway_replies_sent",
            "Replies posted through the gateway and stored, by kind.",
            ["kind"],
            registry=registry,
        )
        self.events = Counter(
            "surge_gateway_sse_events",
            "Events written to Server-Sent Event clients.",
            registry=registry,
        )
        self.sent = {kind: sent.labels(kind.value) for kind in REPLY_KINDS}
