"""kubectl against one kubeconfig, the only way `surge bench nats` touches a cluster, and
the bounded waits for what it created to be ready."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from surge_cluster.readiness import NotReadyError, wait_until
from surge_operator.errors import SurgeError
from surge_operator.status import ready_on_generation

READY_WITHIN_S = 900.0


class ClusterBenchError(SurgeError):
    """The bench could not set up or reach what it measures on the cluster."""


class Kubectl:
    """kubectl against one kubeconfig: the only way the driver touches the cluster."""

    def __init__(self, kubectl: str, kubeconfig: Path) -> None:
        self.base = [kubectl, "--kubeconfig", str(kubeconfig)]

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.base, *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise ClusterBenchError(f"kubectl {' '.join(args[:3])}: {done.stderr.strip()[-600:]}")
        return done

    def apply(self, obj: dict[str, Any]) -> None:
        self("apply", "-f", "-", input=json.dumps(obj))

    def json(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self("get", *args, "-o", "json").stdout)
        return out

    def exec_command(self, namespace: str, pod: str) -> list[str]:
        return [*self.base, "exec", "-n", namespace, pod, "-c", "bench", "--"]


def wait(what: str, check: Callable[[], bool], within: float = READY_WITHIN_S) -> None:
    """The local cluster's bounded wait, looking every 2 s (each look is a kubectl run)."""
    try:
        wait_until(what, check, timeout=within, interval=2.0)
    except NotReadyError as err:
        raise ClusterBenchError(str(err)) from err


def cluster_ready(kubectl: Kubectl, namespace: str, name: str) -> bool:
    return ready_on_generation(kubectl.json("messagingcluster", name, "-n", namespace))


def deployment_ready(kubectl: Kubectl, namespace: str, name: str, replicas: int = 1) -> bool:
    found = kubectl("get", "deployment", name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    ready = json.loads(found.stdout).get("status", {}).get("readyReplicas") or 0
    return int(ready) >= replicas


def pod_running(kubectl: Kubectl, namespace: str, name: str) -> bool:
    pod = kubectl.json("pod", name, "-n", namespace)
    phase = str(pod.get("status", {}).get("phase"))
    if phase in ("Failed", "Succeeded"):
        raise ClusterBenchError(f"bench pod {name} ended ({phase}) before the bench")
    return phase == "Running"
