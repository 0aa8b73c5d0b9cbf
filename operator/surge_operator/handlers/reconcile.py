"""Reconcile one MessagingCluster: owned objects, JetStream, conditions. And finalize it.

kopf-free on purpose: `lifecycle.py` calls these and maps the domain errors they raise
to kopf's TemporaryError/PermanentError. Everything here goes through `Deps`, so unit
tests drive it with fakes and the e2e tests with the real API server and NATS.

Order of work: Kubernetes objects first (they do not depend on NATS, and a user should
see the Deployments even while NATS is unreachable), then JetStream, then conditions
from what both steps learned. A failure in one step does not skip the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from surge_operator.api import (
    ConditionStatus,
    ConditionType,
    MessagingClusterSpec,
    MessagingClusterStatus,
    Phase,
    Region,
    parse_spec,
)
from surge_operator.errors import (
    BackupError,
    CredentialsSecretMissingError,
    InvalidSpecError,
    KubeApiError,
    RestorePendingError,
    SurgeError,
    is_permanent,
)
from surge_operator.handlers.deps import Deps
from surge_operator.handlers.nats import apply_managed_nats
from surge_operator.handlers.restore import restore_gate, restore_pending
from surge_operator.handlers.state import ClusterState, WorkerFigures, gateway_pair
from surge_operator.jetstream import NatsAuth, auth_from_secret
from surge_operator.kube import ClusterObject
from surge_operator.logs import get_logger
from surge_operator.resources import (
    BuildContext,
    backups_switched_off,
    desired_objects,
    gateway_blocked,
    obsolete_objects,
    workload_kinds,
)
from surge_operator.resources.deployment import manual_replicas
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.labels import selector_labels, selector_string, worker_name
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.credentials import credentials_ref
from surge_operator.resources.nats.tls import CA_KEY, ca_secret_for_clients
from surge_operator.status import (
    ConditionUpdate,
    apply_updates,
    degraded_update,
    failed_over_update,
    get_condition,
    initial_conditions,
    phase_of,
    scaling_update,
    stream_failed,
    stream_ready,
    workers_failed,
    workers_update,
)

log = get_logger()


def build_context(
    deps: Deps, ref: ClusterObject, spec: MessagingClusterSpec, status: MessagingClusterStatus
) -> BuildContext:
    return BuildContext(
        name=ref.name,
        namespace=ref.namespace,
        uid=ref.uid,
        spec=spec,
        active_region=status.active_region,
        extra_pod_labels=deps.config.apply.extra_pod_labels,
        pod_defaults=deps.config.data_plane.pod_template,
        image_pull_policy=deps.config.data_plane.image_pull_policy,
        network_policy=deps.config.data_plane.network_policy,
        default_image=deps.config.apply.data_plane_image,
    )


def parse(spec_raw: Mapping[str, Any]) -> MessagingClusterSpec:
    try:
        return parse_spec(dict(spec_raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidSpecError(f"spec.{where}: {first.get('msg', 'invalid')}") from None


def scale_manifest(ctx: BuildContext, replicas: int) -> dict[str, Any]:
    """The one field the autoscaler's field manager owns on the worker Deployment."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": worker_name(ctx), "namespace": ctx.namespace},
        "spec": {"replicas": replicas},
    }


def initial_replicas(spec: MessagingClusterSpec, status: MessagingClusterStatus) -> int:
    """Worker count for a newly created Deployment under autoscaling: the last decision
    (survives an operator restart through status), else the minimum."""
    auto = spec.autoscaling
    wanted = status.desired_replicas if status.desired_replicas is not None else auto.min_replicas
    return max(auto.min_replicas, min(auto.max_replicas, wanted))


def figures_from_deployment(obj: Mapping[str, Any], field_manager: str) -> WorkerFigures:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    owns = False
    for entry in meta.get("managedFields") or []:
        if entry.get("manager") == field_manager and entry.get("operation") == "Apply":
            owns = owns or "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    return WorkerFigures(
        exists=True,
        spec_replicas=int(spec.get("replicas") or 0),
        replicas=int(status.get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        generation=int(meta.get("generation") or 0),
        structural_owns_replicas=owns,
    )


