"""`surge bench operator`: converge N MessagingClusters on a real control plane and measure
the operator doing it.

Starts (unless --kubeconfig is given) the local control plane from tools/surge_cluster and
always a nats-server, installs the CRD, runs `surge-operator` as its own process, creates N
MessagingClusters (minReplicas 0, no gateway: the bench measures the control plane, not
worker processes) and reports:

- converge_s: from the first create until every cluster is Ready with
  observedGeneration == generation (goal < 60 s for 200);
- rss_peak_mib / rss_steady_mib of the operator process (goal < 200 MiB);
- idle status writes per second once converged (the throttle at work), reconciles,
  errors; then deletes everything and reports how long the finalizers took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from surge_operator.api import GROUP, PLURAL, VERSION
from surge_operator.status import ready_on_generation

NAMESPACE = "surge-bench"
CRD = Path(__file__).resolve().parents[2] / "crds" / "messagingcluster.yaml"


@dataclass
class OperatorBench:
    clusters: int
    converge_s: float
    first_ready_s: float
    rss_peak_mib: float
    rss_steady_mib: float
    idle_status_writes_per_s: float
    reconciles: int
    errors: int
    delete_s: float
    goal_converge_s: float = 60.0
    goal_rss_mib: float = 200.0

    @property
    def passed(self) -> bool:
        return self.converge_s < self.goal_converge_s and self.rss_peak_mib < self.goal_rss_mib

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[str, float]:
    """Sum of every sample per metric name (labels folded)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out


def _manifest(i: int, nats_url: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MessagingCluster",
        "metadata": {"name": f"bench-{i:04d}"},
        "spec": {
            "regions": [{"name": "east", "role": "primary", "nats": {"url": nats_url}}],
            "stream": {"subjectPrefix": f"bench{i:04d}", "deletionPolicy": "delete"},
            "gateway": {"enabled": False},
            "autoscaling": {"minReplicas": 0, "maxReplicas": 4},
        },
    }


@contextmanager
def _control_plane(kubeconfig: Path | None, root: Path) -> Iterator[tuple[Path, Any]]:
    from kubernetes import config

    if kubeconfig is not None:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        yield kubeconfig, api
        return
    from surge_cluster.testing import local_cluster

    # Many nodes that run nothing: kwok's fake nodes, not real kubelets.
    with local_cluster(root / "kube", fake_nodes=True) as cluster:
        yield cluster.kubeconfig, cluster.api_client


def _items(custom: Any) -> list[dict[str, Any]]:
    listing: dict[str, Any] = custom.list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL
    )
    return list(listing["items"])


def run_bench(
    clusters: int,
    *,
    kubeconfig: Path | None = None,
    timeout: float = 300.0,
    idle_s: float = 15.0,
    settle_s: float = 10.0,
) -> OperatorBench:
    from kubernetes import client, utils

    from surge_workers.natsserver import NatsServer

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="surge-bench-op-")))
        kcfg, api = stack.enter_context(_control_plane(kubeconfig, root))
        nats = NatsServer(store_dir=root / "nats").start()
        stack.callback(nats.cleanup)

        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        except client.exceptions.ApiException as exc:
            if exc.status != 409:
                raise
        utils.create_from_yaml(api, str(CRD), apply=True)  # type: ignore[no-untyped-call]
        time.sleep(1.0)  # Established

        metrics_port = _free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kcfg),
            "SURGE_NAMESPACES": NAMESPACE,
            "SURGE_LEASE_NAMESPACE": NAMESPACE,
            "SURGE_HEALTH_PORT": "0",
            "SURGE_METRICS_PORT": str(metrics_port),
            "SURGE_LOG_FORMAT": "json",
            "SURGE_LOG_LEVEL": "warning",
        }
        log = (root / "operator.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "surge_operator.run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

        stack.callback(stop)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                _scrape(metrics_port)
                break
            except OSError:
                time.sleep(0.2)

        start = time.monotonic()
        peak = 0.0
        for i in range(clusters):
            custom.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, _manifest(i, nats.url)
            )
            if i % 20 == 0:
                peak = max(peak, _rss_mib(proc.pid))
        first_ready: float | None = None
        while True:
            items = _items(custom)
            ready = sum(1 for item in items if ready_on_generation(item))
            peak = max(peak, _rss_mib(proc.pid))
            if ready and first_ready is None:
                first_ready = time.monotonic() - start
            if ready == clusters:
                break
            if time.monotonic() - start > timeout or proc.poll() is not None:
                raise RuntimeError(
                    f"{ready}/{clusters} Ready after {time.monotonic() - start:.0f} s "
                    f"(operator log: {root / 'operator.log'})"
                )
            time.sleep(0.5)
        converge = time.monotonic() - start

        # Let the first autoscaling ticks after Ready settle (first decision, first
        # figures), then count what an idle fleet writes.
        time.sleep(settle_s)
        before = _scrape(metrics_port)
        t0 = time.monotonic()
        steady = []
        while time.monotonic() - t0 < idle_s:
            steady.append(_rss_mib(proc.pid))
            time.sleep(1.0)
        after = _scrape(metrics_port)
        idle_writes = (
            after.get("surge_operator_status_writes_total", 0)
            - before.get("surge_operator_status_writes_total", 0)
        ) / (time.monotonic() - t0)
        peak = max(peak, *steady)

        delete_start = time.monotonic()
        custom.delete_collection_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
        while _items(custom):
            if time.monotonic() - delete_start > timeout:
                break
            time.sleep(0.5)
        delete_s = time.monotonic() - delete_start

        return OperatorBench(
            clusters=clusters,
            converge_s=round(converge, 2),
            first_ready_s=round(first_ready or converge, 2),
            rss_peak_mib=round(peak, 1),
            rss_steady_mib=round(sum(steady) / len(steady), 1),
            idle_status_writes_per_s=round(idle_writes, 2),
            reconciles=int(after.get("surge_operator_reconciles_total", 0)),
            errors=int(after.get("surge_operator_errors_total", 0)),
            delete_s=round(delete_s, 2),
        )


def render(result: OperatorBench, as_json: bool) -> str:
    if as_json:
        return json.dumps(result.as_dict(), indent=2)
    rows = [
        ("MessagingClusters", f"{result.clusters}"),
        (
            "converged (all Ready)",
            f"{result.converge_s:.1f} s  (goal < {result.goal_converge_s:.0f} s)",
        ),
        ("first Ready", f"{result.first_ready_s:.1f} s"),
        (
            "operator RSS peak",
            f"{result.rss_peak_mib:.0f} MiB  (goal < {result.goal_rss_mib:.0f} MiB)",
        ),
        ("operator RSS steady", f"{result.rss_steady_mib:.0f} MiB"),
        ("idle status writes", f"{result.idle_status_writes_per_s:.2f} /s"),
        ("reconciles / errors", f"{result.reconciles:.0f} / {result.errors:.0f}"),
        ("delete all (finalizers)", f"{result.delete_s:.1f} s"),
        ("result", "PASS" if result.passed else "FAIL"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
