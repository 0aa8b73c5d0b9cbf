"""build_snapshot: two JetStream readings -> the Snapshot the policy reads (pure)."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from surge_operator.api import Priority
from surge_operator.metrics_source import (
    PrometheusReading,
    _Reading,
    build_snapshot,
    fresh_offered,
    offered_rates,
)
from surge_workers import contract
from surge_workers.contract import OfferedCounts
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


def _offered(at: float, critical: int = 0, normal: int = 0, bulk: int = 0) -> OfferedCounts:
    counts = {
        contract.Priority.CRITICAL: critical,
        contract.Priority.NORMAL: normal,
        contract.Priority.BULK: bulk,
    }
    return OfferedCounts(at=at, counts=counts)


def test_offered_rates_sum_instance_deltas_and_restarts_are_a_new_baseline() -> None:
    before = {"offered.a": _offered(100.0, 10, 100, 50), "offered.b": _offered(100.0, 0, 900)}
    after = {
        "offered.a": _offered(102.0, 30, 500, 50),  # +20 critical, +400 normal
        "offered.b": _offered(102.0, 0, 40),  # restarted: counts fell, no rate from it
        "offered.c": _offered(102.0, 0, 9999),  # new instance: only a baseline
    }
    assert offered_rates(before, after, 2.0) == {
        Priority.CRITICAL: 10.0,
        Priority.NORMAL: 200.0,
        Priority.BULK: 0.0,
    }
    # The restarted and new instances count from their new baselines on the next read.
    later = {
        "offered.a": _offered(104.0, 30, 500, 50),
        "offered.b": _offered(104.0, 0, 60),
        "offered.c": _offered(104.0, 0, 10019),
    }
    assert offered_rates(after, later, 2.0) == {
        Priority.CRITICAL: 0.0,
        Priority.NORMAL: 20.0,
        Priority.BULK: 0.0,
    }


def test_offered_rates_are_none_without_gateway_data() -> None:
    some = {"offered.a": _offered(1.0, 1, 1, 1)}
    assert offered_rates(None, some, 1.0) is None
    assert offered_rates(some, None, 1.0) is None
    assert offered_rates({}, {}, 1.0) is None
    assert offered_rates({"offered.x": _offered(0.0)}, some, 1.0) is None  # none seen twice
    assert offered_rates(some, some, 0.0) is None


def test_stale_and_garbage_gateway_counters_are_ignored() -> None:
    raw = {
        "offered.live": contract.encode_offered(_offered(995.0, 1, 2, 3)),
        "offered.dead": contract.encode_offered(_offered(980.0, 1, 2, 3)),
        "offered.junk": b"not json",
        "offered.none": None,
    }
    assert fresh_offered(raw, now=1000.0) == {"offered.live": _offered(995.0, 1, 2, 3)}


def test_snapshot_offered_rate_is_at_least_the_accepted_rate_and_none_without_gateways() -> None:
    pending = {"critical": 0, "normal": 0, "bulk": 0}
    before = replace(
        reading(0.0, 0, pending, {"critical": 0, "normal": 0, "bulk": 0}),
        offered={"offered.a": _offered(100.0, 0, 0, 0)},
    )
    after = replace(
        reading(2.0, 0, pending, {"critical": 10, "normal": 20, "bulk": 0}),
        offered={"offered.a": _offered(102.0, 4, 200, 100)},  # critical lags the stream
    )
    snap = build_snapshot(
        before, after, at=2.0, current_replicas=1, ready_replicas=1, prometheus=None
    )
    assert snap.priorities[Priority.NORMAL].arrival_rate == 10.0
    assert snap.priorities[Priority.NORMAL].offered_rate == 100.0
    assert snap.priorities[Priority.BULK].offered_rate == 50.0
    assert snap.priorities[Priority.CRITICAL].offered_rate == 5.0  # max(2/s offered, 5/s in)

    plain = build_snapshot(
        replace(before, offered=None),
        replace(after, offered=None),
        at=2.0,
        current_replicas=1,
        ready_replicas=1,
        prometheus=None,
    )
    assert all(m.offered_rate is None for m in plain.priorities.values())
    first = build_snapshot(
        None, after, at=2.0, current_replicas=1, ready_replicas=1, prometheus=None
    )
    assert all(m.offered_rate is None for m in first.priorities.values())
