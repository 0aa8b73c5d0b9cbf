"""The objects `surge bench nats` puts on a cluster, built by pure functions: two
MessagingClusters with managed NATS, the tenant token Secret, and the bench pods the
driver execs into, plus the in-pod run's arguments. Names come from the operator's own
builders, so the bench follows them when they change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from surge_operator.api import GROUP, VERSION, parse_spec
from surge_operator.resources import BuildContext
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.labels import gateway_name
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.credentials import credentials_secret_name
from surge_operator.resources.nats.names import region_url
from surge_operator.resources.nats.network_policy import CLIENT_LABEL
from surge_workers.contract import Priority as WirePriority
from surge_workers.contract import consumer_name

DURABLE, LAZY = "bench-always", "bench-lazy"
REGION = "east"
TENANT = "bench"
TOKENS_SECRET = "bench-tokens"
#: the same in-flight window as the loopback run's noop worker
WORKER_CONCURRENCY = 64
WORKER_PREFETCH = 1024
PARTITIONS = 16
#: a bench pod never outlives the bench by more than this, even if the driver dies
POD_DEADLINE_S = 4 * 3600


@dataclass(frozen=True)
class Shape:
    """How many gateway and worker pods the durable cluster runs (fixed: the bench
    measures a pipeline of this size, not the autoscaler)."""

    gateways: int = 1
    workers: int = 1


#: one gateway and one worker: the same pipeline as the loopback run
ONE_EACH = Shape()


def messaging_cluster(
    name: str, namespace: str, sync_interval: str, shape: Shape = ONE_EACH
) -> dict[str, Any]:
    """One region of managed NATS (3 servers); the durable one also takes traffic."""
    durable = sync_interval == "always"
    spec: dict[str, Any] = {
        "regions": [
            {
                "name": REGION,
                "role": "primary",
                # No exporter: nothing scrapes it here, and it would take CPU from the rows.
                "nats": {"managed": {"syncInterval": sync_interval, "metrics": False}},
            }
        ],
        "stream": {"deletionPolicy": "delete", "partitions": PARTITIONS},
        "gateway": (
            {
                "replicas": shape.gateways,
                "rateLimitPerTenant": 1e9,
                "tokensSecret": {"name": TOKENS_SECRET, "key": "tokens"},
            }
            if durable
            else {"enabled": False}
        ),
        "autoscaling": {
            "minReplicas": shape.workers if durable else 0,
            "maxReplicas": shape.workers,
        },
        "workers": {
            "handler": "surge_workers.handlers:noop",
            "composer": {"enabled": False},
            "concurrency": WORKER_CONCURRENCY,
            "env": [
                {"name": "SURGE_PREFETCH", "value": str(WORKER_PREFETCH)},
                {"name": "SURGE_PRIORITIES", "value": "normal"},
            ],
        },
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MessagingCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def bench_pod(name: str, namespace: str, cluster: str, image: str) -> dict[str, Any]:
    """The pod the driver execs into: natscli and the Surge load client, as one of
    ``cluster``'s NATS clients with its operator identity (stream admin for `nats bench`)."""
    creds = credentials_secret_name(cluster, Role.OPERATOR)
    region = parse_spec(messaging_cluster(cluster, namespace, "always")["spec"]).regions[0]

    def secret(key: str) -> dict[str, Any]:
        return {"secretKeyRef": {"name": creds, "key": key}}

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {CLIENT_LABEL: cluster, "app.kubernetes.io/name": "surge-bench"},
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": POD_DEADLINE_S,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "bench",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    # Idle until the driver execs the measurements in.
                    "command": ["sleep", str(POD_DEADLINE_S)],
                    "env": [
                        {"name": "NATS_URL", "value": region_url(cluster, namespace, region)},
                        {"name": "NATS_USER", "valueFrom": secret("user")},
                        {"name": "NATS_PASSWORD", "valueFrom": secret("password")},
                        {
                            "name": "SURGE_BENCH_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": TOKENS_SECRET, "key": "token"}},
                        },
                        # natscli keeps its contexts under $HOME/.config
                        {"name": "HOME", "value": "/tmp"},
                    ],
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    }


def tokens_secret(namespace: str, token: str) -> dict[str, Any]:
    """The gateway's tenant tokens (its format) and the same token for the bench pod."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TOKENS_SECRET, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"tokens": json.dumps({TENANT: [token]}), "token": token},
    }


def durable_ctx(namespace: str) -> BuildContext:
    """The durable cluster as the operator's builders see it (its names come from them)."""
    return BuildContext(
        name=DURABLE,
        namespace=namespace,
        uid="bench",
        spec=parse_spec(messaging_cluster(DURABLE, namespace, "always")["spec"]),
    )


def load_args(namespace: str, messages: int, size: int) -> list[str]:
    """`python3 -m surge_operator.natsbench.load ...` for the durable cluster."""
    ctx = durable_ctx(namespace)
    stream = pipeline_config(ctx.stream, ctx.spec).stream
    return [
        "python3", "-m", "surge_operator.natsbench.load",
        "--gateway", f"http://{gateway_name(ctx)}.{namespace}.svc",
        "--tenant", TENANT,
        "--stream", stream,
        "--consumer", consumer_name(WirePriority.NORMAL),
        "--messages", str(messages),
        "--size", str(size),
    ]  # fmt: skip
