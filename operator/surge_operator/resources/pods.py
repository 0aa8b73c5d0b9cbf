"""Pieces shared by the worker and gateway pod templates: hardened security contexts,
the credentials volume, the config envFrom, and the user's extra env."""

from __future__ import annotations

from typing import Any

from surge_operator.api_pods import PodTemplate
from surge_operator.resources.config_map import (
    CREDS_DIR,
    CREDS_FILE,
    NATS_CA_DIR,
    NATS_CA_FILE,
    TEMPLATES_DIR,
    TOKENS_DIR,
    TOKENS_FILE,
    config_hash,
    nats_ca_secret,
)
from surge_operator.resources.context import BuildContext
from surge_operator.resources.jetstream import (
    PASSWORD_KEY,
    TOKEN_KEY,
    USER_KEY,
    credentials_kind,
)
from surge_operator.resources.labels import (
    CONFIG_HASH_ANNOTATION,
    Component,
    config_name,
    identity_name,
    pod_labels,
    selector_labels,
)
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.credentials import credentials_ref
from surge_operator.resources.overrides import apply_overrides, merge_templates
from surge_workers.contract import Env

RUN_AS = 65532  # the conventional "nonroot" uid of distroless images
REGION_LABEL = "topology.kubernetes.io/region"


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


#: How long a readiness or liveness probe waits for an answer (see http_probes).
PROBE_TIMEOUT_SECONDS = 5


def http_probes(port: str) -> dict[str, Any]:
    """Probes of a data-plane container. The health server starts before the NATS
    connection, so /healthz answers within seconds of start-up: the startup probe gives a
    slow start (image pull done, Python importing) up to a minute before liveness applies,
    and readiness stays false until NATS is connected, with no restarts while NATS is down.
    Probes wait longer than Kubernetes' 1 s for an answer: in a surge the event loop is busy,
    not wedged, and a gateway restarted or taken out of its Service for answering late
    (seen on a 2-core cluster in the README quickstart) turns a surge into an outage.
    """
    return {
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": port},
            "periodSeconds": 5,
            "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": 10,
            "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
            "failureThreshold": 3,
        },
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _role(component: Component) -> Role:
    if component == "backup":
        return Role.BACKUP
    return Role.GATEWAY if component == "gateway" else Role.WORKER


