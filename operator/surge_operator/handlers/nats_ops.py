"""Operating managed NATS from the operator: observe -> natsops.plan -> act, every few
seconds per MessagingCluster (kopf daemon in lifecycle.py, only while the Lease holds).

Reads the StatefulSet and its pods from the API server and the servers' own view through
the system account (`NatsAdmin`); acts with one step per pass: reload, delete one pod
(the StatefulSet is OnDelete; the pod's preStop puts its server in lame-duck mode), apply
a new server count, or remove a scaled-in server from the JetStream meta group. The
NatsReady condition says what it is doing, or why it refuses.

Nothing is remembered between passes: whether a server runs the rendered configuration is
what the server itself reports (its config tag, see resources.nats.config), so a reload is
done when it took, and an operator restart or a Lease handover neither forgets nor repeats
one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import nats.errors

from surge_operator.api import (
    ConditionStatus,
    ConditionType,
    NatsRegionStatus,
    NatsStreamStatus,
    Region,
)
from surge_operator.errors import CredentialsSecretMissingError, SurgeError
from surge_operator.handlers.deps import Deps
from surge_operator.handlers.nats import load_passwords
from surge_operator.handlers.reconcile import emit
from surge_operator.handlers.state import ClusterState
from surge_operator.jetstream import NatsAuth
from surge_operator.logs import get_logger
from surge_operator.natsops.admin import NatsAdmin
from surge_operator.natsops.plan import PodView, RegionObservation, Step, next_step
from surge_operator.resources import BuildContext, ObjectRef
from surge_operator.resources.jetstream import PASSWORD_KEY
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import config_digest, managed_regions
from surge_operator.resources.nats.credentials import credentials_secret_name
from surge_operator.resources.nats.names import nats_name, region_url
from surge_operator.resources.nats.services import nats_selector
from surge_operator.resources.nats.statefulset import CONFIG_HASH_ANNOTATION, build_statefulset
from surge_operator.resources.nats.tls import CA_KEY, ca_secret_for_clients
from surge_operator.status import ConditionUpdate, apply_updates

log = get_logger()


NATS_TICK_SECONDS = 5.0


def _pod_view(pod: Mapping[str, Any]) -> PodView:
    meta = pod.get("metadata") or {}
    conditions = (pod.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    revision = (meta.get("labels") or {}).get("controller-revision-hash", "")
    return PodView(
        str(meta.get("name")), str(revision), ready and not meta.get("deletionTimestamp")
    )


async def system_auth(deps: Deps, ctx: BuildContext, region: Region) -> NatsAuth:
    """The system-account user (reload, peer removal, server and JetStream health)."""
    data = await deps.kube.read_secret(
        ctx.namespace, credentials_secret_name(ctx.name, Role.SYSTEM)
    )
    if not data or PASSWORD_KEY not in data:
        raise CredentialsSecretMissingError(
            f"Secret {credentials_secret_name(ctx.name, Role.SYSTEM)} has no {PASSWORD_KEY}"
        )
    auth = NatsAuth(user=Role.SYSTEM.value, password=data[PASSWORD_KEY].decode())
    ca = ca_secret_for_clients(ctx.name, region) if region.nats.tls else None
    if ca is not None:
        tls = await deps.kube.read_secret(ctx.namespace, ca)
        if tls and CA_KEY in tls:
            auth = replace(auth, ca_pem=tls[CA_KEY].decode())
    return auth


async def observe_region(
    deps: Deps, ctx: BuildContext, region: Region, admin: NatsAdmin
) -> tuple[RegionObservation, str, NatsAuth] | None:
    sts = await deps.kube.get(
        "apps/v1", "StatefulSet", ctx.namespace, nats_name(ctx.name, region.name)
    )
    if sts is None or region.nats.managed is None:
        return None
    pods = await deps.kube.list_pods(ctx.namespace, nats_selector(ctx, region))
    url = region_url(ctx.name, ctx.namespace, region)
    auth = await system_auth(deps, ctx, region)
    servers = await admin.servers(url, auth)
    js = await admin.jetstream(url, auth)
    applied = ((sts.get("metadata") or {}).get("annotations") or {}).get(CONFIG_HASH_ANNOTATION)
    status = sts.get("status") or {}
    obs = RegionObservation(
        desired_servers=region.nats.managed.servers,
        statefulset_replicas=int((sts.get("spec") or {}).get("replicas") or 0),
        update_revision=str(status.get("updateRevision") or ""),
        pods=[_pod_view(p) for p in pods],
        servers=servers,
        streams=js.streams,
        meta_leader=js.meta_leader,
        meta_peers=js.meta_peers,
        config_hash=applied,
    )
    return obs, url, auth


def nats_condition(steps: Mapping[str, Step]) -> ConditionUpdate:
    refused = {r: s for r, s in steps.items() if s.kind == "Refuse"}
    if refused:
        text = "; ".join(f"{r}: {s.reason}" for r, s in sorted(refused.items()))
        return ConditionUpdate(
            ConditionType.NATS_READY, ConditionStatus.FALSE, "ChangeRefused", text
        )
    busy = {r: s for r, s in steps.items() if s.kind != "Idle"}
    if busy:
        text = "; ".join(f"{r}: {s.reason}" for r, s in sorted(busy.items()))
        return ConditionUpdate(ConditionType.NATS_READY, ConditionStatus.FALSE, "Changing", text)
    return ConditionUpdate(
        ConditionType.NATS_READY, ConditionStatus.TRUE, "AllServersCurrent", "every stream current"
    )


async def act(
    deps: Deps,
    cs: ClusterState,
    ctx: BuildContext,
    region: Region,
    obs: RegionObservation,
    url: str,
    auth: NatsAuth,
    admin: NatsAdmin,
) -> Step:
    """Carry out the plan's one step (a refused reload re-plans at once as a restart)."""
    step = next_step(obs)
    if step.kind == "Reload":
        by_name = {s.name: s for s in obs.servers}
        refused = set()
        for name in step.targets:
            error = await admin.reload(url, auth, by_name[name].server_id)
            if error is not None:
                log.warning("nats_reload_refused", server=name, error=error)
                refused.add(name)
        if refused:
            step = next_step(replace(obs, reload_refused=frozenset(refused)))
    if step.kind == "RestartPod":
        await deps.kube.delete(ObjectRef("v1", "Pod", ctx.namespace, step.targets[0]))
        await emit(deps, cs.ref, "Normal", "NatsServerRestarted", step.reason)
    elif step.kind == "ScaleTo" and step.replicas is not None:
        passwords = await load_passwords(deps, ctx)
        sts = build_statefulset(
            ctx, region, replicas=step.replicas, config_hash=config_digest(ctx, region, passwords)
        )
        await deps.kube.apply(sts, field_manager=deps.config.apply.field_manager)
        await emit(deps, cs.ref, "Normal", "NatsServersScaled", step.reason)
    elif step.kind == "RemovePeer":
        error = await admin.remove_peer(url, auth, step.targets[0])
        if error is not None:
            log.warning("nats_peer_remove_failed", server=step.targets[0], error=error)
    elif step.kind == "Refuse":
        log.warning("nats_change_refused", region=region.name, reason=step.reason)
    if step.kind not in ("Idle", "Wait"):
        log.info("nats_step", region=region.name, step=step.kind, reason=step.reason)
    return step


