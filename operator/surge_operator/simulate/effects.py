"""What a degradation level does to traffic in the simulator: the data-plane contract.

The gateway's admission (admit / throttle / shed) and the workers' capacity share per
priority come from `surge_workers.contract`, with the cluster's sheddable classes, so the
simulator degrades exactly as the real pipeline does: a class with share s never takes
more than s of the pool's throughput (the workers cap it at s of their handler slots) and
is served in strict priority after the classes above it. A throttled class is admitted at
`THROTTLED_RATE_FRACTION` of what is offered (the gateway applies it to each tenant's rate
limit); a write refused with 429 comes back after the gateway's Retry-After (the engine
replays it, and its wait counts from the first attempt).
"""

from __future__ import annotations

from collections.abc import Iterable

from surge_operator.api import Priority
from surge_operator.policy.types import DegradationLevel
from surge_workers import contract


def _wire(priority: Priority) -> contract.Priority:
    return contract.Priority(priority.value)


def _wire_set(sheddable: Iterable[Priority]) -> frozenset[contract.Priority]:
    return frozenset(_wire(p) for p in sheddable)


def admission(
    level: DegradationLevel, priority: Priority, sheddable: frozenset[Priority]
) -> tuple[float, bool]:
    """(fraction of offered writes admitted, whether the refused rest counts as throttled
    rather than shed)."""
    decision = contract.admission(
        contract.DegradationLevel(int(level)), _wire(priority), _wire_set(sheddable)
    )
    if decision is contract.Admission.ADMIT:
        return 1.0, False
    if decision is contract.Admission.THROTTLE:
        return contract.THROTTLED_RATE_FRACTION, True
    return 0.0, False


def worker_share(
    level: DegradationLevel, priority: Priority, sheddable: frozenset[Priority]
) -> float:
    """Largest fraction of worker capacity this priority may use at this level."""
    return contract.worker_share(
        contract.DegradationLevel(int(level)), _wire(priority), _wire_set(sheddable)
    )


def retry_after(
    level: DegradationLevel, priority: Priority, sheddable: frozenset[Priority]
) -> float:
    """Seconds a refused client waits before it tries again (the gateway's Retry-After)."""
    return float(
        max(
            1,
            contract.retry_after_seconds(
                contract.DegradationLevel(int(level)), _wire(priority), _wire_set(sheddable)
            ),
        )
    )
