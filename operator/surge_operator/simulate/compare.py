"""Run the same arrivals under Surge, KEDA+HPA (default and a lagThreshold sweep) and the
oracle, next to the LP lower bound; score against the goals.

Goals, per profile and seed (a profile is a win only when all hold):

* `reaction_le_2s`: Surge's first scale-up comes at most 2 s after the surge's onset;
* `not_dominated_by_keda`: no KEDA setting is at least as good on violation minutes,
  replica-seconds and refused work, and better on one;
* `cheaper_keda_5x_violations`: every KEDA setting that costs no more replica-seconds
  than Surge has at least 5x Surge's violation minutes (and more than Surge's);
* `refuses_nothing_keda_served`: Surge refused no message (KEDA never refuses);
* `replica_seconds_le_1_25_lower_bound`: Surge costs at most 1.25x the LP bound.

Violation minutes charge refused work: a retried write's wait counts from its first
attempt, and writes still being retried count as waiting.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from surge_operator.api import MessagingClusterSpec
from surge_operator.policy.baselines import KedaConfig
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.select import KEDA_DEFAULT_LAG_THRESHOLD, keda_config
from surge_operator.simulate.bound import BoundUnavailableError, LowerBound, lower_bound
from surge_operator.simulate.engine import (
    OraclePolicy,
    RunResult,
    SimConfig,
    keda_policy,
    run,
    surge_policy,
)
from surge_operator.simulate.traffic import Arrivals

POLICIES = ("surge", "keda", "oracle")
#: lagThreshold values swept for KEDA's Pareto front (KEDA's default, 10, among them).
DEFAULT_SWEEP: tuple[float, ...] = (5, 10, 20, 40, 80, 160, 320, 640, 1280)


def default_policy() -> PolicyConfig:
    """The MessagingCluster defaults, unchanged: what is benchmarked is what users get."""
    return PolicyConfig()


def scenario_policy(
    arrivals: Arrivals, sim: SimConfig | None = None, base: PolicyConfig | None = None
) -> PolicyConfig:
    """The spec an operator of this workload would write: the pool bounds of the
    scenario, everything else as given. No per-worker rate or start-up time is handed
    in: Surge measures both, as it must in a real cluster."""
    policy = base or default_policy()
    return replace(
        policy,
        scaling=replace(
            policy.scaling,
            max_replicas=arrivals.max_replicas,
            min_replicas=min(policy.scaling.min_replicas, arrivals.max_replicas),
        ),
    )


def spec_policy(spec: MessagingClusterSpec, sim: SimConfig | None = None) -> PolicyConfig:
    """A user's own spec, exactly as the operator would run it."""
    return PolicyConfig.from_spec(spec)


@dataclass(frozen=True, slots=True)
class SweepPoint:
    lag_threshold: float
    violation_minutes: float
    replica_seconds: float
    refused: int

    def summary(self) -> dict[str, object]:
        return {
            "lag_threshold": self.lag_threshold,
            "violation_minutes": self.violation_minutes,
            "replica_seconds": round(self.replica_seconds, 1),
            "refused": self.refused,
        }


