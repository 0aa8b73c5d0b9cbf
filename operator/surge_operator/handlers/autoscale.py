"""One autoscaling tick for one cluster: snapshot -> decide -> scale -> degrade -> status.

kopf-free; `lifecycle.py` runs `tick()` from a per-cluster daemon about once per
`spec.autoscaling.tickSeconds`. Status figures are written through the throttled writer
(`ClusterState.flush`): conditions, replica counts and the degradation level go out at
once, backlog and rates at most once per status interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from surge_operator.api import HISTORY_LIMIT, ConditionType, MessagingClusterSpec, ScalingPolicy
from surge_operator.engine import Autoscaler, Tick
from surge_operator.errors import ConsumerMissingError, SurgeError
from surge_operator.handlers.deps import Deps
from surge_operator.handlers.reconcile import _flush, emit
from surge_operator.handlers.state import ClusterState, gateway_pair
from surge_operator.logs import get_logger
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.engine import EngineConfig, EngineState, Plan, initial_state
from surge_operator.policy.select import policy_for
from surge_operator.policy.types import DegradationLevel, Snapshot
from surge_operator.resources.deployment import manual_replicas
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.labels import worker_deployment_name
from surge_operator.status import (
    ConditionUpdate,
    append_history,
    apply_updates,
    degraded_update,
    get_condition,
    history_entry,
    phase_of,
    scaling_update,
    stream_failed,
    stream_ready,
    workers_update,
)
from surge_workers.eta import Forecast

log = get_logger()


@dataclass
class _ClusterSource:
    """The engine's MetricsSource for this cluster, looked up per tick (the source is
    rebuilt when what it reads changes)."""

    deps: Deps
    cs: ClusterState
    spec: MessagingClusterSpec

    async def snapshot(self, *, at: float, current_replicas: int, ready_replicas: int) -> Snapshot:
        assert self.cs.nats_url is not None
        assert self.cs.auth is not None
        source = await self.deps.snapshots.source(
            self.cs.ref,
            url=self.cs.nats_url,
            auth=self.cs.auth,
            pipeline=pipeline_config(self.cs.status.stream or "", self.spec),
            spec=self.spec,
        )
        return await source.snapshot(
            at=at, current_replicas=current_replicas, ready_replicas=ready_replicas
        )


@dataclass
class _ClusterPublisher:
    """The engine's LevelPublisher: the cluster's degradation KV bucket. The level goes
    out when it differs from what was last published (or the classes the spec lets it
    shed changed: workers and the gateway read both); the expected wait every tick."""

    deps: Deps
    cs: ClusterState
    sheddable: frozenset[str]
    level: int
    problem: SurgeError | None = None

    async def publish(self, plan: Plan) -> None:
        cs, js = self.cs, self.deps.js
        assert cs.nats_url is not None
        assert cs.auth is not None
        stream = cs.status.stream or ""
        try:
            if self.level != cs.published_level or self.sheddable != cs.published_sheddable:
                await js.publish_level(
                    cs.nats_url, cs.auth, stream, self.level, plan.decision.message,
                    self.deps.wall(), sheddable=self.sheddable,
                )  # fmt: skip
                cs.published_level = self.level
                cs.published_sheddable = self.sheddable
            # Every tick, beside the level: the composer promises waits from it.
            forecast = Forecast(at=self.deps.wall(), level=self.level, classes=plan.expected_wait)
            await js.publish_forecast(cs.nats_url, cs.auth, stream, forecast)
        except SurgeError as exc:
            self.problem = exc


def engine_config(spec: MessagingClusterSpec) -> EngineConfig:
    """`spec.autoscaling.policy` picks the decision function the engine runs."""
    return EngineConfig(
        policy=PolicyConfig.from_spec(spec), decider=policy_for(spec.autoscaling.policy)
    )


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
    config = engine_config(spec)
    policy = ScalingPolicy(spec.autoscaling.policy).value
    sheddable = frozenset(p.value for p in spec.sheddable())
    autoscaler = Autoscaler(
        source=_ClusterSource(deps, cs, spec),
        target=deps.scale_target(
            ref, worker_deployment_name(ref.name), lambda: (figures.spec_replicas, figures.ready)
        ),
        publisher=None,
        config=config,
        # The autoscaler's clock is monotonic (its MetricsSource stamps readings with it).
        clock=deps.monotonic,
        state=_engine_state(cs, config, policy),
        keep_ticks=False,
    )
    planned: Tick | None = None
    problem: SurgeError | None = None
    try:
        planned = await autoscaler.plan()
    except SurgeError as exc:
        problem = exc
    plan = planned.plan if planned is not None else None
    if plan is not None:
        cs.scaling = (policy, autoscaler.state)
        deps.metrics.decisions.labels(reason=plan.decision.reason.value).inc()

    async with cs.lock:
        if cs.spec is not spec:
            return  # the spec changed while we were measuring; next tick uses the new one
        if not deps.leadership.holds():
            # Past the renew deadline (e.g. woken from a freeze after a standby took over):
            # its view is stale and a successor may lead; no scaling, level or status write.
            log.warning("autoscaling_paused_not_leader")
            return
        now = deps.now()
        history = list(cs.status.history)
        desired = current if plan is None else plan.replicas
        if not spec.autoscaling.enabled:
            desired = manual_replicas(spec)
        elif planned is not None and plan is not None and plan.scales and figures.exists:
            try:
                await autoscaler.scale(planned)
            except SurgeError as exc:
                problem = exc
                desired = current
            else:
                direction = "up" if desired > current else "down"
                deps.metrics.scale_actions.labels(direction=direction).inc()
                cs.workers.spec_replicas = desired
                history = append_history(
                    history,
                    history_entry(now, "scale", current, desired, plan.decision.message),
                    HISTORY_LIMIT,
                )
                log.info(
                    "scaled", tick=tick_no, replicas_from=current, replicas_to=desired,
                    reason=plan.decision.reason.value, message=plan.decision.message,
                )  # fmt: skip
                for event in plan.events:
                    if event.kind.value.startswith("Scaled"):
                        await emit(deps, ref, "Normal", event.kind.value, event.message)

        level = cs.status.degradation_level or 0
        new_level = int(plan.level) if plan is not None else level
        if not spec.degradation.enabled:
            new_level = 0
        if planned is not None and plan is not None:
            publisher = _ClusterPublisher(deps, cs, sheddable, new_level)
            autoscaler.publisher = publisher
            await autoscaler.publish(planned)
            problem = problem or publisher.problem
        if new_level != level:
            reason_text = plan.decision.message if plan else "degradation disabled"
            history = append_history(
                history, history_entry(now, "degrade", level, new_level, reason_text), HISTORY_LIMIT
            )
            log.warning("degradation_changed", tick=tick_no, level_from=level, level_to=new_level)
            await emit(
                deps, ref, "Warning" if new_level > level else "Normal",
                "DegradationRaised" if new_level > level else "DegradationLowered",
                f"Degradation level {level} -> {new_level}: {reason_text}",
            )  # fmt: skip

        message = plan.decision.message if plan is not None else ""
        scaling_text = (
            message if plan is not None
            else f"holding: {problem.message}" if problem is not None else ""
        )  # fmt: skip
        updates = [
            workers_update(figures.replicas, figures.ready, desired, gateway_pair(cs, spec)),
            scaling_update(figures.replicas, desired, spec.autoscaling.enabled, scaling_text),
            degraded_update(new_level, message if new_level else ""),
        ]
        stream_update = _stream_update(cs, problem, plan is not None)
        if stream_update is not None:
            updates.append(stream_update)
            if stream_update.reason == ConsumerMissingError.reason:
                await emit(deps, ref, "Warning", stream_update.reason, stream_update.message)
        conditions = apply_updates(cs.status.conditions, updates, now, cs.generation)
        shown = plan.figures if plan is not None else None
        backlog = shown.backlog if shown is not None else cs.status.backlog
        arrival = shown.arrival_rate if shown is not None else cs.status.arrival_rate
        p95 = shown.p95_wait if shown is not None else cs.status.p95_wait
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
        if not deps.leadership.holds():
            # Lost it during this tick's awaits (frozen mid-tick, woken after a standby took
            # over): a stale status would overwrite the new leader's, which writes only what
            # differs from its own last write and so would never correct it.
            log.warning("autoscaling_paused_not_leader")
            return
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


def _stream_update(
    cs: ClusterState, problem: SurgeError | None, measured: bool
) -> ConditionUpdate | None:
    """StreamReady=False ConsumerMissing while the queue cannot be read because its stream
    or a consumer is gone (the tick holds the size; KEDA scales to max here, #7657), and
    back to True once a tick measures it again. None when nothing changes."""
    old = get_condition(cs.status.conditions, ConditionType.STREAM_READY)
    was_missing = old is not None and old.reason == ConsumerMissingError.reason
    if isinstance(problem, ConsumerMissingError):
        message = f"{problem.message}; holding the worker count until it is back"
        if was_missing and old is not None and old.message == message:
            return None
        return stream_failed(ConsumerMissingError.reason, message)
    if measured and was_missing:
        return stream_ready(cs.status.stream or "")
    return None


def _engine_state(cs: ClusterState, config: EngineConfig, policy: str) -> EngineState:
    """The engine's memory for this cluster: kept between ticks while the policy stays
    the same; otherwise fresh, with the degradation level taken from status (starting
    again at level 0 would reopen the floodgates in the middle of the overload that
    raised it, e.g. after an operator restart)."""
    if isinstance(cs.scaling, tuple) and cs.scaling[0] == policy:
        state = cs.scaling[1]
        assert isinstance(state, EngineState)
        return state
    level = DegradationLevel(cs.status.degradation_level or 0)
    return initial_state(config, level)