async def apply_owned(
    deps: Deps, ctx: BuildContext, cs: ClusterState, *, hold_workloads: bool = False
) -> int:
    """Server-side apply every desired object; delete obsolete ones. Returns the number
    of objects the API server actually changed (resourceVersion moved). With
    `hold_workloads` (a restore is pending) the Deployments are not created yet."""
    manager = deps.config.apply.field_manager
    scale_manager = deps.config.apply.scale_field_manager
    autoscaling = ctx.spec.autoscaling.enabled
    changed = 0
    for obj in desired_objects(ctx):
        if hold_workloads and obj["kind"] in workload_kinds():
            continue
        meta = obj["metadata"]
        is_workers = obj["kind"] == "Deployment" and meta["name"] == worker_name(ctx)
        if is_workers and autoscaling:
            figures = cs.workers
            if not figures.exists:
                current = await deps.kube.get("apps/v1", "Deployment", ctx.namespace, meta["name"])
                if current is not None:
                    figures = figures_from_deployment(current, manager)
                    cs.workers = figures
            if not figures.exists:
                # Create with the right size at once (no 1-replica blip), and let the
                # autoscaler's manager co-own the count from the start.
                n = initial_replicas(ctx.spec, cs.status)
                sized = {**obj, "spec": {"replicas": n, **obj["spec"]}}
                await deps.kube.apply(sized, field_manager=manager)
                await deps.kube.apply(scale_manifest(ctx, n), field_manager=scale_manager)
                # Hand the field over now (the structural manager stops declaring it), so
                # the first resync later is a true no-op instead of an ownership change.
                result = await deps.kube.apply(obj, field_manager=manager)
                cs.workers = figures_from_deployment(result, manager)
                cs.resource_versions[("Deployment", meta["name"])] = (
                    result.get("metadata") or {}
                ).get("resourceVersion")
                changed += 1
                continue
            if figures.structural_owns_replicas:
                # Hand the count to the autoscaler's manager before the structural apply
                # drops the field; otherwise the API server would reset it to 1.
                await deps.kube.apply(
                    scale_manifest(ctx, figures.spec_replicas), field_manager=scale_manager
                )
        result = await deps.kube.apply(obj, field_manager=manager)
        rv = (result.get("metadata") or {}).get("resourceVersion")
        key = (obj["kind"], meta["name"])
        if key in cs.resource_versions and cs.resource_versions[key] != rv:
            changed += 1  # only a change we can prove (first pass after start: unknown)
        cs.resource_versions[key] = rv
        if is_workers:
            cs.workers = figures_from_deployment(result, manager)
        elif obj["kind"] == "Deployment":
            cs.gateway = figures_from_deployment(result, manager)
    for ref in obsolete_objects(ctx):
        if await deps.kube.delete(ref):
            changed += 1
    for ref in backups_switched_off(ctx, had_backups=cs.status.backup is not None):
        await deps.kube.delete(ref)
        cs.status = cs.status.model_copy(update={"backup": None})
        changed += 1
    return changed


async def region_auth(deps: Deps, namespace: str, cluster: str, region: Region) -> NatsAuth:
    """The operator's own credentials in `region` (the managed operator user, or the
    Secret the spec names for an external NATS), plus the CA to trust with `nats.tls`."""
    ref = credentials_ref(cluster, region, Role.OPERATOR)
    auth = NatsAuth()
    if ref is not None:
        data = await deps.kube.read_secret(namespace, ref.name)
        auth = auth_from_secret(ref, data)
    ca_secret = ca_secret_for_clients(cluster, region) if region.nats.tls else None
    if ca_secret is not None:
        data = await deps.kube.read_secret(namespace, ca_secret)
        if data is None or CA_KEY not in data:
            raise CredentialsSecretMissingError(
                f"Secret {ca_secret} has no {CA_KEY} (spec.regions[{region.name}].nats.tls)"
            )
        auth = replace(auth, ca_pem=data[CA_KEY].decode())
    return auth


async def resolve_auth(deps: Deps, ctx: BuildContext) -> NatsAuth:
    return await region_auth(deps, ctx.namespace, ctx.name, ctx.region)


async def emit(deps: Deps, ref: ClusterObject, type_: str, reason: str, message: str) -> None:
    """Events are best effort: failing to report must never fail the reconcile."""
    try:
        await deps.kube.emit_event(ref, type_=type_, reason=reason, message=message)
    except SurgeError as exc:
        log.warning("event_failed", reason=reason, error=exc.message)


def _changed(cs: ClusterState, update: ConditionUpdate) -> bool:
    old = get_condition(cs.status.conditions, update.type)
    return old is None or (old.status, old.reason, old.message) != (
        update.status,
        update.reason,
        update.message,
    )


