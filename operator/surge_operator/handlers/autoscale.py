"""One autoscaling tick for one cluster: snapshot -> decide -> scale -> degrade -> status.

kopf-free; `lifecycle.py` runs `tick()` from a per-cluster daemon about once per
`spec.autoscaling.tickSeconds`. Status figures are written through the throttled writer
(`ClusterState.flush`): conditions, replica counts and the degradation level go out at
once, backlog and rates at most once per status interval.
"""

from __future__ import annotations

from surge_operator.api import HISTORY_LIMIT
from surge_operator.errors import SurgeError
from surge_operator.forecast import wait_forecast
from surge_operator.handlers.deps import Deps
from surge_operator.handlers.reconcile import _flush, emit
from surge_operator.handlers.state import ClusterState, gateway_pair
from surge_operator.logs import get_logger
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.scaling import decide
from surge_operator.policy.types import (
    Decision,
    DegradationLevel,
    DegradationState,
    ScalingState,
    Snapshot,
)
from surge_operator.resources.deployment import manual_replicas
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.labels import worker_deployment_name
from surge_operator.status import (
    append_history,
    apply_updates,
    degraded_update,
    history_entry,
    phase_of,
    scaling_update,
    workers_update,
)

log = get_logger()


async def tick(deps: Deps, cs: ClusterState, tick_no: int) -> None:
    """Never raises for data-plane trouble: a failed snapshot holds the current size
    (the policy's rule for missing metrics) and is visible in the Scaling condition."""
    spec = cs.spec
    if spec is None or not cs.stream_ready or cs.nats_url is None or cs.auth is None:
        return  # the lifecycle reconcile has not succeeded yet; it retries on its own
    started = deps.monotonic()
    ref = cs.ref
    figures = cs.workers
    current = figures.spec_replicas
    # The autoscaler's clock is monotonic (its MetricsSource stamps readings with it).
    at = deps.monotonic()
    snapshot: Snapshot | None = None
    problem: SurgeError | None = None
    try:
        snapshot = await deps.snapshots.snapshot(
            ref,
            url=cs.nats_url,
            auth=cs.auth,
            pipeline=pipeline_config(cs.status.stream or "", spec),
            spec=spec,
            at=at,
            current_replicas=current,
            ready_replicas=figures.ready,
        )
    except SurgeError as exc:
        problem = exc

    decision: Decision | None = None
    if snapshot is not None:
        state = cs.scaling if isinstance(cs.scaling, ScalingState) else resumed_state(cs)
        decision, cs.scaling = decide(snapshot, PolicyConfig.from_spec(spec), state)
        deps.metrics.decisions.labels(reason=decision.reason.value).inc()

    async with cs.lock:
        if cs.spec is not spec:
            return  # the spec changed while we were measuring; next tick uses the new one
        now = deps.now()
        history = list(cs.status.history)
        desired = current if decision is None else decision.replicas
        if not spec.autoscaling.enabled:
            desired = manual_replicas(spec)
        elif decision is not None and desired != current and figures.exists:
            target = deps.scale_target(ref, worker_deployment_name(ref.name))
            try:
                await target.scale(desired)
            except SurgeError as exc:
                problem = exc
                desired = current
            else:
                direction = "up" if desired > current else "down"
                deps.metrics.scale_actions.labels(direction=direction).inc()
                cs.workers.spec_replicas = desired
                history = append_history(
                    history,
                    history_entry(now, "scale", current, desired, decision.message),
                    HISTORY_LIMIT,
                )
                log.info(
                    "scaled", tick=tick_no, replicas_from=current, replicas_to=desired,
                    reason=decision.reason.value, message=decision.message,
                )  # fmt: skip
                await emit(
                    deps, ref, "Normal", "Scaled" + direction.capitalize(),
                    f"Workers {current} -> {desired}: {decision.message}",
                )  # fmt: skip

        level = cs.status.degradation_level or 0
        new_level = level
        if decision is not None and spec.degradation.enabled:
            new_level = int(decision.degradation_level)
        elif not spec.degradation.enabled:
            new_level = 0
        # Workers and the gateway read which classes may be shed from the published state,
        # so a spec change of priorities[].sheddable is published even at the same level.
        sheddable = frozenset(p.value for p in spec.sheddable())
        if new_level != cs.published_level or sheddable != cs.published_sheddable:
            try:
                await deps.js.publish_level(
                    cs.nats_url, cs.auth, cs.status.stream or "", new_level,
                    decision.message if decision else "", deps.wall(), sheddable=sheddable,
                )  # fmt: skip
                cs.published_level = new_level
                cs.published_sheddable = sheddable
            except SurgeError as exc:
                problem = problem or exc
        if decision is not None and snapshot is not None:
            # Every tick, beside the level: the composer promises waits from it.
            forecast = wait_forecast(
                snapshot, decision, PolicyConfig.from_spec(spec), deps.wall(), level=new_level
            )
            try:
                await deps.js.publish_forecast(
                    cs.nats_url, cs.auth, cs.status.stream or "", forecast
                )
            except SurgeError as exc:
                problem = problem or exc
        if new_level != level:
            reason_text = decision.message if decision else "degradation disabled"
            history = append_history(
                history, history_entry(now, "degrade", level, new_level, reason_text), HISTORY_LIMIT
            )
            log.warning("degradation_changed", tick=tick_no, level_from=level, level_to=new_level)
            await emit(
                deps, ref, "Warning" if new_level > level else "Normal",
                "DegradationRaised" if new_level > level else "DegradationLowered",
                f"Degradation level {level} -> {new_level}: {reason_text}",
            )  # fmt: skip

        scaling_text = (
            decision.message if decision is not None
            else f"holding: {problem.message}" if problem is not None else ""
        )  # fmt: skip
        updates = [
            workers_update(figures.replicas, figures.ready, desired, gateway_pair(cs, spec)),
            scaling_update(figures.replicas, desired, spec.autoscaling.enabled, scaling_text),
            degraded_update(new_level, decision.message if decision and new_level else ""),
        ]
        conditions = apply_updates(cs.status.conditions, updates, now, cs.generation)
        backlog = snapshot.total_backlog() if snapshot is not None else cs.status.backlog
        arrival = snapshot.total_arrival_rate() if snapshot is not None else cs.status.arrival_rate
        p95 = _p95(snapshot) if snapshot is not None else cs.status.p95_wait
        cs.status = cs.status.model_copy(
            update={
                "conditions": conditions,
                "phase": phase_of(conditions),
                "replicas": figures.replicas,
                "ready_replicas": figures.ready,
                "desired_replicas": desired,
                "backlog": backlog,
                "arrival_rate": round(arrival, 2) if arrival is not None else None,
                "p95_wait": round(p95, 3) if p95 is not None else None,
                "degradation_level": new_level,
                "history": history,
            }
        )
        await _flush(deps, cs)

    labels = (ref.namespace, ref.name)
    deps.metrics.desired_replicas.labels(*labels).set(desired)
    deps.metrics.actual_replicas.labels(*labels).set(figures.replicas)
    deps.metrics.ready_replicas.labels(*labels).set(figures.ready)
    deps.metrics.degradation_level.labels(*labels).set(new_level)
    if backlog is not None:
        deps.metrics.backlog.labels(*labels).set(backlog)
    deps.metrics.tick_seconds.observe(deps.monotonic() - started)
    if problem is not None:
        log.warning("tick_degraded", tick=tick_no, reason=problem.reason, error=problem.message)


def resumed_state(cs: ClusterState) -> ScalingState:
    """Policy memory for a cluster this process has not ticked yet. The degradation level
    survives an operator restart through status: starting again at level 0 would reopen
    the floodgates in the middle of the overload that raised it."""
    level = cs.status.degradation_level or 0
    return ScalingState(degradation=DegradationState(level=DegradationLevel(level)))


def _p95(snapshot: Snapshot) -> float | None:
    """Prometheus p95 when known, else the oldest unacked message's age (an upper bound
    on the wait of everything queued, which is what the latency targets protect)."""
    waits = [m.p95_wait for m in snapshot.priorities.values() if m.p95_wait is not None]
    if waits:
        return max(waits)
    ages = [m.oldest_unacked_age for m in snapshot.priorities.values() if m.oldest_unacked_age]
    return max(ages) if ages else 0.0
