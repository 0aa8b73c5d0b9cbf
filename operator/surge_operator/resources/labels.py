"""Shared names, labels and selectors for everything a MessagingCluster owns.

Selectors use only the immutable identity labels (name, instance, component): a
Deployment's selector cannot change after creation, so nothing that may change (version,
extra labels) can ever be part of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Literal

from surge_operator import __version__
from surge_operator.resources.context import BuildContext, owner_reference

Component = Literal["worker", "gateway", "config", "identity", "network", "nats", "backup"]

APP_NAME = "surge"
MANAGED_BY = "surge-operator"
CLUSTER_LABEL = "surge.dev/cluster"
CONFIG_HASH_ANNOTATION = "surge.dev/config-hash"


def label_value(value: str) -> str:
    """A valid label value (<= 63 chars): long names keep a prefix plus a stable digest."""
    if len(value) <= 63:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    return f"{value[:52].rstrip('-_.')}-{digest}"


def selector_labels(ctx: BuildContext, component: Component) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": label_value(ctx.name),
        "app.kubernetes.io/component": component,
    }


def labels(ctx: BuildContext, component: Component) -> dict[str, str]:
    return {
        **selector_labels(ctx, component),
        "app.kubernetes.io/part-of": APP_NAME,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": __version__,
        CLUSTER_LABEL: label_value(ctx.name),
    }


def pod_labels(ctx: BuildContext, component: Component) -> dict[str, str]:
    # Extra labels go first so they can never override the identity labels.
    return {**dict(ctx.extra_pod_labels), **labels(ctx, component)}


def selector_string(selector: Mapping[str, str]) -> str:
    """`k=v,k=v`, the form the scale subresource's labelSelectorPath expects."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def metadata(ctx: BuildContext, name: str, component: Component) -> dict[str, object]:
    return {
        "name": name,
        "namespace": ctx.namespace,
        "labels": labels(ctx, component),
        "ownerReferences": [owner_reference(ctx)],
    }


# -- names of the owned objects, in one place so handlers and tests agree


def worker_name(ctx: BuildContext) -> str:
    return worker_deployment_name(ctx.name)


def worker_deployment_name(cluster: str) -> str:
    return f"{cluster}-worker"


def gateway_name(ctx: BuildContext) -> str:
    return f"{ctx.name}-gateway"


def config_name(ctx: BuildContext) -> str:
    return f"{ctx.name}-config"


def identity_name(ctx: BuildContext) -> str:
    """ServiceAccount, Role and RoleBinding share the cluster's name."""
    return f"{ctx.name}-surge"
