"""kopf handlers: thin. Load -> call reconcile/tick/finalize -> map errors to kopf.

    on.startup      settings (annotation storage, finalizer name, no kopf Events), clients
    on.create/update/resume   reconcile(): owned objects, JetStream, conditions
    on.delete       finalize(): honour spec.stream.deletionPolicy, then kopf drops the finalizer
    daemon          per cluster: autoscaling tick every tickSeconds + periodic drift resync
    timer           per cluster with spec.backup: backup status from the Jobs' run records
    daemon failover per cluster, its own loop: region probes and promotion every
                    probeIntervalSeconds, only while the Lease holds
    on.event        worker Deployments: replica figures for status and the autoscaler
    on.cleanup      close clients

Domain errors become kopf.TemporaryError (retry with exponential back-off) or
kopf.PermanentError (wait for the next spec change) here and only here.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import kopf

from surge_operator.api import GROUP, KIND, PLURAL, VERSION
from surge_operator.backup.conditions import parse_time
from surge_operator.errors import SurgeError, is_permanent
from surge_operator.handlers.autoscale import tick
from surge_operator.handlers.backup import BACKUP_TICK, backup_tick
from surge_operator.handlers.deps import Deps
from surge_operator.handlers.failover import failover_tick, multi_region
from surge_operator.handlers.nats_ops import NATS_TICK_SECONDS, nats_tick
from surge_operator.handlers.reconcile import (
    _flush,
    build_context,
    emit,
    figures_from_deployment,
    finalize,
    reconcile,
)
from surge_operator.handlers.state import WorkerFigures
from surge_operator.jetstream import NatsJetStreamOps, NatsPool
from surge_operator.kube import ClusterObject, HttpKubeApi
from surge_operator.kube_scale import KubeScaleTarget, Observed
from surge_operator.leader import Unfenced
from surge_operator.logs import bound_cluster, get_logger
from surge_operator.metrics import OperatorMetrics
from surge_operator.natsops.admin import PooledNatsAdmin
from surge_operator.resources.labels import MANAGED_BY
from surge_operator.settings import OperatorConfig
from surge_operator.snapshots import JetStreamSnapshots

FINALIZER = "surge.dev/finalizer"
ANNOTATION_PREFIX = "surge.dev"
#: Give up deleting the stream after this many failed attempts (NATS gone for good):
#: the MessagingCluster must not hang in Terminating forever.
DELETE_ATTEMPTS = 8

log = get_logger()


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf defaults that do not fit a structural CRD or a quiet operator."""
    # A structural schema prunes unknown status fields, so kopf's default progress storage
    # (status.kopf) would silently vanish and handlers would re-run forever. Annotations
    # survive pruning.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # We post our own Events (scaling, degradation, errors); kopf's per-handler Events
    # would add one write per handler run per cluster.
    settings.posting.enabled = False
    # Re-establish watches periodically: a silently dead TCP stream must not freeze us.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.networking.request_timeout = 30
    # Daemons are stopped when the object is deleted; give a running tick time to finish.
    settings.background.cancellation_polling = 1


def deps_of(memo: Any) -> Deps:
    deps = getattr(memo, "deps", None)
    if not isinstance(deps, Deps):
        raise kopf.TemporaryError("operator is still starting", delay=1)
    return deps


def to_kopf(exc: SurgeError, retry: int, cap: float = 60.0) -> Exception:
    text = f"{exc.reason}: {exc.message}"
    if is_permanent(exc):
        return kopf.PermanentError(text)
    if not exc.backoff:
        return kopf.TemporaryError(text, delay=exc.retry_after)
    delay = min(cap, exc.retry_after * (2 ** min(retry, 6)))
    return kopf.TemporaryError(text, delay=delay)


