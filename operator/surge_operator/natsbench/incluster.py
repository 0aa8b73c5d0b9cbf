"""`surge bench nats` on Kubernetes: the figures on NATS that Surge's operator runs.

Two MessagingClusters with managed NATS (3 servers each) in one namespace:
`bench-always` (the durable default: `syncInterval: always`, R3) with a gateway and one
noop worker, and `bench-lazy` (nats-server's default `2m`) with NATS only. Beside each, a
bench pod of the `surge-bench` image (the Surge image plus natscli), labelled as one of
that cluster's NATS clients and holding its operator credentials in its environment from
the generated Secret. The driver runs every measurement by `kubectl exec` into those pods:
`nats bench` on the servers, and Surge's own run (`python3 -m surge_operator.natsbench.load`)
through the gateway's Service. So every client sits where a user's would, on a node,
behind the cluster's network and NetworkPolicies.

With no kubeconfig the bench starts its own local cluster with real nodes, loads the
images and installs the chart (as `helm install`); with one, the chart must be installed
already with `rbac.secretNamespaces` covering the bench's namespace (cluster-wide mode),
and the bench image must be pullable by the nodes (`--image`).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from surge_operator import __version__
from surge_operator.api import GROUP, VERSION, parse_spec
from surge_operator.errors import SurgeError
from surge_operator.natsbench.load import parse_result
from surge_operator.natsbench.result import NatsBenchResult
from surge_operator.natsbench.rounds import Targets, measure
from surge_operator.resources import BuildContext
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.labels import gateway_name, worker_name
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.credentials import credentials_secret_name
from surge_operator.resources.nats.names import region_url
from surge_operator.resources.nats.network_policy import CLIENT_LABEL
from surge_workers.contract import Priority as WirePriority
from surge_workers.contract import consumer_name

NAMESPACE = "surge-bench-nats"
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
READY_WITHIN_S = 900.0
BENCH_IMAGE = f"surge-bench:{__version__}"
REPO = Path(__file__).resolve().parents[3]


class ClusterBenchError(SurgeError):
    """The bench could not set up or reach what it measures on the cluster."""


def messaging_cluster(name: str, namespace: str, sync_interval: str) -> dict[str, Any]:
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
                "replicas": 1,
                "rateLimitPerTenant": 1e9,
                "tokensSecret": {"name": TOKENS_SECRET, "key": "tokens"},
            }
            if durable
            else {"enabled": False}
        ),
        # One worker, as on loopback: the bench measures a pipeline, not the autoscaler.
        "autoscaling": {"minReplicas": 1 if durable else 0, "maxReplicas": 1},
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


def _wait(what: str, check: Callable[[], bool], within: float = READY_WITHIN_S) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise ClusterBenchError(f"timed out after {within:.0f} s waiting for {what}")
        time.sleep(2.0)


def _ready(kubectl: Kubectl, namespace: str, name: str) -> bool:
    mc = kubectl.json("messagingcluster", name, "-n", namespace)
    conditions = mc.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _deployment_ready(kubectl: Kubectl, namespace: str, name: str) -> bool:
    found = kubectl("get", "deployment", name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    ready = json.loads(found.stdout).get("status", {}).get("readyReplicas") or 0
    return int(ready) >= 1


def _pod_running(kubectl: Kubectl, namespace: str, name: str) -> bool:
    pod = kubectl.json("pod", name, "-n", namespace)
    phase = str(pod.get("status", {}).get("phase"))
    if phase in ("Failed", "Succeeded"):
        raise ClusterBenchError(f"bench pod {name} ended ({phase}) before the bench")
    return phase == "Running"


@contextmanager
def bench_namespace(kubectl: Kubectl, namespace: str, image: str) -> Iterator[None]:
    """Both MessagingClusters and bench pods, Ready; what the bench made is deleted
    afterwards (the namespace too when the bench created it)."""
    existed = kubectl("get", "namespace", namespace, check=False).returncode == 0
    if not existed:
        kubectl("create", "namespace", namespace)
    pods = [f"{name}-client" for name in (DURABLE, LAZY)]
    try:
        kubectl.apply(tokens_secret(namespace, secrets.token_urlsafe(24)))
        for name, interval in ((DURABLE, "always"), (LAZY, "2m")):
            kubectl.apply(messaging_cluster(name, namespace, interval))
        for name in (DURABLE, LAZY):
            _wait(f"MessagingCluster {name} Ready", partial(_ready, kubectl, namespace, name))
        ctx = durable_ctx(namespace)
        for deployment in (gateway_name(ctx), worker_name(ctx)):
            ready = partial(_deployment_ready, kubectl, namespace, deployment)
            _wait(f"deployment {deployment}", ready)
        for name, pod in zip((DURABLE, LAZY), pods, strict=True):
            kubectl.apply(bench_pod(pod, namespace, name, image))
        for pod in pods:
            _wait(f"bench pod {pod}", partial(_pod_running, kubectl, namespace, pod), 300)
        yield
    finally:
        for pod in pods:
            kubectl("delete", "pod", pod, "-n", namespace, "--wait=false", check=False)
        for name in (DURABLE, LAZY):
            kubectl("delete", "messagingcluster", name, "-n", namespace, check=False)
        kubectl("delete", "secret", TOKENS_SECRET, "-n", namespace, check=False)
        if not existed:
            kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def run_on_cluster(
    kubectl: Kubectl,
    *,
    namespace: str,
    image: str,
    where: str,
    messages: int,
    size: int,
    rounds: int,
) -> NatsBenchResult:
    result = NatsBenchResult(messages=messages, size=size, rounds=rounds, where=where)
    with bench_namespace(kubectl, namespace, image):
        durable = kubectl.exec_command(namespace, f"{DURABLE}-client")
        lazy = kubectl.exec_command(namespace, f"{LAZY}-client")
        load = [*durable, *load_args(namespace, messages, size)]

        def surge() -> float:
            done = subprocess.run(load, capture_output=True, text=True, check=False, timeout=900)
            if done.returncode != 0:
                raise ClusterBenchError(f"Surge's run failed: {(done.stdout + done.stderr)[-800:]}")
            return parse_result(done.stdout)

        measure(result, Targets(durable=[*durable, "nats"], lazy=[*lazy, "nats"], surge=surge))
    result.notes.append(
        "nats bench: asynchronous publish (batches of 500), file storage, from a pod; surge: "
        "4 HTTP connections, batches of 500, through the gateway's Service to one gateway "
        "and one worker pod; managed NATS without its exporter"
    )
    return result


def built_images() -> list[Path]:
    """`tools/image/build.sh --bench`: the surge and surge-bench archives (built if stale)."""
    script = REPO / "tools" / "image" / "build.sh"
    done = subprocess.run([str(script), "--bench"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ClusterBenchError(f"tools/image/build.sh --bench failed:\n{done.stderr[-1500:]}")
    out = subprocess.run(
        [str(script), "--print-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [Path(out) / f"surge-{__version__}.tar", Path(out) / f"surge-bench-{__version__}.tar"]


def install_chart(kubectl: Kubectl, helm: Sequence[str], namespace: str) -> None:
    """The chart as the README installs it, with Secrets rights in the bench namespace
    (which must exist for the chart's Role in it)."""
    kubectl("create", "namespace", namespace)
    subprocess.run(
        [
            *helm, "install", "surge", str(REPO / "charts" / "surge"),
            "--namespace", "surge-system", "--create-namespace",
            "--set", f"rbac.secretNamespaces={{{namespace}}}",
        ],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    kubectl("rollout", "status", "deployment/surge", "-n", "surge-system", timeout=600)


def run_local(messages: int, size: int, rounds: int, root: Path) -> NatsBenchResult:
    """Start the local cluster with real nodes, load the images, install the chart, bench."""
    from surge_cluster.testing import local_cluster, node_prerequisites

    missing = node_prerequisites()
    if missing:
        raise ClusterBenchError(
            f"a local cluster with real nodes needs {', '.join(missing)} (make k8s); "
            "or bench a cluster you have (--kubeconfig), or no Kubernetes (--loopback)"
        )
    images = built_images()
    with local_cluster(root / "kube") as cluster:
        cluster.load_images(images)
        kubectl = Kubectl(cluster.tool("kubectl"), cluster.kubeconfig)
        helm = [cluster.tool("helm"), "--kubeconfig", str(cluster.kubeconfig)]
        try:
            install_chart(kubectl, helm, NAMESPACE)
        except subprocess.CalledProcessError as err:
            raise ClusterBenchError(f"helm install failed: {err.stderr[-800:]}") from err
        return run_on_cluster(
            kubectl,
            namespace=NAMESPACE,
            image=BENCH_IMAGE,
            where="managed NATS on a local cluster with real nodes (3 servers per cluster)",
            messages=messages,
            size=size,
            rounds=rounds,
        )


def run_kubeconfig(
    kubeconfig: Path, *, namespace: str, image: str, messages: int, size: int, rounds: int
) -> NatsBenchResult:
    import shutil

    kubectl_bin = shutil.which("kubectl")
    if kubectl_bin is None:
        raise ClusterBenchError("kubectl not found on PATH")
    kubectl = Kubectl(kubectl_bin, kubeconfig)
    return run_on_cluster(
        kubectl,
        namespace=namespace,
        image=image,
        where=f"managed NATS on the cluster of {kubeconfig} (3 servers per cluster)",
        messages=messages,
        size=size,
        rounds=rounds,
    )
