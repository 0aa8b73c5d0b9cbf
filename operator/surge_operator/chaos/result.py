"""One scenario's outcome: the checker's verdict, the recovery time and what else the
scenario measured (RPO, dead letters, slopes...), rendered as the contract's JSON object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from surge_operator.chaos.checker import Verdict


@dataclass(frozen=True)
class Result:
    name: str
    verdict: Verdict
    recovery_s: float | None
    rpo: int | None
    #: Scenario-specific figures, printed beside the contract's fields.
    extra: Mapping[str, object] = field(default_factory=dict)
    #: A control scenario that must lose (power loss with lazy fsync): it passes when the
    #: checker sees the loss, which shows the checker can see one.
    expects_loss: bool = False
    #: Invariants outside the data plane the scenario saw broken (e.g. a control-plane
    #: fault: replicas lower than already reached, an undocumented operator exit).
    violations: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        v = self.verdict
        if self.violations:
            return False
        if self.expects_loss:
            return v.lost > 0 and v.double_effects == 0
        return v.ok

    def as_json(self) -> dict[str, object]:
        v = self.verdict
        return {
            "name": self.name,
            "accepted": v.accepted,
            "lost": v.lost,
            "double_effects": v.double_effects,
            "duplicates_absorbed": v.duplicates_absorbed,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 2),
            "order_violations": v.order_violations,
            "rpo": self.rpo,
            "expects_loss": self.expects_loss,
            **self.extra,
            "violations": list(self.violations),
            "lost_ids": list(v.lost_ids),
            "doubled_ids": list(v.doubled_ids),
        }
