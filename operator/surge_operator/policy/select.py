"""`spec.autoscaling.policy` picks the decision function; all share one calling shape.

    policy = policy_for(spec.autoscaling.policy)
    state = policy.initial_state()
    decision, state = policy.decide(snapshot, config, state)   # every tick

`surge` is the Surge model (`scaling.decide`); `keda` runs the KEDA + HPA model in
process, for clusters that want KEDA's behaviour without installing KEDA, and as the
baseline in benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from surge_operator.api import ScalingPolicy
from surge_operator.policy.baselines import KedaConfig, KedaState, keda_decide
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.scaling import decide
from surge_operator.policy.types import Decision, ScalingState, Snapshot

S = TypeVar("S")

#: KEDA's documented default lagThreshold, used when no per-worker rate is known to size it.
KEDA_DEFAULT_LAG_THRESHOLD = 10.0


class Policy(Protocol, Generic[S]):
    @property
    def name(self) -> str: ...

    def initial_state(self) -> S: ...

    def decide(self, snapshot: Snapshot, config: PolicyConfig, state: S) -> tuple[Decision, S]: ...


@dataclass(frozen=True, slots=True)
class SurgePolicy:
    name: str = "surge"

    def initial_state(self) -> ScalingState:
        return ScalingState()

    def decide(
        self, snapshot: Snapshot, config: PolicyConfig, state: ScalingState
    ) -> tuple[Decision, ScalingState]:
        return decide(snapshot, config, state)


@dataclass(frozen=True, slots=True)
class KedaPolicy:
    name: str = "keda"

    def initial_state(self) -> KedaState:
        return KedaState()

    def decide(
        self, snapshot: Snapshot, config: PolicyConfig, state: KedaState
    ) -> tuple[Decision, KedaState]:
        return keda_decide(snapshot, keda_config(config), state)


def keda_config(config: PolicyConfig) -> KedaConfig:
    """Fair sizing from the per-worker rate hint; KEDA's default threshold without one."""
    rate = config.scaling.service_rate_hint
    if rate is not None:
        return KedaConfig.fair(config.scaling, rate)
    fair = KedaConfig.fair(config.scaling, 1.0)
    thresholds = dict.fromkeys(fair.lag_thresholds, KEDA_DEFAULT_LAG_THRESHOLD)
    return KedaConfig(
        lag_thresholds=thresholds,
        min_replicas=fair.min_replicas,
        max_replicas=fair.max_replicas,
    )


def policy_for(name: ScalingPolicy | str) -> Policy[Any]:
    """The decision function `spec.autoscaling.policy` names."""
    if ScalingPolicy(name) is ScalingPolicy.KEDA:
        return KedaPolicy()
    return SurgePolicy()
