"""The KEDA + HPA model follows the documented algorithm step by step."""

from __future__ import annotations

from types import MappingProxyType

from surge_operator.api import Priority
from surge_operator.policy import (
    KedaConfig,
    KedaState,
    PriorityMetrics,
    ScalingConfig,
    Snapshot,
    keda_decide,
)

CONFIG = KedaConfig(
    lag_thresholds=MappingProxyType({p: 100.0 for p in Priority}), min_replicas=1, max_replicas=50
)


def snap(at: float, lag: int, replicas: int) -> Snapshot:
    return Snapshot(
        at=at,
        observed_at=at,
        priorities={
            Priority.CRITICAL: PriorityMetrics(backlog=lag, arrival_rate=0.0),
            Priority.NORMAL: PriorityMetrics(backlog=0, arrival_rate=0.0),
            Priority.BULK: PriorityMetrics(backlog=0, arrival_rate=0.0),
        },
        current_replicas=replicas,
        ready_replicas=replicas,
    )


def test_fair_lag_threshold_is_latency_target_times_service_rate() -> None:
    config = KedaConfig.fair(ScalingConfig(), service_rate=50.0)
    assert config.lag_thresholds[Priority.CRITICAL] == 100.0
    assert config.lag_thresholds[Priority.BULK] == 6000.0


def test_desired_is_ceil_metric_over_threshold_within_the_scale_up_limit() -> None:
    decision, _ = keda_decide(snap(0.0, lag=350, replicas=2), CONFIG, KedaState())
    assert decision.replicas == 4  # ceil(350/100); limit max(2*2, 2+4) = 6


def test_scale_up_is_limited_to_double_or_plus_four_per_period() -> None:
    decision, state = keda_decide(snap(0.0, lag=5000, replicas=3), CONFIG, KedaState())
    assert decision.replicas == 7  # max(3*2, 3+4)
    decision, _ = keda_decide(snap(15.0, lag=5000, replicas=7), CONFIG, state)
    assert decision.replicas == 14


def test_within_ten_percent_tolerance_nothing_changes() -> None:
    decision, _ = keda_decide(snap(0.0, lag=1050, replicas=10), CONFIG, KedaState())
    assert decision.replicas == 10


def test_nothing_happens_between_hpa_syncs() -> None:
    _, state = keda_decide(snap(0.0, lag=100, replicas=1), CONFIG, KedaState())
    decision, same = keda_decide(snap(10.0, lag=5000, replicas=1), CONFIG, state)
    assert decision.replicas == 1
    assert same == state


def test_scale_down_waits_for_the_300s_window() -> None:
    state = KedaState()
    decision, state = keda_decide(snap(0.0, lag=2000, replicas=20), CONFIG, state)
    assert decision.replicas == 20
    replicas = 20
    for t in range(15, 300, 15):
        decision, state = keda_decide(snap(float(t), lag=0, replicas=replicas), CONFIG, state)
        replicas = decision.replicas
    assert replicas == 20
    decision, state = keda_decide(snap(300.0, lag=0, replicas=replicas), CONFIG, state)
    assert decision.replicas == 1


def test_spec_policy_name_picks_the_decision_function() -> None:
    from surge_operator.api import ScalingPolicy
    from surge_operator.policy import PolicyConfig, ScalingState, policy_for

    surge = policy_for(ScalingPolicy.SURGE)
    assert isinstance(surge.initial_state(), ScalingState)
    keda = policy_for("keda")
    config = PolicyConfig()
    decision, state = keda.decide(snap(0.0, lag=350, replicas=1), config, keda.initial_state())
    assert isinstance(state, KedaState)
    assert decision.replicas == 5  # KEDA's default lagThreshold 10: 35 wanted, +4 per sync
    config = PolicyConfig().with_scaling(keda_lag_threshold=100.0)
    decision, _ = keda.decide(snap(0.0, lag=350, replicas=1), config, keda.initial_state())
    assert decision.replicas == 4  # the spec's kedaLagThreshold
