"""build_snapshot: two JetStream readings -> the Snapshot the policy reads (pure)."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from surge_operator.api import Priority
from surge_operator.metrics_source import PrometheusReading, _Reading, build_snapshot
from surge_workers import contract
from surge_workers.queue_state import PriorityQueueState, QueueState


def reading(
    at: float, last_seq: int, pending: dict[str, int], stored: dict[str, int] | None
) -> _Reading:
    priorities = {
        contract.Priority(name): PriorityQueueState(
            priority=contract.Priority(name),
            consumer=f"surge-{name}",
            num_pending=n,
            num_ack_pending=0,
            num_redelivered=0,
            num_waiting=0,
            delivered_stream_seq=0,
            ack_floor_stream_seq=0,
            oldest_unacked_age=1.5 if n else None,
        )
        for name, n in pending.items()
    }
    state = QueueState(
        stream="S",
        observed_at=at,
        last_seq=last_seq,
        first_seq=1,
        messages=last_seq,
        bytes=0,
        priorities=MappingProxyType(priorities),
        dead_letters=0,
    )
    per_subject = None if stored is None else {Priority(k): v for k, v in stored.items()}
    return _Reading(at=at, state=state, per_subject=per_subject)


def test_rates_come_from_per_subject_growth_and_completions_from_backlog_change() -> None:
    before = reading(
        0.0,
        100,
        {"critical": 10, "normal": 20, "bulk": 0},
        {"critical": 40, "normal": 50, "bulk": 10},
    )
    after = reading(
        2.0,
        160,
        {"critical": 0, "normal": 40, "bulk": 10},
        {"critical": 60, "normal": 80, "bulk": 20},
    )
    snap = build_snapshot(
        before, after, at=2.5, current_replicas=2, ready_replicas=2, prometheus=None
    )
    assert snap.priorities[Priority.CRITICAL].arrival_rate == pytest.approx(10.0)
    assert snap.priorities[Priority.NORMAL].arrival_rate == pytest.approx(15.0)
    # critical: 20 in, backlog -10 -> 30 done; normal: 30 in, +20 -> 10; bulk: 10 in, +10 -> 0
    assert snap.completion_rate == pytest.approx(20.0)
    assert snap.staleness == pytest.approx(0.5)
    assert snap.waiting == 50
    assert snap.priorities[Priority.CRITICAL].oldest_unacked_age == 0.0


def test_first_reading_has_backlog_but_no_rates() -> None:
    only = reading(0.0, 5, {"critical": 1, "normal": 2, "bulk": 2}, None)
    snap = build_snapshot(None, only, at=0.0, current_replicas=1, ready_replicas=1, prometheus=None)
    assert snap.total_backlog() == 5
    assert not snap.priorities[Priority.BULK].complete


def test_without_per_subject_counts_stream_growth_is_split_by_backlog() -> None:
    before = reading(0.0, 0, {"critical": 0, "normal": 0, "bulk": 0}, None)
    after = reading(1.0, 40, {"critical": 10, "normal": 30, "bulk": 0}, None)
    snap = build_snapshot(
        before, after, at=1.0, current_replicas=1, ready_replicas=1, prometheus=None
    )
    assert snap.priorities[Priority.NORMAL].arrival_rate == pytest.approx(30.0)
    assert snap.total_arrival_rate() == pytest.approx(40.0)


def test_prometheus_values_land_per_priority() -> None:
    only = reading(0.0, 0, {"critical": 0, "normal": 0, "bulk": 0}, {})
    prom = PrometheusReading(p95_wait={Priority.NORMAL: 0.8}, error_rate=0.01)
    snap = build_snapshot(None, only, at=0.0, current_replicas=1, ready_replicas=1, prometheus=prom)
    assert snap.priorities[Priority.NORMAL].p95_wait == 0.8
    assert snap.priorities[Priority.CRITICAL].p95_wait is None
    assert snap.error_rate == 0.01


def test_prometheus_queries_come_from_the_spec_only_when_there_is_a_query() -> None:
    from surge_operator.api import PrometheusSpec
    from surge_operator.metrics_source import PrometheusQueries

    assert PrometheusQueries.from_spec(None) is None
    assert PrometheusQueries.from_spec(PrometheusSpec(url="http://p:9090")) is None
    queries = PrometheusQueries.from_spec(
        PrometheusSpec(url="http://p:9090", p95_wait_query="vector(1)")
    )
    assert queries is not None
    assert queries.p95_wait_query == "vector(1)"
