"""The operator as a real process against a real API server, and what watches it: run
`surge-operator` with a cluster's kubeconfig (kill -9, exit codes, its JSON log), create
and read MessagingClusters, record every value a Deployment's replicas take, and flood a
stream so the right scaling decision is known. Shared by the control-plane chaos
scenarios (control_plane_faults.py) and the operator's e2e tests (tests/e2e).

On the local real-node cluster the operator is a host process *on a node* (the node's
network namespace with the cluster DNS, surge_cluster.netns): it reaches the API server as
the kubelet does and in-cluster NATS by its Service name, as the chart's operator pod does.
Elsewhere (kwok nodes, kind) it runs on this host and reaches the API server only."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import nats
import nats.errors
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from surge_cluster.testing import KubeCluster
from surge_operator.api import GROUP, PLURAL, VERSION

CRD = Path(__file__).resolve().parents[3] / "crds" / "messagingcluster.yaml"


class WaitTimeoutError(TimeoutError):
    """Something awaited on the cluster did not happen within its bound."""


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.25
) -> Any:
    """Poll `check` until it returns something truthy and return that (an ApiException
    counts as not yet: the API server may be restarting); WaitTimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except ApiException as exc:
            last = exc
        if last and not isinstance(last, ApiException):
            return last
        if time.monotonic() > deadline:
            raise WaitTimeoutError(
                f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})"
            )
        time.sleep(every)