def cluster_ref(body: kopf.Body) -> ClusterObject:
    meta = body.get("metadata", {})
    return ClusterObject(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_kopf(settings)
    config = memo.get("config") or OperatorConfig.from_env()
    if config.namespaces:
        # Multi-namespace mode holds only Roles in the watched namespaces: kopf must not
        # scan CRDs and namespaces cluster-wide (Forbidden without a ClusterRole); the
        # namespaces are exact names and the CRD is known, so there is nothing to scan.
        settings.scanning.disabled = True
    metrics = memo.get("metrics") or OperatorMetrics()
    kube = memo.get("kube")
    if kube is None:  # run.main() passes its client; standalone kopf runs (tests) do not
        kube = memo["own_kube"] = await HttpKubeApi.connect()
    pool = NatsPool(connect_timeout=config.nats.connect_timeout_seconds)
    js = NatsJetStreamOps(pool)

    def scale_target(ref: ClusterObject, deployment: str, observed: Observed) -> KubeScaleTarget:
        return KubeScaleTarget(
            kube,
            namespace=ref.namespace,
            deployment=deployment,
            field_manager=config.apply.scale_field_manager,
            observed=observed,
        )

    memo["pool"] = pool
    memo["deps"] = Deps(
        config=config,
        kube=kube,
        js=js,
        snapshots=JetStreamSnapshots(js),
        scale_target=scale_target,
        nats_admin=PooledNatsAdmin(pool),
        leadership=memo.get("leadership") or Unfenced(),
        metrics=metrics,
    )
    log.info("operator_started", namespaces=list(config.namespaces) or "all")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    pool = memo.get("pool")
    if isinstance(pool, NatsPool):
        await pool.close()
    own = memo.get("own_kube")
    if isinstance(own, HttpKubeApi):
        await own.close()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile_cluster(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    deps = deps_of(memo)
    ref = cluster_ref(body)
    with bound_cluster(ref.namespace, ref.name, generation=body.meta.get("generation")):
        try:
            await _reconcile_body(deps, ref, body)
        except SurgeError as exc:
            raise to_kopf(exc, retry, deps.config.nats.retry_max_seconds) from None
    deps.metrics.clusters.set(len(deps.registry))


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def finalize_cluster(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    deps = deps_of(memo)
    ref = cluster_ref(body)
    with bound_cluster(ref.namespace, ref.name):
        try:
            done = await finalize(deps, ref, spec_raw=dict(body.get("spec") or {}), retry=retry)
        except SurgeError as exc:
            if retry + 1 >= DELETE_ATTEMPTS:
                message = f"gave up cleaning up after {retry + 1} attempts: {exc.message}"
                log.error("finalize_abandoned", reason=exc.reason, error=exc.message)
                await emit(deps, ref, "Warning", "CleanupAbandoned", message)
                deps.registry.forget(ref.uid)
                return
            await emit(deps, ref, "Warning", exc.reason, f"cleanup failed: {exc.message}")
            raise to_kopf(exc, retry, deps.config.nats.retry_max_seconds) from None
        log.info("finalized", result=done)
        await emit(deps, ref, "Normal", "Finalized", done)
    deps.metrics.clusters.set(len(deps.registry))


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10)
async def autoscaler(
    stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """~1 s loop per cluster. `body` is a live view: spec changes show up without restart."""
    deps = deps_of(memo)
    ref = cluster_ref(body)
    tick_no = 0
    # Spread the fleet's ticks over the period: after a restart every daemon starts at
    # once, and 200 clusters reading NATS in the same millisecond is a burst, not a load.
    await stopped.wait(random.uniform(0, 1.0))
    while not stopped:
        cs = deps.registry.get(ref.uid)
        period = 1.0
        if cs is not None and cs.spec is not None:
            period = cs.spec.autoscaling.tick_seconds
            tick_no += 1
            with bound_cluster(ref.namespace, ref.name, tick=tick_no):
                try:
                    await tick(deps, cs, tick_no)
                except Exception as exc:  # a tick must never kill the loop
                    log.exception("tick_failed", error=str(exc))
                since = deps.monotonic() - cs.last_reconcile
                if since >= deps.config.apply.resync_seconds and deps.leadership.holds():
                    # an apply: a write, like the tick's
                    await _resync(deps, ref, body)
        await stopped.wait(period)


@kopf.timer(GROUP, VERSION, PLURAL, interval=BACKUP_TICK, initial_delay=5)
async def backups(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Backup status is informational: failing to read it is logged, never raised."""
    deps = memo.get("deps")
    if not isinstance(deps, Deps):
        return
    ref = cluster_ref(body)
    cs = deps.registry.get(ref.uid)
    if cs is None or cs.spec is None or cs.spec.backup is None:
        return
    created = parse_time(body.meta.get("creationTimestamp")) or deps.now()
    with bound_cluster(ref.namespace, ref.name):
        try:
            await backup_tick(deps, cs, created)
        except Exception as exc:  # NATS away, records unreadable: next tick tries again
            log.warning("backup_status_failed", error=f"{type(exc).__name__}: {exc}")


#: Upper bound on one failover tick (probes and requests have their own, shorter
#: timeouts; merging a long tail after a heal is what can take this long).
FAILOVER_TICK_LIMIT = 600.0


@kopf.daemon(GROUP, VERSION, PLURAL, id="failover", cancellation_timeout=5)
async def failover_loop(
    stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """Region probes and promotion in their own loop per cluster, so a slow autoscaling
    tick (JetStream figures, Prometheus) can never delay a failover. Acts only while the
    Lease holds (`deps.leadership`)."""
    deps = deps_of(memo)
    ref = cluster_ref(body)
    await stopped.wait(random.uniform(0, 1.0))
    while not stopped:
        cs = deps.registry.get(ref.uid)
        period = 1.0
        if cs is not None and cs.spec is not None and multi_region(cs.spec):
            period = cs.spec.failover.probe_interval_seconds
            with bound_cluster(ref.namespace, ref.name):
                if not deps.leadership.holds():
                    log.warning("failover_paused_not_leader")
                else:
                    try:
                        await asyncio.wait_for(
                            failover_tick(deps, cs, body.meta.get("annotations")),
                            timeout=FAILOVER_TICK_LIMIT,
                        )
                    except TimeoutError:
                        log.error("failover_tick_timed_out", limit=FAILOVER_TICK_LIMIT)
                    except Exception as exc:  # probes must never kill the loop
                        log.exception("failover_tick_failed", error=str(exc))
        await stopped.wait(period)


@kopf.daemon(GROUP, VERSION, PLURAL, id="nats-operations", cancellation_timeout=5)
async def nats_operations(
    stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """Managed NATS: reload, roll, scale one safe step at a time (handlers/nats_ops.py).
    Acts only while the Lease holds; idle for clusters without a managed region."""
    deps = deps_of(memo)
    ref = cluster_ref(body)
    await stopped.wait(random.uniform(0, NATS_TICK_SECONDS))
    while not stopped:
        cs = deps.registry.get(ref.uid)
        spec = cs.spec if cs is not None else None
        if cs is not None and spec is not None and any(r.nats.managed for r in spec.regions):
            with bound_cluster(ref.namespace, ref.name):
                if not deps.leadership.holds():
                    log.warning("nats_operations_paused_not_leader")
                else:
                    try:
                        await nats_tick(deps, cs, build_context(deps, ref, spec, cs.status))
                        await _flush(deps, cs)
                    except Exception as exc:  # operations must never kill the loop
                        log.exception("nats_tick_failed", error=str(exc))
        await stopped.wait(NATS_TICK_SECONDS)


async def _reconcile_body(deps: Deps, ref: ClusterObject, body: kopf.Body) -> None:
    """Reconcile from the object as kopf hands it (spec, generation and status as stored)."""
    await reconcile(
        deps,
        ref,
        spec_raw=dict(body.get("spec") or {}),
        generation=body.meta.get("generation"),
        raw_status=dict(body.get("status") or {}),
    )


async def _resync(deps: Deps, ref: ClusterObject, body: kopf.Body) -> None:
    """Drift correction: re-apply everything. Server-side apply makes the no-op free."""
    try:
        await _reconcile_body(deps, ref, body)
    except SurgeError as exc:
        log.warning("resync_failed", reason=exc.reason, error=exc.message)


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
async def owned_deployment_event(
    body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """Replica figures of the worker and gateway Deployments, pushed by the watch: the
    autoscaler and WorkersReady never poll the API server for them."""
    deps = memo.get("deps")
    if not isinstance(deps, Deps):
        return
    component = (body.meta.get("labels") or {}).get("app.kubernetes.io/component")
    owners = [
        o
        for o in body.meta.get("ownerReferences") or []
        if o.get("kind") == KIND and o.get("controller")
    ]
    if component not in ("worker", "gateway") or not owners:
        return
    cs = deps.registry.get(owners[0]["uid"])
    if cs is None:
        return
    if type == "DELETED":
        if component == "worker":
            cs.workers = WorkerFigures()
        else:
            cs.gateway = None
        cs.last_reconcile = -1e9  # recreate on the next daemon pass, not in a minute
        return
    figures = figures_from_deployment(body, deps.config.apply.field_manager)
    if component == "worker":
        cs.workers = figures
    else:
        cs.gateway = figures
