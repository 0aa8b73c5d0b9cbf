"""The pure decision core: snapshot + config + carried state -> Decision + new state.

No I/O, no clock reads, no kopf/kubernetes/nats/structlog/asyncio imports (a unit test
enforces that). The operator, `surge demo` and `surge simulate` all call `decide`.

    from surge_operator.policy import PolicyConfig, ScalingState, Snapshot, decide

    config = PolicyConfig.from_spec(spec)
    state = ScalingState()
    decision, state = decide(snapshot, config, state)   # every tick
"""

from surge_operator.policy.baselines import KedaConfig, KedaState, keda_decide, oracle_replicas
from surge_operator.policy.config import DegradationConfig, PolicyConfig, ScalingConfig
from surge_operator.policy.degradation import next_degradation, served_priorities
from surge_operator.policy.scaling import decide, predict_arrival_rate
from surge_operator.policy.select import KedaPolicy, Policy, SurgePolicy, policy_for
from surge_operator.policy.types import (
    PRIORITY_ORDER,
    Decision,
    DegradationLevel,
    DegradationState,
    PriorityMetrics,
    Reason,
    ScalingState,
    Snapshot,
)

__all__ = [
    "PRIORITY_ORDER",
    "Decision",
    "DegradationConfig",
    "DegradationLevel",
    "DegradationState",
    "KedaConfig",
    "KedaPolicy",
    "KedaState",
    "Policy",
    "PolicyConfig",
    "PriorityMetrics",
    "Reason",
    "ScalingConfig",
    "ScalingState",
    "Snapshot",
    "SurgePolicy",
    "decide",
    "keda_decide",
    "next_degradation",
    "oracle_replicas",
    "policy_for",
    "predict_arrival_rate",
    "served_priorities",
]