class OperatorProcess:
    """`python -m surge_operator.run` with the cluster's kubeconfig, on a real node when the
    cluster is the local real-node one (see the module's docstring)."""

    def __init__(self, cluster: KubeCluster, namespace: str, log_dir: Path, **env: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.log_path = log_dir / f"operator-{uuid.uuid4().hex[:6]}.log"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "SURGE_NAMESPACES": namespace,
            "SURGE_HEALTH_PORT": "0",
            "SURGE_METRICS_PORT": "0",
            "SURGE_LOG_FORMAT": "json",
            "SURGE_LEASE_NAMESPACE": namespace,
            "SURGE_PEERING": f"surge-{namespace}",
            "SURGE_LEASE_SECONDS": "4",
            "SURGE_STATUS_INTERVAL": "2",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "surge_operator.run"]
        local = self.cluster.cluster
        return self.cluster.on_node(argv) if local is not None and local.real_nodes else argv

    def start(self) -> OperatorProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no cleanup, no lease release (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def send(self, sig: signal.Signals) -> None:
        """SIGSTOP / SIGCONT (a frozen process: a GC pause, a stopped VM) while it runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one would not act on SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def events(self, *names: str, since: int = 0) -> list[dict[str, Any]]:
        """Its log's events of those names, from character `since` on (a `len(log())`
        taken earlier: what it wrote after that moment)."""
        return log_events(self.log()[since:], *names)


def log_events(log: str, *names: str) -> list[dict[str, Any]]:
    """The JSON log lines whose event is one of `names`, in order (other lines, e.g.
    tracebacks, skipped)."""
    out = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("event") in names:
                out.append(doc)
    return out


def install_crd(cluster: KubeCluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    # `kubectl wait` right after the apply can fail at once (exit 1) while discovery does
    # not know the new type yet: retry until it succeeds or the deadline passes.
    deadline = time.monotonic() + 90
    while True:
        done = cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=30s", "-f", str(CRD), check=False
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise WaitTimeoutError(
                f"the CRD was not Established within 90 s: {done.stderr.strip()}"
            )
        time.sleep(1.0)


def manifest(name: str, nats_url: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "regions": [{"name": "east", "role": "primary", "nats": {"url": nats_url}}],
        "gateway": {"enabled": False},
        "workers": {
            "handler": "surge_workers.handlers:simulated",
            "concurrency": 4,
            "env": [{"name": "SURGE_WORK_MS", "value": "20"}],
        },
    }
    # Clusters may share one nats-server: each needs its own subjects.
    body["stream"] = {"subjectPrefix": name.replace("-", "_"), **spec.pop("stream", {})}
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MessagingCluster",
        "metadata": {"name": name},
        "spec": body,
    }


class Clusters:
    """MessagingCluster CRUD through the kubernetes client (faster than kubectl)."""

    def __init__(self, cluster: KubeCluster, namespace: str) -> None:
        self.api = client.CustomObjectsApi(cluster.api_client)
        self.apps = client.AppsV1Api(cluster.api_client)
        self.core = client.CoreV1Api(cluster.api_client)
        self.namespace = namespace

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        result = self.api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, dict(body)
        )
        return cast(dict[str, Any], result)

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            result = self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cast(dict[str, Any], result)

    def patch_spec(self, name: str, spec: Mapping[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": dict(spec)}
        )

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        obj = self.get(name) or {}
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == type_:
                return dict(cond)
        return None

    def is_true(self, name: str, type_: str) -> bool:
        cond = self.condition(name, type_)
        return cond is not None and cond.get("status") == "True"

    def status(self, name: str) -> dict[str, Any]:
        return dict((self.get(name) or {}).get("status") or {})

    def deployment(self, name: str) -> Any:
        try:
            return self.apps.read_namespaced_deployment(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def api_answers(self) -> bool:
        try:
            self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, limit=1)
        except Exception:  # connection refused while it starts: not yet
            return False
        return True


class ReplicaHistory:
    """Every distinct value in the order seen. Pure: ReplicaLog feeds it."""

    def __init__(self) -> None:
        self.values: list[tuple[float, int]] = []

    def record(self, at: float, replicas: int) -> None:
        if not self.values or self.values[-1][1] != replicas:
            self.values.append((at, replicas))

    def current(self) -> int | None:
        return self.values[-1][1] if self.values else None

    def seen(self) -> list[int]:
        return [v for _, v in self.values]


class ReplicaLog(ReplicaHistory):
    """Every distinct spec.replicas of a Deployment, polled on a thread (API errors, e.g.
    while the API server is down, are skipped), so a reset or a flap in between is seen,
    not only the end."""

    def __init__(self, clusters: Clusters, name: str) -> None:
        super().__init__()
        self.clusters, self.name = clusters, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ReplicaLog:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._read()

    def _read(self) -> None:
        try:
            replicas = self.clusters.deployment(self.name).spec.replicas
        except Exception:  # the API server may be away: try again
            return
        self.record(time.monotonic(), replicas)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        # The value it ends at, too: a caller that stops right after seeing the last change
        # itself can be quicker than the poll (a run ended with [.., 11] at 12 replicas).
        self._read()


async def publish_messages(url: str, prefix: str, count: int, priority: str = "normal") -> None:
    """`count` messages of one priority, spread over 16 partitions, in batches of 200."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    run = uuid.uuid4().hex[:8]
    try:
        for start in range(0, count, 200):
            acks = []
            for i in range(start, min(start + 200, count)):
                body = {
                    "id": f"{run}-{i}",
                    "conversation_id": f"c{i % 101}",
                    "tenant": "t1",
                    "priority": priority,
                    "text": "my order never arrived",
                    "language": "en",
                }
                acks.append(
                    js.publish(
                        f"{prefix}.{priority}.{i % 16}",
                        json.dumps(body).encode(),
                        headers={
                            "Nats-Msg-Id": f"{run}-{i}",
                            "Surge-Conversation": body["conversation_id"],
                            "Surge-Tenant": "t1",
                            "Surge-Enqueued-At": f"{time.time():.6f}",
                        },
                    )
                )
            await asyncio.gather(*acks)
    finally:
        await nc.close()


class Publisher:
    """A steady open-loop flood on a thread of its own: `rate` normal messages a second
    into `prefix` until `stop()` (for load that must outlast an operator restart)."""

    def __init__(self, url: str, prefix: str, rate: int) -> None:
        self.url, self.prefix, self.rate = url, prefix, rate
        self.sent = 0
        self.failed_rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                asyncio.run(publish_messages(self.url, self.prefix, self.rate))
                self.sent += self.rate
            except (nats.errors.Error, TimeoutError, OSError):
                self.failed_rounds += 1  # a loaded machine: the next second tries again
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
