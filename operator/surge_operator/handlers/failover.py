"""One failover tick for one multi-region cluster: probe regions -> decide -> promote or
fail back -> status, events, and a reconcile that repoints the pods.

kopf-free; the per-cluster daemon calls `failover_tick` every
`spec.failover.probeIntervalSeconds`. The work is `regions.FailoverController` (probes,
mirrors, promotion; pure decisions in policy/failover.py); this module keeps one
controller per cluster in `ClusterState`, resolves each region's credentials, and turns a
`TickOutcome` into status, history and Events.

Failback is automatic only with `spec.failover.automaticFailback`; otherwise annotate the
MessagingCluster with `surge.dev/failback=requested` (removed once done).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from surge_operator.api import ConditionStatus, ConditionType, MessagingClusterSpec
from surge_operator.errors import SurgeError
from surge_operator.failover import FailoverController, RegionEndpoint
from surge_operator.failover.probe import RegionProbe
from surge_operator.handlers.deps import Deps
from surge_operator.handlers.reconcile import _flush, emit, region_auth
from surge_operator.handlers.state import ClusterState
from surge_operator.logs import get_logger
from surge_operator.policy.failover import FailoverConfig
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.nats.names import region_url
from surge_operator.status import ConditionUpdate, append_history, apply_updates, phase_of

FAILBACK_ANNOTATION = "surge.dev/failback"

log = get_logger()


def worst_mirror_lag(probes: Mapping[str, RegionProbe]) -> int | None:
    """Messages the most-behind standby mirror lacks (status.mirrorLag; `surge status`)."""
    lags = [
        view.mirror_lag
        for probe in probes.values()
        if probe.ok and (view := probe.stream()).role == "mirror" and view.mirror_lag is not None
    ]
    return max(lags) if lags else None


def multi_region(spec: MessagingClusterSpec) -> bool:
    return spec.failover.enabled and len(spec.regions) > 1


async def _endpoints(
    deps: Deps, cs: ClusterState, spec: MessagingClusterSpec
) -> list[RegionEndpoint]:
    out = []
    for region in spec.regions:
        auth = await region_auth(deps, cs.ref.namespace, cs.ref.name, region)
        url = region_url(cs.ref.name, cs.ref.namespace, region)
        out.append(
            RegionEndpoint.from_region(
                region,
                auth.connect_options(),
                url=url,
                stream_replicas=spec.stream_replicas(region),
            )
        )
    return out


async def failover_tick(
    deps: Deps, cs: ClusterState, annotations: Mapping[str, Any] | None = None
) -> None:
    spec = cs.spec
    if spec is None or not multi_region(spec) or not cs.status.stream:
        return
    try:
        endpoints = await _endpoints(deps, cs, spec)
    except SurgeError as exc:
        log.warning("failover_skipped", reason=exc.reason, error=exc.message)
        return
    pipeline = pipeline_config(cs.status.stream, spec)
    config = FailoverConfig.from_spec(spec.failover)
    primary = spec.primary_region().name
    controller = cs.failover
    if not isinstance(controller, FailoverController):
        controller = FailoverController(
            cluster=f"{cs.ref.namespace}/{cs.ref.name}",
            endpoints=endpoints,
            primary=primary,
            pipeline=pipeline,
            config=config,
            active=cs.status.active_region,
            epoch=cs.status.failover_epoch or 0,
            leadership=deps.leadership,
        )
        cs.failover = controller
    else:
        controller.update(endpoints=endpoints, primary=primary, pipeline=pipeline, config=config)
    requested = (annotations or {}).get(FAILBACK_ANNOTATION) == "requested"
    outcome = await controller.tick(
        failback_requested=requested, drained=frozenset(spec.drained_regions)
    )
    labels = (cs.ref.namespace, cs.ref.name)
    if outcome.promotion is not None and outcome.history_entry is not None:
        deps.metrics.failovers.labels(*labels, outcome.history_entry.kind).inc()
        if outcome.rpo is not None:
            deps.metrics.failover_rpo.labels(*labels).set(outcome.rpo)
    for change in outcome.mirrors:
        for kind, count in (
            ("republished", change.recovered),
            ("duplicate", change.duplicates),
            ("superseded", change.superseded),
        ):
            if count:
                deps.metrics.failover_recovered.labels(*labels, kind).inc(count)

    async with cs.lock:
        now = deps.now()
        previous = cs.status.active_region
        history = list(cs.status.history)
        if outcome.history_entry is not None:
            history = append_history(history, outcome.history_entry)
        update = ConditionUpdate(
            ConditionType.FAILED_OVER,
            ConditionStatus.TRUE if outcome.failed_over else ConditionStatus.FALSE,
            outcome.condition_reason,
            outcome.condition_message,
        )
        conditions = apply_updates(cs.status.conditions, [update], now, cs.generation)
        cs.status = cs.status.model_copy(
            update={
                "conditions": conditions,
                "active_region": outcome.active_region,
                "failover_epoch": outcome.epoch,
                "mirror_lag": worst_mirror_lag(outcome.probes),
                **(
                    {"failover_rpo": outcome.rpo}
                    if outcome.promotion is not None and outcome.rpo is not None
                    else {}
                ),
                "history": history,
                "phase": outcome.phase_hint or phase_of(conditions),
            }
        )
        moved = outcome.active_region != previous
        if moved:
            # Pods and the metrics reader follow the new active region: the next daemon
            # pass re-applies the ConfigMap (new NATS URL -> new config hash -> rollout)
            # and provisions what the promoted region still lacks.
            cs.nats_url = None
            cs.auth = None
            cs.stream_ready = False
            cs.last_reconcile = -1e9
            # Republish the level into the new writer: what it holds may be older.
            cs.published_level = None
            cs.published_sheddable = None
            deps.snapshots.forget(cs.ref)
        await _flush(deps, cs, force=moved or outcome.event is not None)
    for change in outcome.mirrors:
        if change.recoveries:
            await emit(
                deps,
                cs.ref,
                "Normal",
                "TailRecovered",
                f"{change.region} rejoined as a mirror of {change.source}: "
                f"{change.recovered} messages of its unmirrored tail republished, "
                f"{change.duplicates} already present by id, {change.superseded} KV "
                "entries superseded by newer values",
            )
    if outcome.event is not None:
        log.warning(
            "failover_event", reason=outcome.event.reason, active=outcome.active_region,
            epoch=outcome.epoch,
        )  # fmt: skip
        await emit(deps, cs.ref, outcome.event.type, outcome.event.reason, outcome.event.message)
    if requested and moved and outcome.active_region == primary:
        try:
            await deps.kube.clear_annotation(cs.ref, FAILBACK_ANNOTATION)
        except SurgeError as exc:
            log.warning("failback_annotation_not_cleared", error=exc.message)
