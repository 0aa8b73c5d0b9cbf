"""The queueing engine and the comparison against the baselines."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from surge_operator.api import Priority
from surge_operator.policy import Decision, DegradationLevel, PolicyConfig, Reason, Snapshot
from surge_operator.simulate.bound import lower_bound
from surge_operator.simulate.compare import default_policy, scenario_policy
from surge_operator.simulate.engine import SimConfig, run, surge_policy, weighted_p95
from surge_operator.simulate.traffic import PROFILES, Arrivals, draw_arrivals


class Fixed:
    """A policy that never changes the pool (to check the world, not a policy)."""

    name = "fixed"

    def __init__(self, replicas: int, level: DegradationLevel = DegradationLevel.NORMAL) -> None:
        self.replicas = replicas
        self.level = level

    def initial_state(self, level: DegradationLevel = DegradationLevel.NORMAL) -> None:
        return None

    def tick(self, snapshot: Snapshot, second: int) -> tuple[int, DegradationLevel]:
        return self.replicas, self.level

    def decide(
        self, snapshot: Snapshot, config: PolicyConfig, state: None
    ) -> tuple[Decision, None]:
        replicas, level = self.tick(snapshot, round(snapshot.at))
        return Decision(snapshot.at, replicas, level, Reason.STEADY, "fixed"), None


def steady(rate: dict[Priority, int], seconds: int) -> Arrivals:
    return Arrivals("steady", tuple(MappingProxyType(dict(rate)) for _ in range(seconds)))


SIM = SimConfig(warmup_s=10, service_jitter=0.0)


def test_weighted_p95_picks_the_value_covering_95_percent_of_weight() -> None:
    assert weighted_p95([(1.0, 94.0), (10.0, 6.0)]) == 10.0
    assert weighted_p95([(1.0, 96.0), (10.0, 4.0)]) == 1.0
    assert weighted_p95([]) is None


def test_enough_capacity_serves_everything_without_violations() -> None:
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 60, Priority.BULK: 20}, 120)
    policy = scenario_policy(arrivals, SIM, default_policy())
    result = run(arrivals, Fixed(4), SIM, policy)
    assert result.violation_minutes["total"] == 0
    assert result.processed == pytest.approx(result.accepted, abs=5)
    assert result.replica_seconds == pytest.approx(4 * 120, rel=0.01)


def test_too_little_capacity_starves_bulk_first() -> None:
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 60, Priority.BULK: 100}, 300)
    policy = scenario_policy(arrivals, SIM, default_policy())
    result = run(arrivals, Fixed(2), SIM, policy)
    assert result.violation_minutes["critical"] == 0
    assert result.violation_minutes["bulk"] > 0


def test_shedding_level_refuses_bulk_and_its_clients_keep_retrying() -> None:
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 20, Priority.BULK: 50}, 60)
    policy = scenario_policy(arrivals, SIM, default_policy())
    result = run(arrivals, Fixed(2, DegradationLevel.SHED_BULK), SIM, policy)
    # Nothing of bulk was served: every write is refused, retried after Retry-After (10 s
    # at level 2) and refused again, and at the end it is counted as refused work.
    assert result.refused == {"critical": 0, "normal": 0, "bulk": 50 * 60}
    assert result.shed["bulk"] > 50 * 60  # each retry is refused again
    assert result.processed == pytest.approx(40 * 60, abs=5)


def test_refused_work_is_charged_as_cost_and_as_wait() -> None:
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 20, Priority.BULK: 50}, 60)
    policy = scenario_policy(arrivals, SIM, default_policy())
    normal = run(arrivals, Fixed(2), SIM, policy)
    shedding = run(arrivals, Fixed(2, DegradationLevel.SHED_BULK), SIM, policy)
    # The refused bulk writes cost what serving them would have (1/mu each) ...
    assert shedding.replica_seconds == pytest.approx(
        normal.replica_seconds + 50 * 60 / SIM.service_rate, rel=0.02
    )
    # ... and their waiting clients count against the bulk target once it is passed.
    longer = steady({Priority.CRITICAL: 20, Priority.NORMAL: 20, Priority.BULK: 50}, 300)
    late = run(longer, Fixed(2, DegradationLevel.SHED_BULK), SIM, policy)
    assert late.violation_minutes["bulk"] > 0


def test_the_consumers_backlog_includes_in_flight_work_as_keda_reads_it() -> None:
    seen: list[Snapshot] = []

    class Recorder(Fixed):
        def tick(self, snapshot: Snapshot, second: int) -> tuple[int, DegradationLevel]:
            seen.append(snapshot)
            return super().tick(snapshot, second)

    arrivals = steady({Priority.CRITICAL: 0, Priority.NORMAL: 100, Priority.BULK: 0}, 60)
    policy = scenario_policy(arrivals, SIM, default_policy())
    run(arrivals, Recorder(4), SIM, policy)
    # 4 workers keep up with 100 msg/s, yet about rate x handling time is ack-pending.
    backlog = [s.priorities[Priority.NORMAL].backlog or 0 for s in seen[-30:]]
    assert min(backlog) > 0
    assert sum(backlog) / len(backlog) == pytest.approx(100 * SIM.handling_s, rel=0.3)
    assert all(s.waiting == 0 for s in seen[-30:])


def test_reaction_is_timed_from_the_known_onset_not_from_earlier_scale_ups() -> None:
    class StepUp(Fixed):
        name = "step"

        def tick(self, snapshot: Snapshot, second: int) -> tuple[int, DegradationLevel]:
            # A scale-up well before the onset (it must not count), then one 3 s after.
            replicas = 4 if second >= 20 else 3
            replicas = 6 if second >= 43 else replicas
            return replicas, DegradationLevel.NORMAL

    arrivals = replace(
        steady({Priority.CRITICAL: 20, Priority.NORMAL: 60, Priority.BULK: 20}, 80),
        known_onset_s=40.0,
    )
    policy = scenario_policy(arrivals, SIM, default_policy())
    assert run(arrivals, StepUp(3), SIM, policy).reaction_s == 3.0


def test_the_scenario_hands_surge_no_rate_or_start_up_hints() -> None:
    arrivals = draw_arrivals(PROFILES["flash-surge"], 1)
    policy = scenario_policy(arrivals, SimConfig(seed=1), default_policy())
    assert policy.scaling.service_rate_hint is None
    assert policy.scaling.pod_startup_s == default_policy().scaling.pod_startup_s
    assert policy.scaling.max_replicas == arrivals.max_replicas


def test_the_lp_bound_is_below_a_pool_that_meets_the_targets_and_above_the_work() -> None:
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 60, Priority.BULK: 20}, 120)
    policy = scenario_policy(arrivals, SIM, default_policy())
    fixed = run(arrivals, Fixed(4), SIM, policy)
    assert fixed.violation_minutes["total"] == 0
    bound = lower_bound(arrivals, SIM, policy.scaling)
    assert bound.target_feasible
    work = 100 * 120 / SIM.service_rate
    assert work - 1e-6 <= bound.replica_seconds <= fixed.replica_seconds


def test_the_lp_bound_falls_back_to_serving_everything_when_targets_cannot_be_met() -> None:
    arrivals = steady({Priority.CRITICAL: 200, Priority.NORMAL: 0, Priority.BULK: 0}, 60)
    policy = scenario_policy(replace(arrivals, max_replicas=2), SIM, default_policy())
    bound = lower_bound(arrivals, SIM, policy.scaling)
    assert not bound.target_feasible
    assert bound.replica_seconds == pytest.approx(200 * 60 / SIM.service_rate, rel=0.01)


def test_level_three_serves_critical_first_and_normal_within_its_share() -> None:
    # 2 replicas x 50 msg/s = 100 msg/s. Normal is offered 600/s: the gateway throttles it
    # to a tenth and the workers give it at most a quarter of the pool (25/s), after
    # critical. Bulk (sheddable) is shed. Refused writes come back after Retry-After.
    seconds = 120
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 600, Priority.BULK: 50}, seconds)
    policy = scenario_policy(arrivals, SIM, default_policy())
    result = run(arrivals, Fixed(2, DegradationLevel.CRITICAL_ONLY), SIM, policy)
    assert result.violation_minutes["critical"] == 0
    assert result.refused["bulk"] == 50 * seconds
    assert result.shed["normal"] == 0
    assert result.throttled["normal"] > 540 * seconds  # retries are throttled again
    assert result.refused["normal"] > 0
    assert result.processed == pytest.approx((20 + 25) * seconds, rel=0.03)


def test_throttled_writes_are_all_served_in_the_end_but_their_waits_count() -> None:
    # With idle capacity the throttled normal traffic gets in through retries: nothing is
    # refused for good, but waiting for admission pushes normal past its target.
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 100, Priority.BULK: 0}, 120)
    policy = scenario_policy(arrivals, SIM, default_policy())
    result = run(arrivals, Fixed(10, DegradationLevel.CRITICAL_ONLY), SIM, policy)
    assert result.processed == pytest.approx(result.accepted, rel=0.01)
    assert result.violation_minutes["normal"] > 0
    assert result.violation_minutes["critical"] == 0


def test_a_class_the_spec_marks_sheddable_is_shed_at_level_three() -> None:
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 30, Priority.BULK: 10}, 60)
    base = scenario_policy(arrivals, SIM, default_policy())
    policy = replace(
        base,
        degradation=replace(
            base.degradation, sheddable=frozenset({Priority.NORMAL, Priority.BULK})
        ),
    )
    result = run(arrivals, Fixed(2, DegradationLevel.CRITICAL_ONLY), SIM, policy)
    assert result.refused == {"critical": 0, "normal": 30 * 60, "bulk": 10 * 60}
    assert result.processed == pytest.approx(20 * 60, abs=5)


def test_capped_pool_at_level_three_keeps_serving_normal() -> None:
    # A flash surge into a pool capped at a third of what it needs: the level reaches 3,
    # critical stays within target, and normal is still processed while at level 3.
    arrivals = draw_arrivals(PROFILES["flash-surge"], 1)
    arrivals = Arrivals(arrivals.name, arrivals.counts, max(2, arrivals.max_replicas // 3))
    policy = scenario_policy(arrivals, SimConfig(seed=1), default_policy())
    result = run(arrivals, surge_policy(), SimConfig(seed=1), policy)
    assert int(DegradationLevel.CRITICAL_ONLY) in result.series.level
    assert result.violation_minutes["critical"] == 0
    assert result.shed["normal"] == 0
    assert result.throttled["normal"] > 0
    assert result.reaction_s is not None


def test_capacity_released_in_a_dip_is_back_before_a_return_of_the_peak_costs_a_target() -> None:
    # The stabilisation window keeps only what a return of the peak needs: in a short
    # dip Surge gives up workers, and when the peak comes straight back every class still
    # meets its target (normal and bulk ride the return out in their queues).
    high = {Priority.CRITICAL: 160, Priority.NORMAL: 480, Priority.BULK: 160}
    low = {p: n // 4 for p, n in high.items()}
    shape = [high] * 90 + [low] * 20 + [high] * 90
    arrivals = Arrivals("dip", tuple(MappingProxyType(dict(c)) for c in shape), max_replicas=40)
    policy = scenario_policy(arrivals, SIM, default_policy())
    result = run(arrivals, surge_policy(), SIM, policy)
    replicas = result.series.replicas
    assert min(replicas[95:110]) < min(replicas[60:90])
    assert result.violation_minutes["total"] == 0


class Steps(Fixed):
    """Up to 6 pods at 20 s, down to 2 at 40 s, up to 4 at 60 s."""

    def tick(self, snapshot: Snapshot, second: int) -> tuple[int, DegradationLevel]:
        if second >= 60:
            return 4, self.level
        if second >= 40:
            return 2, self.level
        return (6 if second >= 20 else 3), self.level


def test_pod_starts_count_every_pod_a_scale_up_asks_for() -> None:
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 60, Priority.BULK: 20}, 90)
    policy = scenario_policy(arrivals, SIM, default_policy())
    assert run(arrivals, Fixed(4), SIM, policy).pod_starts == 0
    # The warm-up grows the opening pool to 3 (not measured); then 3 pods, then 2 more.
    assert run(arrivals, Steps(3), SIM, policy).pod_starts == 3 + 2