def region_status(region: str, obs: RegionObservation, step: Step, stream: str) -> NatsRegionStatus:
    """This cluster's streams only (its own stream, dead letters and KV buckets)."""
    ours = [v for v in obs.streams if v.name.startswith((stream, f"KV_{stream}"))]
    return NatsRegionStatus(
        region=region,
        servers=len(obs.pods),
        servers_ready=sum(1 for p in obs.pods if p.ready),
        meta_leader=obs.meta_leader,
        step=f"{step.kind}: {step.reason}"[:1024],
        streams=[
            NatsStreamStatus(name=v.name, replicas=v.replicas, current=v.current, lag=v.lag)
            for v in ours[:32]
        ],
    )


def _export(deps: Deps, ctx: BuildContext, status: NatsRegionStatus) -> None:
    labels = (ctx.namespace, ctx.name, status.region)
    deps.metrics.nats_servers_ready.labels(*labels).set(status.servers_ready)
    for stream in status.streams:
        deps.metrics.nats_stream_lag.labels(*labels, stream.name).set(stream.lag)
        deps.metrics.nats_stream_current.labels(*labels, stream.name).set(stream.current)


async def nats_tick(deps: Deps, cs: ClusterState, ctx: BuildContext) -> dict[str, Step]:
    """One observe -> plan -> act pass over every managed region; NatsReady, status.nats
    and the NATS metrics."""
    admin = deps.nats_admin
    if admin is None:
        return {}
    steps: dict[str, Step] = {}
    statuses: list[NatsRegionStatus] = []
    for region in managed_regions(ctx):
        try:
            observed = await observe_region(deps, ctx, region, admin)
        except (SurgeError, nats.errors.Error, OSError, TimeoutError) as exc:
            steps[region.name] = Step("Wait", f"cannot observe the servers: {exc}")
            continue
        if observed is None:
            steps[region.name] = Step("Wait", "StatefulSet not created yet")
            continue
        step = steps[region.name] = await act(deps, cs, ctx, region, *observed, admin)
        status = region_status(region.name, observed[0], step, ctx.stream)
        statuses.append(status)
        _export(deps, ctx, status)
    if steps:
        cs.status = cs.status.model_copy(
            update={
                "conditions": apply_updates(
                    cs.status.conditions, [nats_condition(steps)], deps.now(), cs.generation
                ),
                "nats": statuses,
            }
        )
    return steps