async def reconcile(
    deps: Deps,
    ref: ClusterObject,
    *,
    spec_raw: Mapping[str, Any],
    generation: int | None,
    raw_status: dict[str, Any] | None,
) -> None:
    """Converge one cluster. Raises the most important SurgeError after recording it."""
    cs = deps.registry.ensure(ref, raw_status)
    started = deps.monotonic()
    async with cs.lock:
        try:
            await _reconcile_locked(deps, cs, spec_raw=spec_raw, generation=generation)
        except SurgeError as exc:
            deps.metrics.reconciles.labels(outcome="error").inc()
            deps.metrics.errors.labels(reason=exc.reason).inc()
            raise
        else:
            deps.metrics.reconciles.labels(outcome="success").inc()
            log.debug("reconciled", seconds=round(deps.monotonic() - started, 3))
        finally:
            deps.metrics.reconcile_seconds.observe(deps.monotonic() - started)
            cs.last_reconcile = deps.monotonic()


async def _reconcile_locked(
    deps: Deps,
    cs: ClusterState,
    *,
    spec_raw: Mapping[str, Any],
    generation: int | None,
) -> None:
    ref = cs.ref
    now = deps.now()
    if not cs.status.conditions:
        cs.status = cs.status.model_copy(
            update={"conditions": initial_conditions(now, generation), "phase": Phase.PENDING}
        )
        await _flush(deps, cs, force=True)

    try:
        spec = parse(spec_raw)
    except InvalidSpecError as exc:
        invalid = [
            stream_failed(exc.reason, exc.message),
            workers_failed(exc.reason, exc.message),
        ]
        fresh = any(_changed(cs, u) for u in invalid)
        cs.status = cs.status.model_copy(
            update={
                "conditions": apply_updates(cs.status.conditions, invalid, now, generation),
                "phase": Phase.ERROR,
                "observed_generation": generation,
            }
        )
        await _flush(deps, cs, force=True)
        if fresh:
            await emit(deps, ref, "Warning", exc.reason, exc.message)
        raise

    ctx = build_context(deps, ref, spec, cs.status)
    errors: list[SurgeError] = []
    updates: list[ConditionUpdate] = []
    fresh_errors: list[SurgeError] = []

    def fail(exc: SurgeError, update: ConditionUpdate) -> None:
        errors.append(exc)
        updates.append(update)
        if _changed(cs, update):  # report each new problem once, not on every retry
            fresh_errors.append(exc)

    pending = restore_pending(spec, cs.status)
    try:
        await apply_managed_nats(deps, ctx, cs)
    except KubeApiError as exc:
        fail(exc, stream_failed(exc.reason, f"managed NATS: {exc.message}"))

    try:
        changed = await apply_owned(deps, ctx, cs, hold_workloads=pending)
        if changed:
            log.info("owned_objects_applied", changed=changed)
        if pending:
            restored = await restore_gate(deps, ctx, cs)
            updates.append(restored)
            if _changed(cs, restored):
                failed = restored.reason in ("RestoreFailed", "RestoreConflict")
                kind = "Warning" if failed else "Normal"
                await emit(deps, ref, kind, restored.reason, restored.message)
            pending = restored.status is not ConditionStatus.TRUE
            if not pending:
                # Restored just now: say so in status first, then start the workers in this
                # pass, so no worker ever exists while the object still reads "Restoring".
                cs.status = cs.status.model_copy(
                    update={
                        "conditions": apply_updates(
                            cs.status.conditions, [restored], now, generation
                        )
                    }
                )
                await _flush(deps, cs, force=True)
                await apply_owned(deps, ctx, cs)
    except KubeApiError as exc:
        fail(exc, workers_failed(exc.reason, exc.message))

    pipeline = None
    try:
        pipeline = pipeline_config(ctx.stream, spec, ctx.region)
    except ValueError as exc:  # surge_workers ConfigError (e.g. stream replicas 2)
        fail(InvalidSpecError(str(exc)), stream_failed(InvalidSpecError.reason, str(exc)))
    if pending:
        # The restore creates the streams itself; provisioning first would make it fail.
        updates.append(stream_failed("WaitingForRestore", "the restore Job creates the streams"))
    elif pipeline is not None:
        try:
            auth = await resolve_auth(deps, ctx)
            summary = await deps.js.provision(ctx.nats_url, auth, pipeline)
            cs.stream_ready = True
            cs.auth = auth
            cs.nats_url = ctx.nats_url
            updates.append(stream_ready(ctx.stream))
            if summary:
                log.info("stream_provisioned", stream=ctx.stream, changes=summary)
                await emit(deps, ref, "Normal", "StreamProvisioned", summary)
        except SurgeError as exc:
            cs.stream_ready = False
            fail(exc, stream_failed(exc.reason, exc.message))

    if gateway_blocked(ctx):
        message = "spec.gateway.tokensSecret is not set: the gateway is not deployed"
        if cs.gateway_warned is not True:
            cs.gateway_warned = True
            log.warning("gateway_not_deployed", reason="GatewayTokensMissing")
            await emit(deps, ref, "Warning", "GatewayTokensMissing", message)
    if not any(u.type is ConditionType.WORKERS_READY for u in updates):
        desired = (
            manual_replicas(spec) if not spec.autoscaling.enabled else cs.workers.spec_replicas
        )
        updates.append(
            workers_update(cs.workers.replicas, cs.workers.ready, desired, gateway_pair(cs, spec))
        )
    active = cs.status.active_region or spec.primary_region().name
    if not (spec.failover.enabled and len(spec.regions) > 1) or _unknown(
        cs, ConditionType.FAILED_OVER
    ):
        # With several regions the failover loop owns this condition (its reasons come
        # from the probes); here it is only initialised.
        updates.append(failed_over_update(active, spec.primary_region().name))
    if not spec.autoscaling.enabled:
        updates.append(scaling_update(0, 0, False, ""))
    elif _unknown(cs, ConditionType.SCALING):
        updates.append(
            ConditionUpdate(
                ConditionType.SCALING, ConditionStatus.FALSE, "Stable", "Waiting for metrics."
            )
        )
    if not spec.degradation.enabled or _unknown(cs, ConditionType.DEGRADED):
        updates.append(
            degraded_update(0, "Degradation is off." if not spec.degradation.enabled else "")
        )

    conditions = apply_updates(cs.status.conditions, updates, now, generation)
    permanent = [e for e in errors if is_permanent(e)]
    cs.status = cs.status.model_copy(
        update={
            "conditions": conditions,
            "phase": phase_of(conditions, error=bool(permanent)),
            "observed_generation": generation,
            "stream": ctx.stream,
            "selector": selector_string(selector_labels(ctx, "worker")),
            "active_region": active,
            "replicas": cs.workers.replicas,
            "ready_replicas": cs.workers.ready,
            "degradation_level": cs.status.degradation_level or 0,
        }
    )
    await _flush(deps, cs, force=True)
    if pending and not errors and spec.restore_from is not None:
        what = f"{spec.restore_from.cluster}/{spec.restore_from.backup}"
        seen = get_condition(cs.status.conditions, ConditionType.RESTORED)
        if seen is not None and seen.reason in ("RestoreFailed", "RestoreConflict"):
            raise BackupError(f"restore of {what} failed: {seen.message}")
        raise RestorePendingError(f"waiting for the restore of {what}")
    if not errors:
        cs.spec = spec
        cs.generation = generation
        return
    for error in fresh_errors:
        log.warning("reconcile_failed", reason=error.reason, error=error.message)
        await emit(deps, ref, "Warning", error.reason, error.message)
    raise (permanent or errors)[0]


