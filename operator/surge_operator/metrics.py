"""Operator metrics (Prometheus). One registry per process, created in `run.main()` and
passed down, so tests get a fresh one and nothing registers at import time."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LABELS = ("namespace", "cluster")


@dataclass
class OperatorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.reconciles = Counter(
            "surge_operator_reconciles_total",
            "Reconciles of MessagingClusters by outcome.",
            ["outcome"],
            registry=r,
        )
        self.errors = Counter(
            "surge_operator_errors_total",
            "Errors by reason (the condition/Event reason).",
            ["reason"],
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "surge_operator_reconcile_duration_seconds",
            "Time to reconcile one MessagingCluster.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.tick_seconds = Histogram(
            "surge_operator_autoscale_tick_duration_seconds",
            "Time for one autoscaling tick (snapshot, decide, act).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.decisions = Counter(
            "surge_operator_decisions_total",
            "Autoscaling decisions by reason.",
            ["reason"],
            registry=r,
        )
        self.scale_actions = Counter(
            "surge_operator_scale_actions_total",
            "Worker Deployment scale changes made.",
            ["direction"],
            registry=r,
        )
        self.status_writes = Counter(
            "surge_operator_status_writes_total", "Status patches sent.", registry=r
        )
        self.desired_replicas = Gauge(
            "surge_operator_desired_replicas", "Last decided worker count.", _LABELS, registry=r
        )
        self.actual_replicas = Gauge(
            "surge_operator_actual_replicas", "Worker pods that exist.", _LABELS, registry=r
        )
        self.ready_replicas = Gauge(
            "surge_operator_ready_replicas", "Worker pods ready.", _LABELS, registry=r
        )
        self.backlog = Gauge(
            "surge_operator_backlog_messages", "Pending + unacked messages.", _LABELS, registry=r
        )
        self.degradation_level = Gauge(
            "surge_operator_degradation_level", "0 normal .. 3 critical first.", _LABELS, registry=r
        )
        self.clusters = Gauge(
            "surge_operator_managed_clusters", "MessagingClusters in memory.", registry=r
        )
        # 1 for the region serving traffic; the label carries the name for dashboards.
        self.active_region = Gauge(
            "surge_operator_active_region",
            "1 for the region that serves traffic.",
            (*_LABELS, "region"),
            registry=r,
        )

        # Managed NATS, from the servers' own reports (handlers/nats_ops.py).
        self.nats_servers_ready = Gauge(
            "surge_operator_nats_servers_ready",
            "Managed nats-server pods ready.",
            (*_LABELS, "region"),
            registry=r,
        )
        self.nats_stream_lag = Gauge(
            "surge_operator_nats_stream_replica_lag",
            "Operations the furthest replica of a stream is behind its leader.",
            (*_LABELS, "region", "stream"),
            registry=r,
        )
        self.nats_stream_current = Gauge(
            "surge_operator_nats_stream_replicas_current",
            "Replicas of a stream that are current.",
            (*_LABELS, "region", "stream"),
            registry=r,
        )

        self.backup_last_success = Gauge(
            "surge_operator_backup_last_success_timestamp_seconds",
            "Unix time the newest successful backup finished.",
            _LABELS,
            registry=r,
        )
        self.backup_size = Gauge(
            "surge_operator_backup_last_size_bytes",
            "Size of the newest successful backup.",
            _LABELS,
            registry=r,
        )
        self.backup_duration = Gauge(
            "surge_operator_backup_last_duration_seconds",
            "Duration of the newest successful backup.",
            _LABELS,
            registry=r,
        )
        self.backup_overdue = Gauge(
            "surge_operator_backup_overdue",
            "1 when no backup succeeded within twice the schedule's interval.",
            _LABELS,
            registry=r,
        )
        self.backup_runs = Counter(
            "surge_operator_backup_runs_total",
            "Backup runs seen by the operator, by outcome.",
            (*_LABELS, "outcome"),
            registry=r,
        )
        self.failover_rpo = Gauge(
            "surge_operator_failover_rpo_messages",
            "Estimated RPO of the last promotion: messages the dead primary was last seen to "
            "hold beyond the promoted standby (recovered when it heals).",
            _LABELS,
            registry=r,
        )
        self.failover_recovered = Counter(
            "surge_operator_failover_recovered_messages",
            "Messages of an old primary's tail merged into the active region, by outcome "
            "(republished, duplicate: already there by id, superseded: newer KV value kept).",
            (*_LABELS, "outcome"),
            registry=r,
        )
        self.failovers = Counter(
            "surge_operator_failovers",
            "Promotions and failbacks carried out.",
            (*_LABELS, "kind"),
            registry=r,
        )

    def forget(self, namespace: str, cluster: str) -> None:
        for gauge in (
            self.backup_last_success,
            self.backup_size,
            self.backup_duration,
            self.backup_overdue,
            self.desired_replicas,
            self.actual_replicas,
            self.ready_replicas,
            self.backlog,
            self.degradation_level,
            self.failover_rpo,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, cluster)
