"""Policy settings as frozen dataclasses, built from a MessagingCluster spec.

The simulator and tests build these directly; the operator and the demo build them from
the validated spec with `PolicyConfig.from_spec`. Defaults equal the spec's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from surge_operator.api import MessagingClusterSpec, Priority, default_priorities


def _default_targets() -> Mapping[Priority, float]:
    return MappingProxyType({p.name: p.latency_target_seconds for p in default_priorities()})


def _default_sheddable() -> frozenset[Priority]:
    return frozenset(p.name for p in default_priorities() if p.sheddable)


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    min_replicas: int = 1
    max_replicas: int = 20
    target_utilization: float = 0.7
    max_step: int = 10
    scale_down_stabilization_s: float = 30.0
    pod_startup_s: float = 5.0
    service_rate_hint: float | None = None
    #: Handlers per worker (spec.workers.concurrency): turns Little's law into capacity.
    concurrency: int = 16
    #: lagThreshold of the in-process KEDA model (`policy: keda`); KEDA's default.
    keda_lag_threshold: float = 10.0
    tick_s: float = 1.0
    latency_targets: Mapping[Priority, float] = field(default_factory=_default_targets)
    #: Metrics older than this are not acted on (the policy holds instead).
    max_staleness_s: float = 5.0
    #: How far back the arrival-rate trend is fitted.
    trend_window_s: float = 10.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if not 0 < self.target_utilization <= 1:
            raise ValueError("target_utilization must be in (0, 1]")
        if self.max_step < 1 or self.tick_s <= 0:
            raise ValueError("max_step must be >= 1 and tick_s > 0")

    def latency_target(self, priority: Priority) -> float:
        return self.latency_targets.get(priority, 10.0)

    def bounded(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


@dataclass(frozen=True, slots=True)
class DegradationConfig:
    enabled: bool = True
    enter_after_s: float = 3.0
    exit_after_s: float = 30.0
    max_level: int = 3
    sheddable: frozenset[Priority] = field(default_factory=_default_sheddable)
    #: Leave a level only when the restored demand fits in this share of max replicas,
    #: so leaving does not immediately re-create the overload that caused entering.
    exit_headroom: float = 0.85


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)

    @classmethod
    def from_spec(cls, spec: MessagingClusterSpec) -> PolicyConfig:
        auto = spec.autoscaling
        scaling = ScalingConfig(
            min_replicas=auto.min_replicas,
            max_replicas=auto.max_replicas,
            target_utilization=auto.target_utilization,
            max_step=auto.max_step,
            scale_down_stabilization_s=float(auto.scale_down_stabilization_seconds),
            pod_startup_s=auto.pod_startup_seconds,
            service_rate_hint=auto.service_rate_hint,
            concurrency=spec.workers.concurrency,
            keda_lag_threshold=auto.keda_lag_threshold,
            tick_s=auto.tick_seconds,
            latency_targets=MappingProxyType(spec.latency_targets()),
            # Three missed ticks (or 5 s on fast ticks) before the data counts as stale.
            max_staleness_s=max(5.0, 3 * auto.tick_seconds),
            enabled=auto.enabled,
        )
        deg = spec.degradation
        degradation = DegradationConfig(
            enabled=deg.enabled,
            enter_after_s=deg.enter_after_seconds,
            exit_after_s=deg.exit_after_seconds,
            max_level=deg.max_level,
            sheddable=spec.sheddable(),
        )
        return cls(scaling=scaling, degradation=degradation)

    def with_scaling(self, **changes: object) -> PolicyConfig:
        """A copy with some scaling fields changed (handy in the simulator and tests)."""
        return replace(self, scaling=replace(self.scaling, **changes))  # type: ignore[arg-type]
