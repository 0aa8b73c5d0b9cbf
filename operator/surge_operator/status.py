"""Pure status logic: conditions, phase, bounded history and when to write.

Like rabbitmq cluster-operator's `internal/status`: the old condition goes in, the new one
comes out, and `lastTransitionTime` moves only when the *status* changes (a new reason or
message alone does not move it). Every condition exists from the first status write, as
`Unknown`, like KEDA's `GetInitializedConditions`, so `kubectl wait` and dashboards never
see a missing condition.

Time is a parameter (`now`), never read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from surge_operator.api import (
    HISTORY_LIMIT,
    Condition,
    ConditionStatus,
    ConditionType,
    HistoryEntry,
    MessagingClusterStatus,
    Phase,
)

T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN

CONDITION_ORDER: tuple[ConditionType, ...] = (
    ConditionType.READY,
    ConditionType.STREAM_READY,
    ConditionType.WORKERS_READY,
    ConditionType.SCALING,
    ConditionType.DEGRADED,
    ConditionType.FAILED_OVER,
)


def timestamp(now: datetime) -> str:
    """RFC 3339, seconds precision, `Z` suffix (what metav1.Time serialises to)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ConditionUpdate:
    """What a handler learned about one condition in this pass."""

    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str = ""


def initial_conditions(now: datetime, generation: int | None = None) -> list[Condition]:
    at = timestamp(now)
    return [
        Condition(
            type=t,
            status=U,
            reason="Initializing",
            message="The operator has not evaluated this condition yet.",
            last_transition_time=at,
            observed_generation=generation,
        )
        for t in CONDITION_ORDER
    ]


