"""Run the same arrivals under Surge, KEDA+HPA and the oracle; score against the goals."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from surge_operator.api import MessagingClusterSpec
from surge_operator.policy.baselines import KedaConfig
from surge_operator.policy.config import PolicyConfig
from surge_operator.simulate.engine import (
    KedaController,
    OracleController,
    RunResult,
    SimConfig,
    SurgeController,
    run,
)
from surge_operator.simulate.traffic import Arrivals

POLICIES = ("surge", "keda", "oracle")


def default_policy() -> PolicyConfig:
    """The MessagingCluster defaults, unchanged: what is benchmarked is what users get."""
    return PolicyConfig()


def scenario_policy(
    arrivals: Arrivals, sim: SimConfig, base: PolicyConfig | None = None
) -> PolicyConfig:
    """The spec an operator of this workload would write: pool bounds from the scenario,
    start-up time and per-worker rate (from a load test) as hints; the rest as given."""
    policy = base or default_policy()
    return replace(
        policy,
        scaling=replace(
            policy.scaling,
            max_replicas=arrivals.max_replicas,
            min_replicas=min(policy.scaling.min_replicas, arrivals.max_replicas),
            pod_startup_s=sim.pod_startup_s,
            service_rate_hint=sim.service_rate,
        ),
    )


def spec_policy(spec: MessagingClusterSpec, sim: SimConfig) -> PolicyConfig:
    """A user's own spec, as the operator would run it; the world's per-worker rate stands
    in for `serviceRateHint` only when the spec gives none."""
    policy = PolicyConfig.from_spec(spec)
    if policy.scaling.service_rate_hint is None:
        policy = policy.with_scaling(service_rate_hint=sim.service_rate)
    return policy


@dataclass(frozen=True, slots=True)
class Comparison:
    profile: str
    onset_s: float
    results: dict[str, RunResult]
    #: The settings each policy ran with, as a reader would check them.
    settings: dict[str, dict[str, object]] = field(default_factory=dict)

    def ratios(self) -> dict[str, float | None]:
        surge, keda, oracle = (self.results[p] for p in POLICIES)
        keda_violation = keda.violation_minutes["total"]
        return {
            "violation_vs_keda": (
                surge.violation_minutes["total"] / keda_violation if keda_violation else None
            ),
            "replica_seconds_vs_keda": surge.replica_seconds / keda.replica_seconds,
            "replica_seconds_vs_oracle": surge.replica_seconds / oracle.replica_seconds,
        }

    def goals(self) -> dict[str, bool]:
        surge, keda, _ = (self.results[p] for p in POLICIES)
        ratios = self.ratios()
        keda_violation = keda.violation_minutes["total"]
        return {
            "reaction_le_2s": surge.reaction_s is not None and surge.reaction_s <= 2.0,
            "violation_le_fifth_of_keda": (
                surge.violation_minutes["total"] <= keda_violation / 5
                if keda_violation
                else surge.violation_minutes["total"] == 0
            ),
            "replica_seconds_le_keda": (ratios["replica_seconds_vs_keda"] or 0) <= 1.0,
            "replica_seconds_le_1_25_oracle": (ratios["replica_seconds_vs_oracle"] or 0) <= 1.25,
        }

    def summary(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "onset_s": self.onset_s,
            "policies": {name: result.summary() for name, result in self.results.items()},
            "ratios": {
                k: (round(v, 3) if v is not None else None) for k, v in self.ratios().items()
            },
            "goals": self.goals(),
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
) -> Comparison:
    """Run the three policies. `exact` is used as is (a user's spec); otherwise the
    scenario's bounds and hints are applied to `base`."""
    policy = exact if exact is not None else scenario_policy(arrivals, sim, base)
    keda = KedaConfig.fair(policy.scaling, sim.service_rate)
    results = {
        "surge": run(arrivals, SurgeController(policy), sim, policy),
        "keda": run(
            arrivals, KedaController(keda, sync_phase_s=_hpa_phase(sim.seed, keda)), sim, policy
        ),
        "oracle": run(arrivals, OracleController(policy, arrivals, sim), sim, policy),
    }
    settings: dict[str, dict[str, object]] = {
        "surge": {
            "minReplicas": policy.scaling.min_replicas,
            "maxReplicas": policy.scaling.max_replicas,
            "targetUtilization": policy.scaling.target_utilization,
            "maxStep": policy.scaling.max_step,
            "scaleDownStabilizationSeconds": policy.scaling.scale_down_stabilization_s,
            "podStartupSeconds": policy.scaling.pod_startup_s,
            "serviceRateHint": policy.scaling.service_rate_hint,
        },
        "keda": {
            "lagThreshold": {p.value: v for p, v in keda.lag_thresholds.items()},
            "hpaSyncSeconds": keda.sync_period_s,
            "tolerance": keda.tolerance,
            "scaleDownStabilizationSeconds": keda.scale_down_stabilization_s,
            "maxReplicas": keda.max_replicas,
        },
    }
    return Comparison(arrivals.name, arrivals.onset_s(), results, settings)
