"""Pure builders: a `BuildContext` in, the manifests the cluster should own out.

`desired_objects(ctx)` is the ordered list that the lifecycle handler applies. The order
matters on first creation: identity and configuration exist before the Deployments whose
pods reference them (a pod whose ServiceAccount or envFrom ConfigMap is missing fails to
start and backs off), and the Deployments exist before the objects that only select them.
`obsolete_objects(ctx)` names what must go when a feature is switched off (the gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from surge_operator.resources.backup import backup_cronjob_name, build_backup_cronjob
from surge_operator.resources.config_map import build_config_map
from surge_operator.resources.context import BuildContext, owner_reference
from surge_operator.resources.deployment import build_worker_deployment
from surge_operator.resources.gateway import build_gateway_deployment, build_gateway_service
from surge_operator.resources.identity import (
    build_role,
    build_role_binding,
    build_service_account,
)
from surge_operator.resources.labels import gateway_name
from surge_operator.resources.nats.config import managed_regions
from surge_operator.resources.nats.network_policy import nats_policy_name
from surge_operator.resources.network_policy import build_network_policy, policy_name
from surge_operator.resources.pdb import build_gateway_pdb, build_worker_pdb

__all__ = [
    "BuildContext",
    "ObjectRef",
    "backups_switched_off",
    "desired_objects",
    "gateway_blocked",
    "obsolete_objects",
    "owner_reference",
    "ref_of",
]


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    meta = obj["metadata"]
    return ObjectRef(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])


def _gateway_enabled(ctx: BuildContext) -> bool:
    # The gateway refuses to start without tenant tokens (it never runs unauthenticated),
    # so without a tokens Secret there is nothing useful to deploy; the reconcile reports
    # that on the WorkersReady message and in an Event instead.
    return ctx.spec.gateway.enabled and ctx.spec.gateway.tokens_secret is not None


def gateway_blocked(ctx: BuildContext) -> bool:
    """The spec asks for a gateway but gives it no tokens Secret."""
    return ctx.spec.gateway.enabled and ctx.spec.gateway.tokens_secret is None


def desired_objects(ctx: BuildContext) -> list[dict[str, Any]]:
    objects = [
        build_service_account(ctx),
        build_role(ctx),
        build_role_binding(ctx),
        build_config_map(ctx),
        build_worker_deployment(ctx),
        build_worker_pdb(ctx),
    ]
    if _gateway_enabled(ctx):
        objects += [
            build_gateway_deployment(ctx),
            build_gateway_service(ctx),
            build_gateway_pdb(ctx),
        ]
    if ctx.owns_network_policy:
        objects.append(build_network_policy(ctx))
    if ctx.spec.backup is not None:
        objects.append(build_backup_cronjob(ctx))
    return objects


def workload_kinds() -> frozenset[str]:
    """Kinds whose pods process messages: held back while a restore is pending."""
    return frozenset({"Deployment"})


def obsolete_objects(ctx: BuildContext) -> list[ObjectRef]:
    out: list[ObjectRef] = []
    if not _gateway_enabled(ctx):
        name = gateway_name(ctx)
        out += [
            ObjectRef("apps/v1", "Deployment", ctx.namespace, name),
            ObjectRef("v1", "Service", ctx.namespace, name),
            ObjectRef("policy/v1", "PodDisruptionBudget", ctx.namespace, name),
        ]
    if not ctx.owns_network_policy:
        out += [
            ObjectRef("networking.k8s.io/v1", "NetworkPolicy", ctx.namespace, name)
            for name in [
                policy_name(ctx),
                *(nats_policy_name(ctx, r) for r in managed_regions(ctx)),
            ]
        ]
    return out


def backups_switched_off(ctx: BuildContext, had_backups: bool) -> list[ObjectRef]:
    """The CronJob to delete when spec.backup was removed (status still shows backups)."""
    if ctx.spec.backup is not None or not had_backups:
        return []
    return [ObjectRef("batch/v1", "CronJob", ctx.namespace, backup_cronjob_name(ctx.name))]
