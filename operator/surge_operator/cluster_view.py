"""What `surge status` shows about one MessagingCluster (pure: object dict in, view out).

The view is read from the object the API server returns, through the same status model
the operator writes, so the CLI and the CRD can never disagree about a field's meaning.
Rendering: `as_dict` for `--output json|yaml` (stable keys, camelCase like the CRD) and
`table` for people (a rich renderable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table

from surge_operator.api import HistoryEntry, MessagingClusterStatus

#: decisions shown by default (the status keeps at most HISTORY_LIMIT)
DEFAULT_DECISIONS = 5


@dataclass(frozen=True)
class ClusterView:
    name: str
    namespace: str
    generation: int | None
    status: MessagingClusterStatus
    primary_region: str | None
    drained_regions: tuple[str, ...]
    decisions: tuple[HistoryEntry, ...]

    @classmethod
    def from_object(cls, obj: dict[str, Any], decisions: int = DEFAULT_DECISIONS) -> ClusterView:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = MessagingClusterStatus.model_validate(obj.get("status") or {})
        primary = next(
            (r.get("name") for r in spec.get("regions") or [] if r.get("role") == "primary"),
            None,
        )
        history = status.history[-decisions:] if decisions > 0 else []
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            generation=meta.get("generation"),
            status=status,
            primary_region=primary,
            drained_regions=tuple(spec.get("drainedRegions") or ()),
            decisions=tuple(reversed(history)),  # newest first
        )

    @property
    def active_region(self) -> str | None:
        return self.status.active_region or self.primary_region

    @property
    def reconciled(self) -> bool:
        """The operator has handled the current generation of the spec."""
        return self.generation is not None and self.status.observed_generation == self.generation

    def as_dict(self) -> dict[str, Any]:
        s = self.status
        return {
            "name": self.name,
            "namespace": self.namespace,
            "phase": s.phase.value if s.phase else None,
            "replicas": {
                "current": s.replicas,
                "ready": s.ready_replicas,
                "desired": s.desired_replicas,
            },
            "degradationLevel": s.degradation_level,
            "activeRegion": self.active_region,
            "primaryRegion": self.primary_region,
            "drainedRegions": list(self.drained_regions),
            "mirrorLag": s.mirror_lag,
            "failoverEpoch": s.failover_epoch,
            "backlog": s.backlog,
            "arrivalRate": s.arrival_rate,
            "p95Wait": s.p95_wait,
            "reconciled": self.reconciled,
            "conditions": [
                {
                    "type": c.type.value,
                    "status": c.status.value,
                    "reason": c.reason,
                    "message": c.message,
                }
                for c in s.conditions
            ],
            "decisions": [
                {
                    "time": d.time,
                    "kind": d.kind,
                    "from": d.from_value,
                    "to": d.to_value,
                    "reason": d.reason,
                }
                for d in self.decisions
            ],
        }

    def table(self) -> Group:
        s = self.status
        summary = Table(show_header=False, box=None, pad_edge=False)
        summary.add_column(style="bold")
        summary.add_column()

        def show(value: object) -> str:
            return "-" if value is None else str(value)

        summary.add_row("cluster", f"{self.namespace}/{self.name}")
        summary.add_row("phase", show(s.phase.value if s.phase else None))
        summary.add_row(
            "replicas",
            f"{show(s.ready_replicas)} ready / {show(s.replicas)} / {show(s.desired_replicas)} "
            "desired",
        )
        summary.add_row("level", show(s.degradation_level))
        region = show(self.active_region)
        if self.primary_region and self.active_region != self.primary_region:
            region += f" (failed over from {self.primary_region})"
        summary.add_row("active region", region)
        if self.drained_regions:
            summary.add_row("drained", ", ".join(self.drained_regions))
        summary.add_row("mirror lag", show(s.mirror_lag))
        summary.add_row("backlog", show(s.backlog))
        rate = None if s.arrival_rate is None else f"{s.arrival_rate:.1f}/s"
        summary.add_row("arrival rate", show(rate))
        summary.add_row("p95 wait", show(None if s.p95_wait is None else f"{s.p95_wait:.2f}s"))

        conditions = Table(title="conditions", title_justify="left")
        for column in ("type", "status", "reason", "message"):
            conditions.add_column(column)
        for c in s.conditions:
            conditions.add_row(c.type.value, c.status.value, c.reason, c.message)

        decisions = Table(title="last decisions (newest first)", title_justify="left")
        for column in ("time", "kind", "from", "to", "reason"):
            decisions.add_column(column)
        for d in self.decisions:
            decisions.add_row(d.time, d.kind, d.from_value, d.to_value, d.reason)
        return Group(summary, conditions, decisions)