def set_condition(
    conditions: Sequence[Condition],
    update: ConditionUpdate,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """Return `conditions` with `update` applied; missing conditions are appended."""
    out: list[Condition] = []
    found = False
    for old in conditions:
        if old.type != update.type:
            out.append(old)
            continue
        found = True
        moved = old.status != update.status
        out.append(
            Condition(
                type=update.type,
                status=update.status,
                reason=update.reason,
                message=update.message,
                last_transition_time=timestamp(now) if moved else old.last_transition_time,
                observed_generation=generation
                if generation is not None
                else old.observed_generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=update.type,
                status=update.status,
                reason=update.reason,
                message=update.message,
                last_transition_time=timestamp(now),
                observed_generation=generation,
            )
        )
    return sort_conditions(out)


def apply_updates(
    conditions: Sequence[Condition],
    updates: Iterable[ConditionUpdate],
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    current = list(conditions) or initial_conditions(now, generation)
    for update in updates:
        current = set_condition(current, update, now, generation)
    # Ready is derived, never set directly: recompute it from the others every time.
    return set_condition(current, ready_update(current), now, generation)


def sort_conditions(conditions: Iterable[Condition]) -> list[Condition]:
    rank = {t: i for i, t in enumerate(CONDITION_ORDER)}
    return sorted(conditions, key=lambda c: rank.get(c.type, len(rank)))


def get_condition(conditions: Sequence[Condition], type_: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: ConditionType) -> bool:
    cond = get_condition(conditions, type_)
    return cond is not None and cond.status == T


def ready_on_generation(obj: Mapping[str, Any]) -> bool:
    """A MessagingCluster object, as the API server returns it, is Ready for its current
    spec: what a client that created or changed one waits for (the benches)."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != (obj.get("metadata") or {}).get("generation"):
        return False
    return any(
        c.get("type") == ConditionType.READY.value and c.get("status") == T
        for c in status.get("conditions") or []
    )


# -- the individual conditions ------------------------------------------------------------


def ready_update(conditions: Sequence[Condition]) -> ConditionUpdate:
    """Ready = StreamReady and WorkersReady. When not, say which and why."""
    for dependency in (ConditionType.STREAM_READY, ConditionType.WORKERS_READY):
        cond = get_condition(conditions, dependency)
        if cond is None or cond.status == U:
            return ConditionUpdate(
                ConditionType.READY, U, f"{dependency.value}Unknown",
                f"{dependency.value} has not been evaluated yet.",
            )  # fmt: skip
        if cond.status == F:
            return ConditionUpdate(
                ConditionType.READY, F, f"{dependency.value}False",
                f"{dependency.value} is False ({cond.reason}): {cond.message}".rstrip(": "),
            )  # fmt: skip
    return ConditionUpdate(
        ConditionType.READY, T, "AllComponentsReady", "Stream provisioned and workers ready."
    )


def stream_ready(stream: str) -> ConditionUpdate:
    return ConditionUpdate(
        ConditionType.STREAM_READY, T, "StreamProvisioned",
        f"Stream {stream}, its consumers, dead-letter stream and KV buckets exist.",
    )  # fmt: skip


def stream_failed(reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(ConditionType.STREAM_READY, F, reason, message)


def workers_update(
    replicas: int, ready: int, desired: int, gateway: tuple[int, int] | None = None
) -> ConditionUpdate:
    """WorkersReady: every desired worker is ready (0 desired counts as ready), and so is
    every desired gateway pod when the cluster runs a gateway (`gateway` = ready, desired)."""
    gw = f"; gateway {gateway[0]}/{gateway[1]} ready" if gateway is not None else ""
    if gateway is not None and gateway[0] < gateway[1]:
        return ConditionUpdate(
            ConditionType.WORKERS_READY, F, "GatewayNotReady",
            f"{ready}/{desired} workers ready{gw}.",
        )  # fmt: skip
    if ready >= desired and replicas <= max(desired, ready):
        return ConditionUpdate(
            ConditionType.WORKERS_READY, T, "AllWorkersReady",
            f"{ready}/{desired} workers ready{gw}.",
        )  # fmt: skip
    return ConditionUpdate(
        ConditionType.WORKERS_READY, F, "WorkersNotReady",
        f"{ready}/{desired} workers ready ({replicas} exist){gw}.",
    )  # fmt: skip


def workers_failed(reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(ConditionType.WORKERS_READY, F, reason, message)


def scaling_update(current: int, desired: int, enabled: bool, reason_text: str) -> ConditionUpdate:
    """Scaling is True while the worker count is moving towards a new decision."""
    if not enabled:
        return ConditionUpdate(
            ConditionType.SCALING, F, "AutoscalingDisabled",
            "Autoscaling is off; spec.replicas sets the worker count.",
        )  # fmt: skip
    if desired > current:
        return ConditionUpdate(
            ConditionType.SCALING, T, "ScalingUp", f"{current} -> {desired}: {reason_text}"
        )
    if desired < current:
        return ConditionUpdate(
            ConditionType.SCALING, T, "ScalingDown", f"{current} -> {desired}: {reason_text}"
        )
    return ConditionUpdate(
        ConditionType.SCALING, F, "Stable", f"{current} workers: {reason_text}".rstrip(": ")
    )


_LEVEL_REASONS = {
    0: "Normal",
    1: "ThrottlingBulk",
    2: "SheddingBulk",
    3: "CriticalOnly",
}


def degraded_update(level: int, reason_text: str = "") -> ConditionUpdate:
    name = _LEVEL_REASONS.get(level, f"Level{level}")
    if level <= 0:
        return ConditionUpdate(
            ConditionType.DEGRADED, F, name, reason_text or "All priorities are served."
        )
    return ConditionUpdate(
        ConditionType.DEGRADED, T, name, f"Degradation level {level}: {reason_text}".rstrip(": ")
    )


def failed_over_update(active_region: str, primary: str) -> ConditionUpdate:
    if active_region == primary:
        return ConditionUpdate(
            ConditionType.FAILED_OVER, F, "PrimaryActive",
            f"Primary region {primary} serves traffic.",
        )  # fmt: skip
    return ConditionUpdate(
        ConditionType.FAILED_OVER, T, "StandbyPromoted",
        f"Region {active_region} serves traffic instead of primary {primary}.",
    )  # fmt: skip


# -- phase and history --------------------------------------------------------------------


def phase_of(conditions: Sequence[Condition], *, error: bool = False) -> Phase:
    """Coarse phase for `kubectl get`: the most important fact first."""
    if error:
        return Phase.ERROR
    if is_true(conditions, ConditionType.FAILED_OVER) and not is_true(
        conditions, ConditionType.READY
    ):
        return Phase.FAILING_OVER
    stream = get_condition(conditions, ConditionType.STREAM_READY)
    if stream is None or stream.status == U:
        return Phase.PENDING
    if stream.status == F:
        return Phase.PROVISIONING
    if is_true(conditions, ConditionType.DEGRADED):
        return Phase.DEGRADED
    if is_true(conditions, ConditionType.READY):
        return Phase.RUNNING
    return Phase.PROVISIONING


def append_history(
    history: Sequence[HistoryEntry], entry: HistoryEntry, limit: int = HISTORY_LIMIT
) -> list[HistoryEntry]:
    """Newest last; only the `limit` most recent entries are kept."""
    return [*history, entry][-limit:]


def history_entry(
    now: datetime, kind: str, from_value: object, to_value: object, reason: str
) -> HistoryEntry:
    return HistoryEntry.model_validate(
        {
            "time": timestamp(now),
            "kind": kind,
            "from": str(from_value),
            "to": str(to_value),
            "reason": reason[:1024],
        }
    )


# -- wire format and write throttling -----------------------------------------------------


def to_wire(status: MessagingClusterStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


_WIRE_KEYS = frozenset(f.alias or name for name, f in MessagingClusterStatus.model_fields.items())


def from_wire(raw: dict[str, Any] | None) -> MessagingClusterStatus:
    """Parse what the API server holds; unknown keys (e.g. foreign tools) are dropped and a
    malformed status restarts from empty rather than wedging the operator."""
    if not raw:
        return MessagingClusterStatus()
    try:
        return MessagingClusterStatus.model_validate(
            {k: v for k, v in raw.items() if k in _WIRE_KEYS}
        )
    except ValueError:
        return MessagingClusterStatus()


# Figures that change every tick: written at most once per status interval.
LIVE_FIELDS = frozenset({"backlog", "arrivalRate", "p95Wait"})


def status_patch(old: dict[str, Any], new: MessagingClusterStatus) -> dict[str, Any]:
    """Merge patch turning `old` (wire form) into `new`: changed keys only, and `None` for
    keys that must disappear. Empty when nothing changed."""
    target = to_wire(new)
    patch: dict[str, Any] = {k: v for k, v in target.items() if old.get(k) != v}
    # Only our own keys are removed; anything another tool keeps in status is left alone.
    for key in old.keys() & _WIRE_KEYS - target.keys():
        patch[key] = None
    return patch


def _condition_keys(conditions: Any) -> list[tuple[Any, Any, Any]]:
    return [(c.get("type"), c.get("status"), c.get("reason")) for c in conditions or []]


def needs_write(
    patch: dict[str, Any],
    *,
    since_last_write: float,
    interval: float,
    old: dict[str, Any] | None = None,
) -> bool:
    """Write now when anything but the live figures changed; live figures alone wait for
    the interval, so a busy cluster costs one status write per interval, not per tick.
    A condition whose status and reason stay the same but whose message changes (the
    message quotes live numbers) counts as a live figure too."""
    if not patch:
        return False
    significant = set(patch) - LIVE_FIELDS
    same_keys = old is not None and _condition_keys(patch.get("conditions")) == _condition_keys(
        old.get("conditions")
    )
    if "conditions" in significant and same_keys:
        significant.discard("conditions")
    if significant:
        return True
    return since_last_write >= interval
