"""In-cluster NATS for the operator's e2e tests: a nats-server Deployment and Service in the
test's own namespace, from the locally built `surge-nats-server` image (the same test
manifest as tests/e2e/cluster/manifests/nats.yaml, one per test, so a test may stop it).

Pods and the operator (a host process on a node, see surge_cluster.netns) use the Service
name, `nats://<name>.<namespace>.svc.cluster.local:4222`, as users write it. Test code that
talks to NATS itself runs its coroutine on a thread in a node's network namespace
(`ClusterNats.run`) and dials the Service's ClusterIP: it has no cluster DNS in-process.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster.support import NATS_IMAGE, kube_json, pods, ready

T = TypeVar("T")

CLIENT_PORT, LEAF_PORT, MONITOR_PORT = 4222, 7422, 8222
NATS_UID = 65532


def nats_objects(
    name: str,
    namespace: str,
    *,
    config: str | None = None,
    store: Path | None = None,
    region: str | None = None,
) -> list[dict[str, Any]]:
    """Deployment + Service (+ ConfigMap when `config` is given: a nats-server config file
    that must set the JetStream store to /data). `store` keeps JetStream on that host
    directory (a restart keeps the data: no StorageClass needed), pinned to `region`'s node."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "surge-e2e"}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    args = ["--jetstream", "--store_dir", "/data", "--http_port", str(MONITOR_PORT)]
    mounts: list[dict[str, Any]] = [{"name": "data", "mountPath": "/data"}]
    volumes: list[dict[str, Any]] = [
        {"name": "data", "hostPath": {"path": str(store), "type": "Directory"}}
        if store
        else {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}
    ]
    objects: list[dict[str, Any]] = []
    if config is not None:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta,
                "data": {"nats.conf": config},
            }
        )
        args = ["-c", "/etc/nats/nats.conf", "--http_port", str(MONITOR_PORT)]
        mounts.append({"name": "config", "mountPath": "/etc/nats", "readOnly": True})
        volumes.append({"name": "config", "configMap": {"name": name}})
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NATS_UID,
            "runAsGroup": NATS_UID,
            "fsGroup": NATS_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "nats",
                "image": NATS_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "args": args,
                "ports": [
                    {"name": "client", "containerPort": CLIENT_PORT},
                    {"name": "leaf", "containerPort": LEAF_PORT},
                    {"name": "monitor", "containerPort": MONITOR_PORT},
                ],
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": "monitor"},
                    "periodSeconds": 1,
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if region:
        pod_spec["nodeSelector"] = {"topology.kubernetes.io/region": region}
    objects.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        }
    )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": {"app.kubernetes.io/name": name},
                "ports": [
                    {"name": "client", "port": CLIENT_PORT, "targetPort": "client"},
                    {"name": "leaf", "port": LEAF_PORT, "targetPort": "leaf"},
                ],
            },
        }
    )
    return objects


@dataclass
class ClusterNats:
    """One nats-server in the cluster: `.url` for manifests, `.run(coro)` for the test."""

    cluster: KubeCluster
    namespace: str
    name: str = "nats"
    config: str | None = None
    store: Path | None = None
    region: str | None = None

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{CLIENT_PORT}"

    @property
    def ip_url(self) -> str:
        """The same server by ClusterIP, for code in a node's network namespace."""
        svc = kube_json(self.cluster, "get", "service", self.name, "-n", self.namespace)
        return f"nats://{svc['spec']['clusterIP']}:{CLIENT_PORT}"

    def deploy(self) -> ClusterNats:
        objects = nats_objects(
            self.name, self.namespace, config=self.config, store=self.store, region=self.region
        )
        self.cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"kind": "List", "apiVersion": "v1", "items": objects}),
        )
        return self.wait_ready()

    def _selector(self) -> str:
        return f"app.kubernetes.io/name={self.name}"

    def wait_ready(self, timeout: float = 120.0) -> ClusterNats:
        wait(
            f"{self.name} Ready in {self.namespace}",
            lambda: (
                (p := pods(self.cluster, self.namespace, self._selector()))
                and all(ready(x) for x in p)
            ),
            timeout,
        )
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """The server goes away (scaled to 0: SIGTERM, the pod is gone)."""
        self._scale(0)
        wait(
            f"{self.name} gone",
            lambda: not self._all_pods(),
            timeout,
        )

    def start(self) -> None:
        """It comes back (with its data when it has a `store`)."""
        self._scale(1)
        self.wait_ready()

    def _scale(self, replicas: int) -> None:
        self.cluster.kubectl(
            "scale", "deployment", self.name, "-n", self.namespace, f"--replicas={replicas}"
        )

    def _all_pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = kube_json(
            self.cluster, "get", "pods", "-n", self.namespace, "-l", self._selector()
        )["items"]
        return items

    def run(self, coro: Callable[[str], Awaitable[T]]) -> T:
        """asyncio.run(coro(url)) inside a node's network namespace, url = the ClusterIP's."""
        url = self.ip_url
        return self.cluster.in_node(lambda: asyncio.run(_awaited(coro(url))))


async def _awaited(aw: Awaitable[T]) -> T:
    return await aw


def wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def require_real_nodes(cluster: KubeCluster) -> None:
    """The operator runs as a host process on a node to reach in-cluster NATS: skip where
    there is no local real node (kind & co run tests/e2e/cluster instead)."""
    if cluster.cluster is None or not cluster.cluster.real_nodes:
        pytest.skip("needs the local real-node cluster (the operator runs on a node)")


def host_store() -> Path:
    """A host directory the nats-server (uid 65532) may write: /var/tmp, not pytest's tmp
    (its parents are 0700 root). The caller removes it with `remove_store`."""
    path = Path(tempfile.mkdtemp(prefix="surge-e2e-nats-", dir="/var/tmp"))
    path.chmod(0o700)
    shutil.chown(path, NATS_UID, NATS_UID)
    return path


def remove_store(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
