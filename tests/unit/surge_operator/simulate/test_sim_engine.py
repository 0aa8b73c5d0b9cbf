"""The queueing engine and the comparison against the baselines."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from surge_operator.api import Priority
from surge_operator.policy import DegradationLevel, Snapshot
from surge_operator.simulate.compare import compare, default_policy, scenario_policy
from surge_operator.simulate.engine import SimConfig, run, weighted_p95
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