def sweep_point(threshold: float, result: RunResult) -> SweepPoint:
    return SweepPoint(
        threshold, result.violation_minutes["total"], result.replica_seconds, result.refused_total
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    profile: str
    onset_s: float
    results: dict[str, RunResult]
    sweep: tuple[SweepPoint, ...] = ()
    bound: LowerBound | None = None
    #: The settings each policy ran with, as a reader would check them.
    settings: dict[str, dict[str, object]] = field(default_factory=dict)
    seed: int = 1

    def ratios(self) -> dict[str, float | None]:
        surge, keda, oracle = (self.results[p] for p in POLICIES)
        keda_violation = keda.violation_minutes["total"]
        return {
            "violation_vs_keda": (
                surge.violation_minutes["total"] / keda_violation if keda_violation else None
            ),
            "replica_seconds_vs_keda": surge.replica_seconds / keda.replica_seconds,
            "replica_seconds_vs_oracle": surge.replica_seconds / oracle.replica_seconds,
            "replica_seconds_vs_lower_bound": (
                surge.replica_seconds / self.bound.replica_seconds
                if self.bound is not None and self.bound.replica_seconds > 0
                else None
            ),
        }

    def dominating(self) -> list[SweepPoint]:
        """KEDA settings at least as good as Surge on every axis and better on one."""
        s = sweep_point(0, self.results["surge"])
        out = []
        for k in self.sweep:
            no_worse = (
                k.violation_minutes <= s.violation_minutes
                and k.replica_seconds <= s.replica_seconds
                and k.refused <= s.refused
            )
            better = (
                k.violation_minutes < s.violation_minutes
                or k.replica_seconds < s.replica_seconds
                or k.refused < s.refused
            )
            if no_worse and better:
                out.append(k)
        return out

    def cheaper_without_5x(self) -> list[SweepPoint]:
        """KEDA settings costing no more than Surge without 5x (and more) its violations."""
        s = self.results["surge"]
        mine = s.violation_minutes["total"]
        return [
            k
            for k in self.sweep
            if k.replica_seconds <= s.replica_seconds
            and not (k.violation_minutes >= 5 * mine and k.violation_minutes > mine)
        ]

    def goals(self) -> dict[str, bool]:
        surge = self.results["surge"]
        ratio = self.ratios()["replica_seconds_vs_lower_bound"]
        return {
            "reaction_le_2s": surge.reaction_s is not None and surge.reaction_s <= 2.0,
            "not_dominated_by_keda": not self.dominating(),
            "cheaper_keda_5x_violations": not self.cheaper_without_5x(),
            "refuses_nothing_keda_served": surge.refused_total == 0,
            "replica_seconds_le_1_25_lower_bound": ratio is not None and ratio <= 1.25,
        }

    def misses(self) -> list[str]:
        """Every goal missed, in words with the figures behind it."""
        surge = self.results["surge"]
        out = []
        goals = self.goals()
        tag = f"{self.profile} seed {self.seed}"
        if not goals["reaction_le_2s"]:
            out.append(f"{tag}: reaction {surge.reaction_s} s (goal <= 2 s)")
        for k in self.dominating():
            out.append(
                f"{tag}: KEDA lagThreshold {k.lag_threshold:g} dominates Surge "
                f"({k.violation_minutes:g} min, {k.replica_seconds:,.0f} replica-s vs "
                f"{surge.violation_minutes['total']:g} min, {surge.replica_seconds:,.0f})"
            )
        for k in self.cheaper_without_5x():
            out.append(
                f"{tag}: KEDA lagThreshold {k.lag_threshold:g} costs {k.replica_seconds:,.0f} "
                f"<= Surge's {surge.replica_seconds:,.0f} replica-s with {k.violation_minutes:g} "
                f"violation min (< 5x Surge's {surge.violation_minutes['total']:g})"
            )
        if not goals["refuses_nothing_keda_served"]:
            out.append(f"{tag}: Surge refused {surge.refused_total} messages KEDA served")
        ratio = self.ratios()["replica_seconds_vs_lower_bound"]
        if not goals["replica_seconds_le_1_25_lower_bound"]:
            shown = "n/a" if ratio is None else f"{ratio:.2f}x"
            out.append(f"{tag}: replica-s {shown} the LP lower bound (goal <= 1.25x)")
        return out

    def summary(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "seed": self.seed,
            "onset_s": self.onset_s,
            "policies": {name: result.summary() for name, result in self.results.items()},
            "keda_sweep": [k.summary() for k in self.sweep],
            "lower_bound": self.bound.summary() if self.bound is not None else None,
            "ratios": {
                k: (round(v, 3) if v is not None else None) for k, v in self.ratios().items()
            },
            "goals": self.goals(),
            "misses": self.misses(),
        }


def _hpa_phase(seed: int, keda: KedaConfig) -> float:
    """The HPA's sync phase relative to the traffic: seeded, so runs are reproducible."""
    return random.Random(seed * 7919 + 1).uniform(0.0, keda.sync_period_s)


def compare(
    arrivals: Arrivals,
    sim: SimConfig,
    base: PolicyConfig | None = None,
    *,
    exact: PolicyConfig | None = None,
    sweep: Sequence[float] = DEFAULT_SWEEP,
    keda_lag_threshold: float = KEDA_DEFAULT_LAG_THRESHOLD,
    with_bound: bool = True,
) -> Comparison:
    """Run every policy on `arrivals`. `exact` is used as is (a user's spec); otherwise
    the scenario's pool bounds are applied to `base`. "keda" is KEDA at
    `keda_lag_threshold` (its documented default unless a team names its own)."""
    policy = exact if exact is not None else scenario_policy(arrivals, sim, base)

    def keda_run(threshold: float) -> RunResult:
        config = keda_config(policy, threshold)
        return run(
            arrivals, keda_policy(config, sync_phase_s=_hpa_phase(sim.seed, config)), sim, policy
        )

    keda = keda_run(keda_lag_threshold)
    points = []
    for threshold in sorted({*sweep, keda_lag_threshold}):
        result = keda if threshold == keda_lag_threshold else keda_run(threshold)
        points.append(sweep_point(threshold, result))
    results = {
        "surge": run(arrivals, surge_policy(), sim, policy),
        "keda": keda,
        "oracle": run(arrivals, OraclePolicy(policy, arrivals, sim), sim, policy),
    }
    bound = None
    if with_bound:
        try:
            bound = lower_bound(arrivals, sim, policy.scaling)
        except BoundUnavailableError:
            bound = None
    settings: dict[str, dict[str, object]] = {
        "surge": {
            "minReplicas": policy.scaling.min_replicas,
            "maxReplicas": policy.scaling.max_replicas,
            "targetUtilization": policy.scaling.target_utilization,
            "maxStep": policy.scaling.max_step,
            "scaleDownStabilizationSeconds": policy.scaling.scale_down_stabilization_s,
            "podStartupSeconds (prior)": policy.scaling.pod_startup_s,
            "serviceRateHint": policy.scaling.service_rate_hint,
        },
        "keda": {
            "lagThreshold": keda_lag_threshold,
            "sweep": list(sorted({*sweep, keda_lag_threshold})),
            "hpaSyncSeconds": 15.0,
            "scaleDownStabilizationSeconds": 300.0,
        },
    }
    return Comparison(
        arrivals.name, arrivals.surge_onset(), results, tuple(points), bound, settings, sim.seed
    )
