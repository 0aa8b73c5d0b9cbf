"""What a degradation level does to traffic in the simulator: the data-plane contract.

The gateway's admission (admit / throttle / shed) and the workers' capacity share per
priority come from `surge_workers.contract`, so the simulator degrades exactly as the
real pipeline does. Simplification: a write refused with 429 is counted once (as
throttled or shed) and its client's retries are not replayed.
"""

from __future__ import annotations

from surge_operator.api import Priority
from surge_operator.policy.types import DegradationLevel
from surge_workers import contract


def _wire(priority: Priority) -> contract.Priority:
    return contract.Priority(priority.value)


def admission(level: DegradationLevel, priority: Priority) -> tuple[float, bool]:
    """(fraction of offered writes admitted, whether the refused rest counts as throttled
    rather than shed)."""
    decision = contract.admission(contract.DegradationLevel(int(level)), _wire(priority))
    if decision is contract.Admission.ADMIT:
        return 1.0, False
    if decision is contract.Admission.THROTTLE:
        return contract.THROTTLED_RATE_FRACTION, True
    return 0.0, False


def worker_share(level: DegradationLevel, priority: Priority) -> float:
    """Largest fraction of worker capacity this priority may use at this level."""
    return contract.worker_share(contract.DegradationLevel(int(level)), _wire(priority))