def _unknown(cs: ClusterState, type_: ConditionType) -> bool:
    cond = get_condition(cs.status.conditions, type_)
    return cond is None or cond.status is ConditionStatus.UNKNOWN


async def _flush(deps: Deps, cs: ClusterState, *, force: bool = False) -> None:
    try:
        wrote = await cs.flush(
            deps.kube,
            interval=deps.config.status.interval_seconds,
            force=force,
            now=deps.monotonic(),
        )
    except KubeApiError as exc:
        # The object may be gone (deleted mid-reconcile); status is rewritten next time.
        log.warning("status_write_failed", error=exc.message)
        return
    if wrote:
        deps.metrics.status_writes.inc()


async def finalize(
    deps: Deps, ref: ClusterObject, *, spec_raw: Mapping[str, Any], retry: int
) -> str:
    """Honour spec.stream.deletionPolicy. Returns what was done, for the Event."""
    cs = deps.registry.get(ref.uid)
    try:
        spec = parse(spec_raw)
    except InvalidSpecError:
        deps.registry.forget(ref.uid)
        return "spec invalid; nothing provisioned to clean up"
    status = cs.status if cs is not None else MessagingClusterStatus()
    ctx = build_context(deps, ref, spec, status)
    if spec.stream.deletion_policy.value == "retain":
        result = f"stream {ctx.stream} retained (deletionPolicy: retain)"
    else:
        auth = await resolve_auth(deps, ctx)
        deleted = await deps.js.delete(ctx.nats_url, auth, pipeline_config(ctx.stream, spec))
        result = (
            f"deleted {', '.join(deleted) or 'nothing (already gone)'} (deletionPolicy: delete)"
        )
    deps.registry.forget(ref.uid)
    deps.snapshots.forget(ref)
    deps.metrics.forget(ref.namespace, ref.name)
    return result
