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

import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from surge_operator import __version__
from surge_operator.natsbench.kubectl import (
    ClusterBenchError,
    Kubectl,
    cluster_ready,
    deployment_ready,
    pod_running,
    wait,
)
from surge_operator.natsbench.load import parse_result
from surge_operator.natsbench.manifests import (
    DURABLE,
    LAZY,
    ONE_EACH,
    TOKENS_SECRET,
    Shape,
    bench_pod,
    durable_ctx,
    load_args,
    messaging_cluster,
    tokens_secret,
)
from surge_operator.natsbench.result import NatsBenchResult
from surge_operator.natsbench.rounds import Targets, measure
from surge_operator.resources.labels import gateway_name, worker_name

NAMESPACE = "surge-bench-nats"
BENCH_IMAGE = f"surge-bench:{__version__}"
REPO = Path(__file__).resolve().parents[3]


@contextmanager
def bench_namespace(kubectl: Kubectl, namespace: str, image: str, shape: Shape) -> Iterator[None]:
    """Both MessagingClusters and bench pods, Ready; what the bench made is deleted
    afterwards (the namespace too when the bench created it)."""
    existed = kubectl("get", "namespace", namespace, check=False).returncode == 0
    if not existed:
        kubectl("create", "namespace", namespace)
    pods = [f"{name}-client" for name in (DURABLE, LAZY)]
    try:
        kubectl.apply(tokens_secret(namespace, secrets.token_urlsafe(24)))
        for name, interval in ((DURABLE, "always"), (LAZY, "2m")):
            kubectl.apply(messaging_cluster(name, namespace, interval, shape))
        for name in (DURABLE, LAZY):
            wait(f"MessagingCluster {name} Ready", partial(cluster_ready, kubectl, namespace, name))
        ctx = durable_ctx(namespace)
        wanted = ((gateway_name(ctx), shape.gateways), (worker_name(ctx), shape.workers))
        for deployment, replicas in wanted:
            ready = partial(deployment_ready, kubectl, namespace, deployment, replicas)
            wait(f"deployment {deployment}", ready)
        for name, pod in zip((DURABLE, LAZY), pods, strict=True):
            kubectl.apply(bench_pod(pod, namespace, name, image))
        for pod in pods:
            wait(f"bench pod {pod}", partial(pod_running, kubectl, namespace, pod), 300)
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
    shape: Shape,
) -> NatsBenchResult:
    result = NatsBenchResult(messages=messages, size=size, rounds=rounds, where=where)
    with bench_namespace(kubectl, namespace, image, shape):
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
        "4 HTTP connections, batches of 500, through the gateway's Service to "
        f"{shape.gateways} gateway and {shape.workers} worker pod(s); managed NATS without "
        "its exporter"
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


def run_local(
    messages: int, size: int, rounds: int, root: Path, shape: Shape = ONE_EACH
) -> NatsBenchResult:
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
            shape=shape,
        )


def run_kubeconfig(
    kubeconfig: Path,
    *,
    namespace: str,
    image: str,
    messages: int,
    size: int,
    rounds: int,
    shape: Shape = ONE_EACH,
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
        shape=shape,
    )
