"""ServiceAccount, Role and RoleBinding for the cluster's pods.

Least privilege: the pods only need to read their own ConfigMap and the Secrets the spec
names (by resourceName; no list, no watch). They do not mount a token by default
(`automountServiceAccountToken: false` on the pod), so this Role matters only to tools
that opt in.
"""

from __future__ import annotations

from typing import Any

from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import config_name, identity_name, metadata
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.credentials import credentials_secret_name
from surge_operator.resources.nats.tls import ca_secret_for_clients


def secret_names(ctx: BuildContext) -> list[str]:
    names = {
        r.nats.credentials_secret.name
        for r in ctx.spec.regions
        if r.nats.credentials_secret is not None
    }
    if any(r.nats.managed is not None for r in ctx.spec.regions):
        names |= {credentials_secret_name(ctx.name, role) for role in (Role.WORKER, Role.GATEWAY)}
    for region in ctx.spec.regions:
        ca = ca_secret_for_clients(ctx.name, region) if region.nats.tls else None
        if ca is not None:
            names.add(ca)
    if ctx.spec.gateway.tokens_secret is not None:
        names.add(ctx.spec.gateway.tokens_secret.name)
    return sorted(names)


def build_service_account(ctx: BuildContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(ctx, identity_name(ctx), "identity"),
        "automountServiceAccountToken": False,
    }


def build_role(ctx: BuildContext) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [config_name(ctx)],
            "verbs": ["get"],
        }
    ]
    secrets = secret_names(ctx)
    if secrets:
        rules.append(
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": secrets,
                "verbs": ["get"],
            }
        )
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(ctx, identity_name(ctx), "identity"),
        "rules": rules,
    }


def build_role_binding(ctx: BuildContext) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(ctx, identity_name(ctx), "identity"),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": identity_name(ctx),
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": identity_name(ctx), "namespace": ctx.namespace}
        ],
    }
