"""Pure status logic: conditions, Ready derivation, phase, history, write throttling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from surge_operator.api import (
    HISTORY_LIMIT,
    ConditionStatus,
    ConditionType,
    HistoryEntry,
    MessagingClusterStatus,
    Phase,
)
from surge_operator.status import (
    CONDITION_ORDER,
    append_history,
    apply_updates,
    degraded_update,
    failed_over_update,
    from_wire,
    get_condition,
    history_entry,
    initial_conditions,
    needs_write,
    phase_of,
    ready_on_generation,
    scaling_update,
    set_condition,
    status_patch,
    stream_failed,
    stream_ready,
    to_wire,
    workers_update,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)
T2 = T0 + timedelta(seconds=90)


def test_every_condition_starts_unknown() -> None:
    conditions = initial_conditions(T0, generation=1)
    assert [c.type for c in conditions] == list(CONDITION_ORDER)
    assert {c.status for c in conditions} == {ConditionStatus.UNKNOWN}
    assert {c.last_transition_time for c in conditions} == {"2026-01-01T12:00:00Z"}


def test_transition_time_moves_only_when_status_changes() -> None:
    conditions = initial_conditions(T0)
    conditions = set_condition(conditions, stream_failed("NatsUnavailable", "down"), T1)
    first = get_condition(conditions, ConditionType.STREAM_READY)
    assert first is not None
    assert first.last_transition_time == "2026-01-01T12:00:30Z"
    conditions = set_condition(conditions, stream_failed("CredentialsSecretMissing", "x"), T2)
    second = get_condition(conditions, ConditionType.STREAM_READY)
    assert second is not None
    assert second.reason == "CredentialsSecretMissing"
    assert second.last_transition_time == "2026-01-01T12:00:30Z"


def test_ready_is_derived_from_stream_and_workers() -> None:
    conditions = apply_updates([], [stream_ready("S")], T0)
    ready = get_condition(conditions, ConditionType.READY)
    assert ready is not None
    assert ready.status is ConditionStatus.UNKNOWN
    conditions = apply_updates(conditions, [workers_update(2, 1, 2)], T1)
    ready = get_condition(conditions, ConditionType.READY)
    assert ready is not None
    assert (ready.status, ready.reason) == (ConditionStatus.FALSE, "WorkersReadyFalse")
    conditions = apply_updates(conditions, [workers_update(2, 2, 2)], T2)
    ready = get_condition(conditions, ConditionType.READY)
    assert ready is not None
    assert (ready.status, ready.reason) == (ConditionStatus.TRUE, "AllComponentsReady")
    assert ready.last_transition_time == "2026-01-01T12:01:30Z"


def test_zero_desired_workers_count_as_ready() -> None:
    assert workers_update(0, 0, 0).status is ConditionStatus.TRUE


@pytest.mark.parametrize(
    ("current", "desired", "enabled", "status", "reason"),
    [
        (2, 5, True, ConditionStatus.TRUE, "ScalingUp"),
        (5, 2, True, ConditionStatus.TRUE, "ScalingDown"),
        (3, 3, True, ConditionStatus.FALSE, "Stable"),
        (3, 9, False, ConditionStatus.FALSE, "AutoscalingDisabled"),
    ],
)
def test_scaling_condition(
    current: int, desired: int, enabled: bool, status: ConditionStatus, reason: str
) -> None:
    update = scaling_update(current, desired, enabled, "why")
    assert (update.status, update.reason) == (status, reason)


@pytest.mark.parametrize(
    ("level", "status", "reason"),
    [
        (0, ConditionStatus.FALSE, "Normal"),
        (1, ConditionStatus.TRUE, "ThrottlingBulk"),
        (2, ConditionStatus.TRUE, "SheddingBulk"),
        (3, ConditionStatus.TRUE, "CriticalOnly"),
    ],
)
def test_degraded_condition_names_the_level(
    level: int, status: ConditionStatus, reason: str
) -> None:
    update = degraded_update(level, "why")
    assert (update.status, update.reason) == (status, reason)


def test_failed_over_condition() -> None:
    assert failed_over_update("east", "east").status is ConditionStatus.FALSE
    promoted = failed_over_update("west", "east")
    assert (promoted.status, promoted.reason) == (ConditionStatus.TRUE, "StandbyPromoted")


def test_phase_order() -> None:
    assert phase_of(initial_conditions(T0)) is Phase.PENDING
    failing = apply_updates([], [stream_failed("NatsUnavailable", "x")], T0)
    assert phase_of(failing) is Phase.PROVISIONING
    running = apply_updates([], [stream_ready("S"), workers_update(1, 1, 1)], T0)
    assert phase_of(running) is Phase.RUNNING
    degraded = apply_updates(running, [degraded_update(2, "x")], T0)
    assert phase_of(degraded) is Phase.DEGRADED
    assert phase_of(running, error=True) is Phase.ERROR


def test_history_is_bounded_and_newest_last() -> None:
    history: list[HistoryEntry] = []
    for i in range(HISTORY_LIMIT + 5):
        history = append_history(history, history_entry(T0, "scale", i, i + 1, "r"))
    assert len(history) == HISTORY_LIMIT
    assert history[-1].to_value == str(HISTORY_LIMIT + 5)


def test_patch_contains_only_changes_and_removals_of_our_own_keys() -> None:
    old = {"phase": "Running", "backlog": 5, "p95Wait": 1.5, "foreign": 1, "conditions": []}
    new = MessagingClusterStatus(phase=Phase.RUNNING, backlog=7)
    assert status_patch(old, new) == {"backlog": 7, "p95Wait": None, "history": [], "nats": []}
    assert status_patch(to_wire(new), new) == {}


def test_live_figures_alone_wait_for_the_interval() -> None:
    assert not needs_write({}, since_last_write=100, interval=5)
    assert not needs_write({"backlog": 3}, since_last_write=1, interval=5)
    assert needs_write({"backlog": 3}, since_last_write=5, interval=5)
    assert needs_write({"backlog": 3, "replicas": 2}, since_last_write=0, interval=5)


def test_malformed_status_restarts_empty() -> None:
    assert from_wire({"conditions": "nope"}) == MessagingClusterStatus()
    assert from_wire({"phase": "Running", "kopf": {"x": 1}}).phase is Phase.RUNNING


def test_a_condition_message_that_only_quotes_new_numbers_is_throttled() -> None:
    old = to_wire(
        MessagingClusterStatus(conditions=apply_updates([], [scaling_update(2, 2, True, "a")], T0))
    )
    new = MessagingClusterStatus(
        conditions=apply_updates([], [scaling_update(2, 2, True, "b")], T0)
    )
    patch = status_patch(old, new)
    assert "conditions" in patch
    assert not needs_write(patch, since_last_write=1, interval=5, old=old)
    moved = MessagingClusterStatus(
        conditions=apply_updates([], [scaling_update(2, 4, True, "b")], T0)
    )
    assert needs_write(status_patch(old, moved), since_last_write=1, interval=5, old=old)


def test_an_object_is_ready_only_for_the_generation_it_was_reconciled_at() -> None:
    def obj(generation: int, observed: int, ready: str) -> dict[str, object]:
        conditions = [{"type": "StreamReady", "status": "True"}, {"type": "Ready", "status": ready}]
        status = {"observedGeneration": observed, "conditions": conditions}
        return {"metadata": {"generation": generation}, "status": status}

    assert ready_on_generation(obj(2, 2, "True"))
    assert not ready_on_generation(obj(3, 2, "True"))  # a newer spec not yet reconciled
    assert not ready_on_generation(obj(2, 2, "False"))
    assert not ready_on_generation({"metadata": {"generation": 1}})  # no status yet