def env(ctx: BuildContext, component: Component = "worker") -> list[dict[str, Any]]:
    """Downward-API identity, secret references, then the user's variables (which win)."""
    out: list[dict[str, Any]] = [
        {"name": Env.POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        # HTTP and metrics bind every address of the pod (the default 0.0.0.0), not only
        # the pod IP: `kubectl port-forward` reaches a pod through its loopback.
    ]
    # Each component gets only its own role's credentials (managed NATS), never the
    # operator's; an external NATS uses the one Secret the spec names.
    creds = credentials_ref(ctx.name, ctx.region, _role(component))
    if creds is not None and credentials_kind(creds) == "token":
        out.append(_secret_env(Env.NATS_TOKEN, creds.name, TOKEN_KEY))
    elif creds is not None and credentials_kind(creds) == "userpass":
        out.append(_secret_env(Env.NATS_USER, creds.name, USER_KEY))
        out.append(_secret_env(Env.NATS_PASSWORD, creds.name, PASSWORD_KEY))
    for var in ctx.spec.workers.env:
        item: dict[str, Any] = {"name": var.name}
        if var.value_from is not None:
            item["valueFrom"] = var.value_from.model_dump(by_alias=True, exclude_none=True)
        else:
            item["value"] = var.value or ""
        out = [e for e in out if e["name"] != var.name] + [item]
    return out


def volumes(
    ctx: BuildContext, *, with_tokens: bool = False, with_templates: bool = False
) -> list[dict[str, Any]]:
    # readOnlyRootFilesystem needs somewhere writable for Python's temp files.
    out: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    creds = ctx.region.nats.credentials_secret
    if creds is not None and credentials_kind(creds) == "creds":
        out.append(
            {
                "name": "nats-creds",
                "secret": {
                    "secretName": creds.name,
                    "items": [{"key": creds.key, "path": CREDS_FILE}],
                    "defaultMode": 0o440,
                },
            }
        )
    ca = nats_ca_secret(ctx)
    if ca is not None:
        out.append(
            {
                "name": "nats-ca",
                "secret": {
                    "secretName": ca,
                    "items": [{"key": NATS_CA_FILE, "path": NATS_CA_FILE}],
                    "defaultMode": 0o444,
                },
            }
        )
    tokens = ctx.spec.gateway.tokens_secret
    if with_tokens and tokens is not None:
        out.append(
            {
                "name": "tenant-tokens",
                "secret": {
                    "secretName": tokens.name,
                    "items": [{"key": tokens.key, "path": TOKENS_FILE}],
                    "defaultMode": 0o440,
                },
            }
        )
    templates = reply_templates(ctx) if with_templates else None
    if templates is not None:
        # Mounted whole (no subPath), so the kubelet refreshes the files when it changes.
        out.append(
            {"name": "reply-templates", "configMap": {"name": templates, "defaultMode": 0o444}}
        )
    return out


def reply_templates(ctx: BuildContext) -> str | None:
    """The ConfigMap of reply templates the workers mount, if the composer has one."""
    composer = ctx.spec.workers.composer
    return composer.templates_config_map if composer.enabled else None


def volume_mounts(
    ctx: BuildContext, *, with_tokens: bool = False, with_templates: bool = False
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    creds = ctx.region.nats.credentials_secret
    if creds is not None and credentials_kind(creds) == "creds":
        out.append({"name": "nats-creds", "mountPath": CREDS_DIR, "readOnly": True})
    if nats_ca_secret(ctx) is not None:
        out.append({"name": "nats-ca", "mountPath": NATS_CA_DIR, "readOnly": True})
    if with_tokens and ctx.spec.gateway.tokens_secret is not None:
        out.append({"name": "tenant-tokens", "mountPath": TOKENS_DIR, "readOnly": True})
    if with_templates and reply_templates(ctx) is not None:
        out.append({"name": "reply-templates", "mountPath": TEMPLATES_DIR, "readOnly": True})
    return out


def component_template(ctx: BuildContext, component: Component) -> PodTemplate | None:
    """The MessagingCluster's own override for one component's pods."""
    if component == "worker":
        return ctx.spec.workers.template
    if component == "gateway":
        return ctx.spec.gateway.template
    return None


def pod_template(
    ctx: BuildContext,
    component: Component,
    container: dict[str, Any],
    *,
    with_tokens: bool = False,
    termination_grace_seconds: int = 30,
) -> dict[str, Any]:
    container = {
        **container,
        "envFrom": [{"configMapRef": {"name": config_name(ctx)}}],
        "env": env(ctx, component),
        "securityContext": container_security_context(),
        "volumeMounts": volume_mounts(
            ctx, with_tokens=with_tokens, with_templates=component == "worker"
        ),
    }
    if ctx.image_pull_policy:
        container["imagePullPolicy"] = ctx.image_pull_policy
    resources = ctx.spec.workers.resources
    if resources is not None:
        container["resources"] = resources.model_dump(exclude_none=True)
    template = {
        "metadata": {
            "labels": pod_labels(ctx, component),
            "annotations": {CONFIG_HASH_ANNOTATION: config_hash(ctx)},
        },
        "spec": {
            "serviceAccountName": identity_name(ctx),
            # The pods talk to NATS, never to the Kubernetes API.
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
            "terminationGracePeriodSeconds": termination_grace_seconds,
            # Prefer nodes in the active region (kind/kwok nodes carry the standard label);
            # preferred, not required, so clusters without region labels still schedule.
            "affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "preference": {
                                "matchExpressions": [
                                    {
                                        "key": REGION_LABEL,
                                        "operator": "In",
                                        "values": [ctx.region.name],
                                    }
                                ]
                            },
                        }
                    ]
                }
            },
            "containers": [container],
            "volumes": volumes(ctx, with_tokens=with_tokens, with_templates=component == "worker"),
        },
    }
    override = merge_templates(ctx.pod_defaults, component_template(ctx, component))
    template = apply_overrides(template, override, selector=selector_labels(ctx, component))
    return avoid_drained_regions(template, ctx.spec.drained_regions)


def avoid_drained_regions(template: dict[str, Any], drained: list[str]) -> dict[str, Any]:
    """Never schedule on nodes of a drained region: `NotIn` ANDed into every required node
    selector term (after overrides, so a template's own nodeAffinity cannot undo a drain).
    Nodes without the region label still qualify."""
    if not drained:
        return template
    avoid = {"key": REGION_LABEL, "operator": "NotIn", "values": sorted(drained)}
    spec = template["spec"]
    node = dict(spec.get("affinity", {}).get("nodeAffinity", {}))
    required = dict(node.get("requiredDuringSchedulingIgnoredDuringExecution", {}))
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {**term, "matchExpressions": [*term.get("matchExpressions", []), avoid]} for term in terms
    ]
    node["requiredDuringSchedulingIgnoredDuringExecution"] = required
    spec["affinity"] = {**spec.get("affinity", {}), "nodeAffinity": node}
    return template
