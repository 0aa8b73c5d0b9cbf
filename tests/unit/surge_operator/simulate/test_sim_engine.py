"""The queueing engine and the comparison against the baselines."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from surge_operator.api import Priority
from surge_operator.policy import DegradationLevel, Snapshot
from surge_operator.simulate.compare import compare, default_policy, scenario_policy
from surge_operator.simulate.engine import SimConfig, SurgeController, run, weighted_p95
from surge_operator.simulate.traffic import PROFILES, Arrivals, draw_arrivals


class Fixed:
    """A controller that never changes the pool (to check the world, not a policy)."""

    name = "fixed"

    def __init__(self, replicas: int, level: DegradationLevel = DegradationLevel.NORMAL) -> None:
        self.replicas = replicas
        self.level = level

    def tick(self, snapshot: Snapshot, second: int) -> tuple[int, DegradationLevel]:
        return self.replicas, self.level


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


def test_shedding_level_refuses_bulk_and_counts_it() -> None:
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 20, Priority.BULK: 50}, 60)
    policy = scenario_policy(arrivals, SIM, default_policy())
    result = run(arrivals, Fixed(2, DegradationLevel.SHED_BULK), SIM, policy)
    assert result.shed["bulk"] == 50 * 60
    assert result.shed["critical"] == 0


@pytest.mark.parametrize("name", list(PROFILES))
def test_surge_meets_the_goals_on_every_bundled_profile(name: str) -> None:
    comparison = compare(draw_arrivals(PROFILES[name], 1), SimConfig(seed=1))
    assert comparison.goals() == dict.fromkeys(comparison.goals(), True)


def test_level_three_serves_critical_first_and_normal_within_its_share() -> None:
    # 2 replicas x 50 msg/s = 100 msg/s. Normal is offered 600/s: the gateway throttles it
    # to a tenth (60/s) and the workers give it at most a quarter of the pool (25/s), after
    # critical. Bulk (sheddable) is shed. Nothing is refused outright but bulk.
    seconds = 120
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 600, Priority.BULK: 50}, seconds)
    policy = scenario_policy(arrivals, SIM, default_policy())
    result = run(arrivals, Fixed(2, DegradationLevel.CRITICAL_ONLY), SIM, policy)
    assert result.violation_minutes["critical"] == 0
    assert result.shed == {"critical": 0, "normal": 0, "bulk": 50 * seconds}
    assert result.throttled["normal"] == pytest.approx(540 * seconds, rel=0.01)
    assert result.processed == pytest.approx((20 + 25) * seconds, rel=0.02)


def test_level_three_drains_a_small_normal_load_completely() -> None:
    # With idle capacity the throttled normal traffic is served, not left to pile up.
    arrivals = steady({Priority.CRITICAL: 20, Priority.NORMAL: 100, Priority.BULK: 0}, 120)
    policy = scenario_policy(arrivals, SIM, default_policy())
    result = run(arrivals, Fixed(2, DegradationLevel.CRITICAL_ONLY), SIM, policy)
    assert result.processed == pytest.approx(result.accepted, abs=5)
    assert result.violation_minutes["normal"] == 0


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
    assert result.shed == {"critical": 0, "normal": 30 * 60, "bulk": 10 * 60}
    assert result.processed == pytest.approx(20 * 60, abs=5)


def test_capped_pool_at_level_three_keeps_serving_normal() -> None:
    # A flash surge into a pool capped at a third of what it needs: the level reaches 3,
    # critical stays within target, and normal is still processed while at level 3.
    arrivals = draw_arrivals(PROFILES["flash-surge"], 1)
    arrivals = Arrivals(arrivals.name, arrivals.counts, max(2, arrivals.max_replicas // 3))
    policy = scenario_policy(arrivals, SimConfig(seed=1), default_policy())
    result = run(arrivals, SurgeController(policy), SimConfig(seed=1), policy)
    assert int(DegradationLevel.CRITICAL_ONLY) in result.series.level
    assert result.violation_minutes["critical"] == 0
    assert result.shed["normal"] == 0
    assert result.throttled["normal"] > 0
