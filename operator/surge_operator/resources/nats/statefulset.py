"""The StatefulSet of one managed region: `servers` nats-server pods with their own volumes.

- Parallel pod management: servers must start together to elect a JetStream meta leader;
  OrderedReady would wait for pod 0 to be ready, which needs a quorum it cannot have alone.
- OnDelete updates: the operator rolls one pod at a time itself, lame-duck first, and
  waits until JetStream reports every stream current before the next (see
  surge_operator.natsops); a plain RollingUpdate only waits for readiness.
- Spread across zones and hosts (ScheduleAnyway: a cluster without zone labels still
  schedules), and prefer the region's nodes.
- preStop puts the server in lame-duck mode: clients move away and Raft leaders hand over
  before the process stops.
- Probes read /healthz on the monitoring port: startup until JetStream is current,
  liveness once JetStream is enabled, readiness once the server accepts clients.
- The configuration comes from a Secret (it holds passwords) and is reloaded in place,
  so it is not hashed into the pod template: only changes that need a restart
  (image, resources, ports, TLS Secrets) make a new revision.
"""

from __future__ import annotations

from typing import Any

from surge_operator.api import ManagedNats, Region
from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import metadata, pod_labels
from surge_operator.resources.nats.config import (
    LAME_DUCK_GRACE_SECONDS,
    LAME_DUCK_SECONDS,
    config_secret_name,
    tls_enabled,
)
from surge_operator.resources.nats.metrics import exporter_container, scrape_annotations
from surge_operator.resources.nats.names import (
    CLIENT_PORT,
    CLUSTER_PORT,
    CONFIG_DIR,
    CONFIG_FILE,
    DATA_DIR,
    LEAFNODE_PORT,
    MONITOR_PORT,
    REGION_LABEL,
    RUN_DIR,
    TLS_DIR,
    headless_name,
    nats_name,
)
from surge_operator.resources.nats.services import nats_selector
from surge_operator.resources.nats.tls import client_tls_secret, route_tls_secret
from surge_operator.resources.overrides import apply_overrides, merge_templates
from surge_operator.resources.pods import container_security_context, pod_security_context

ZONE_KEY = "topology.kubernetes.io/zone"
HOST_KEY = "kubernetes.io/hostname"
NODE_REGION_KEY = "topology.kubernetes.io/region"


def _spread(ctx: BuildContext, region: Region, key: str) -> dict[str, Any]:
    return {
        "maxSkew": 1,
        "topologyKey": key,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": nats_selector(ctx, region)},
    }


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "monitor"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _nats_container(managed: ManagedNats, image: str, tls: bool) -> dict[str, Any]:
    mounts = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "run", "mountPath": RUN_DIR},
    ]
    if tls:
        mounts += [
            {"name": "tls-client", "mountPath": f"{TLS_DIR}/client", "readOnly": True},
            {"name": "tls-route", "mountPath": f"{TLS_DIR}/route", "readOnly": True},
        ]
    container: dict[str, Any] = {
        "name": "nats",
        "image": image,
        "command": ["nats-server", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [
            {"name": "client", "containerPort": CLIENT_PORT, "protocol": "TCP"},
            {"name": "cluster", "containerPort": CLUSTER_PORT, "protocol": "TCP"},
            {"name": "leafnodes", "containerPort": LEAFNODE_PORT, "protocol": "TCP"},
            {"name": "monitor", "containerPort": MONITOR_PORT, "protocol": "TCP"},
        ],
        "startupProbe": _probe("/healthz", period=10, failures=90),
        "livenessProbe": _probe("/healthz?js-enabled-only=true", period=30, failures=3),
        "readinessProbe": _probe("/healthz?js-server-only=true", period=10, failures=3),
        "lifecycle": {
            "preStop": {"exec": {"command": ["nats-server", "--signal", f"ldm={RUN_DIR}/nats.pid"]}}
        },
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    if managed.resources is not None:
        container["resources"] = managed.resources.model_dump(exclude_none=True)
    return container


def _volumes(ctx: BuildContext, region: Region, tls: bool) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {
            "name": "config",
            "secret": {"secretName": config_secret_name(ctx, region), "defaultMode": 0o440},
        },
        {"name": "run", "emptyDir": {"sizeLimit": "1Mi"}},
    ]
    if tls:
        volumes += [
            {"name": "tls-client", "secret": {"secretName": client_tls_secret(ctx.name, region)}},
            {"name": "tls-route", "secret": {"secretName": route_tls_secret(ctx.name, region)}},
        ]
    return volumes


def _volume_claim(managed: ManagedNats) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": managed.storage.size}},
    }
    if managed.storage.storage_class_name is not None:
        spec["storageClassName"] = managed.storage.storage_class_name
    return {"metadata": {"name": "data"}, "spec": spec}


CONFIG_HASH_ANNOTATION = "surge.dev/nats-config-hash"


def _overrides(ctx: BuildContext, managed: ManagedNats) -> dict[str, Any]:
    override = merge_templates(ctx.pod_defaults, managed.template)
    if managed.template is None or managed.template.resources is None:
        override.pop("resources", None)  # the data plane's sizes are not a server's
    return override


def build_statefulset(
    ctx: BuildContext,
    region: Region,
    *,
    replicas: int | None = None,
    config_hash: str | None = None,
) -> dict[str, Any]:
    """`replicas`: the count the operator's scaling steps have reached (default: the
    spec's); `config_hash`: the rendered configuration's digest, on the StatefulSet's own
    metadata (not the pod template: a configuration change is reloaded, not rolled)."""
    managed = region.nats.managed
    if managed is None:
        raise ValueError(f"region {region.name} is not managed")
    tls = tls_enabled(region)
    image = managed.image or ctx.default_image
    containers = [_nats_container(managed, image, tls)]
    if managed.metrics:
        containers.append(exporter_container(image))
    selector = nats_selector(ctx, region)
    template: dict[str, Any] = {
        "metadata": {
            "labels": {**pod_labels(ctx, "nats"), **selector},
            "annotations": scrape_annotations(managed),
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(),
            "terminationGracePeriodSeconds": LAME_DUCK_SECONDS + LAME_DUCK_GRACE_SECONDS + 20,
            "topologySpreadConstraints": [
                _spread(ctx, region, ZONE_KEY),
                _spread(ctx, region, HOST_KEY),
            ],
            "affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "preference": {
                                "matchExpressions": [
                                    {
                                        "key": NODE_REGION_KEY,
                                        "operator": "In",
                                        "values": [region.name],
                                    }
                                ]
                            },
                        }
                    ]
                }
            },
            "containers": containers,
            "volumes": _volumes(ctx, region, tls),
        },
    }
    template = apply_overrides(template, _overrides(ctx, managed), selector=selector)
    meta = metadata(ctx, nats_name(ctx.name, region.name), "nats")
    meta["labels"] = {**meta["labels"], REGION_LABEL: region.name}  # type: ignore[dict-item]
    if config_hash is not None:
        meta["annotations"] = {CONFIG_HASH_ANNOTATION: config_hash}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta,
        "spec": {
            "serviceName": headless_name(ctx.name, region.name),
            "replicas": managed.servers if replicas is None else replicas,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "persistentVolumeClaimRetentionPolicy": {
                # Scale-in removes the peer from JetStream first; its volume must not come
                # back with stale Raft state on the next scale-out.
                "whenScaled": "Delete",
                "whenDeleted": "Retain",
            },
            "selector": {"matchLabels": selector},
            "template": template,
            "volumeClaimTemplates": [_volume_claim(managed)],
        },
    }
