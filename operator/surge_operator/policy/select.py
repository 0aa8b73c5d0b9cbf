"""`spec.autoscaling.policy` picks the decision function; all share one calling shape.

    policy = policy_for(spec.autoscaling.policy)
    state = policy.initial_state()
    decision, state = policy.decide(snapshot, config, state)   # every tick

`surge` is the Surge model (`scaling.decide`); `keda` runs the KEDA + HPA model in
process (KEDA's nats-jetstream trigger per priority consumer at
`spec.autoscaling.kedaLagThreshold`, KEDA's default 10), so a team can A/B the two in its
own cluster without installing KEDA; the simulator uses it as the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from surge_operator.api import ScalingPolicy
from surge_operator.policy.baselines import KedaConfig, KedaState, keda_decide
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.scaling import decide
from surge_operator.policy.types import (
    PRIORITY_ORDER,
    Decision,
    DegradationLevel,
    DegradationState,
    ScalingState,
    Snapshot,
)

S = TypeVar("S")

#: KEDA's documented lagThreshold for the nats-jetstream scaler (its docs and its code).
KEDA_DEFAULT_LAG_THRESHOLD = 10.0


class Policy(Protocol, Generic[S]):
    @property
    def name(self) -> str: ...

    def initial_state(self, level: DegradationLevel = DegradationLevel.NORMAL) -> S: ...

    def decide(self, snapshot: Snapshot, config: PolicyConfig, state: S) -> tuple[Decision, S]: ...


@dataclass(frozen=True, slots=True)
class SurgePolicy:
    name: str = "surge"

    def initial_state(self, level: DegradationLevel = DegradationLevel.NORMAL) -> ScalingState:
        return ScalingState(degradation=DegradationState(level=level))

    def decide(
        self, snapshot: Snapshot, config: PolicyConfig, state: ScalingState
    ) -> tuple[Decision, ScalingState]:
        return decide(snapshot, config, state)


@dataclass(frozen=True, slots=True)
class KedaPolicy:
    """KEDA + HPA. `keda` overrides the settings derived from the PolicyConfig (the
    simulator's sweep); `sync_phase_s` is where the HPA's 15 s cycle stands at the first
    tick (it is not synchronised with anyone's traffic)."""

    name: str = "keda"
    keda: KedaConfig | None = None
    sync_phase_s: float = 0.0

    def initial_state(self, level: DegradationLevel = DegradationLevel.NORMAL) -> KedaState:
        # KEDA never degrades: a level carried over from Surge is dropped.
        return KedaState()

    def decide(
        self, snapshot: Snapshot, config: PolicyConfig, state: KedaState
    ) -> tuple[Decision, KedaState]:
        if state.last_sync is None and self.sync_phase_s > 0:
            state = KedaState(last_sync=snapshot.at - self.sync_phase_s)
        return keda_decide(snapshot, self.keda or keda_config(config), state)


def keda_config(config: PolicyConfig, lag_threshold: float | None = None) -> KedaConfig:
    """One ScaledObject: a nats-jetstream trigger per priority consumer, one threshold."""
    threshold = lag_threshold if lag_threshold is not None else config.scaling.keda_lag_threshold
    return KedaConfig(
        lag_thresholds=MappingProxyType(dict.fromkeys(PRIORITY_ORDER, float(threshold))),
        min_replicas=max(1, config.scaling.min_replicas),
        max_replicas=config.scaling.max_replicas,
    )


def policy_for(name: ScalingPolicy | str) -> Policy[Any]:
    """The decision function `spec.autoscaling.policy` names."""
    if ScalingPolicy(name) is ScalingPolicy.KEDA:
        return KedaPolicy()
    return SurgePolicy()
