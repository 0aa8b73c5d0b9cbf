"""The operator under load and faults, against a real API server and nats-server:
a surge in the stream makes the worker Deployment follow within seconds and the worker
pods (the image, on real nodes) drain it; a killed operator's successor converges; two
replicas elect one leader and fail over. NATS runs in the test's namespace; the test
publishes from a node's network namespace (cluster_nats.run).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster_nats import ClusterNats
from tests.e2e.operator_support import (
    Clusters,
    OperatorProcess,
    eventually,
    install_crd,
    manifest,
    publish_messages,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def clusters(node_cluster: KubeCluster, node_namespace: str) -> Clusters:
    install_crd(node_cluster)
    return Clusters(node_cluster, node_namespace)


@pytest.fixture
def operators(
    node_cluster: KubeCluster, node_namespace: str, tmp_path: Path
) -> Iterator[list[OperatorProcess]]:
    started: list[OperatorProcess] = []
    yield started
    for op in started:
        op.stop()


def test_worker_replicas_follow_a_surge_within_seconds(
    operators: list[OperatorProcess],
    clusters: Clusters,
    node_cluster: KubeCluster,
    node_namespace: str,
    cluster_nats: ClusterNats,
    tmp_path: Path,
) -> None:
    op = OperatorProcess(node_cluster, node_namespace, tmp_path).start()
    operators.append(op)
    clusters.create(
        manifest(
            "surgey",
            cluster_nats.url,
            autoscaling={
                "minReplicas": 1,
                "maxReplicas": 4,
                "scaleDownStabilizationSeconds": 10,
                "serviceRateHint": 50,
            },
            workers={
                "handler": "surge_workers.handlers:simulated",
                "concurrency": 2,
                "env": [{"name": "SURGE_WORK_MS", "value": "40"}],
            },
            # Degradation stays on, as users run it. A burst this short usually raises no
            # level (it looks at sustained arrivals); should it reach 3, normal (not
            # sheddable) still drains: test_level_three_still_drains_normal_messages.
        )
    )
    eventually("Ready", lambda: clusters.is_true("surgey", "Ready"), timeout=180)
    assert clusters.deployment("surgey-worker").spec.replicas == 1

    surge_at = time.monotonic()
    cluster_nats.run(lambda url: publish_messages(url, "surgey", 3000))
    eventually(
        "the worker Deployment to scale up",
        lambda: clusters.deployment("surgey-worker").spec.replicas > 1,
        timeout=20,
    )
    reaction = time.monotonic() - surge_at
    assert reaction < 15, f"scaled up only after {reaction:.1f} s"
    mc = clusters.get("surgey")
    assert mc is not None
    eventually(
        "a scale entry in status.history",
        lambda: any(
            h["kind"] == "scale"
            for h in (clusters.get("surgey") or {}).get("status", {}).get("history", [])
        ),
        timeout=15,
    )
    events = node_cluster.kubectl(
        "get", "events", "-n", node_namespace, "--field-selector",
        "involvedObject.kind=MessagingCluster,involvedObject.name=surgey", "-o", "json",
    ).stdout  # fmt: skip
    assert "ScaledUp" in events
    # the worker pods drain the real queue, then the pool shrinks again
    eventually(
        "the backlog to drain",
        lambda: (clusters.get("surgey") or {}).get("status", {}).get("backlog") == 0,
        timeout=180,
    )
    eventually(
        "scale back down to 1",
        lambda: clusters.deployment("surgey-worker").spec.replicas == 1,
        timeout=90,
    )


async def _publish_for(url: str, prefix: str, rate: int, seconds: int) -> None:
    """An open-loop flood: `rate` normal messages a second for `seconds`."""
    for _ in range(seconds):
        started = time.monotonic()
        await publish_messages(url, prefix, rate)
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def test_level_three_still_drains_normal_messages(
    operators: list[OperatorProcess],
    clusters: Clusters,
    node_cluster: KubeCluster,
    node_namespace: str,
    cluster_nats: ClusterNats,
    tmp_path: Path,
) -> None:
    """At maxReplicas under a sustained flood the level reaches 3; normal is not sheddable,
    so the workers keep draining it there (a quarter of their slots) instead of idling."""
    op = OperatorProcess(node_cluster, node_namespace, tmp_path).start()
    operators.append(op)
    clusters.create(
        manifest(
            "deep",
            cluster_nats.url,
            autoscaling={"minReplicas": 1, "maxReplicas": 2, "serviceRateHint": 50},
            workers={
                "handler": "surge_workers.handlers:simulated",
                "concurrency": 2,
                "env": [{"name": "SURGE_WORK_MS", "value": "40"}],
            },
            # Up fast, down slowly: the drain below happens while the level is still 3.
            degradation={"enterAfterSeconds": 1, "exitAfterSeconds": 120},
        )
    )
    eventually("Ready", lambda: clusters.is_true("deep", "Ready"), timeout=180)

    def status() -> dict[str, object]:
        return dict((clusters.get("deep") or {}).get("status", {}))

    # 300 msg/s against 2 x 50 msg/s for 8 s: overload long enough to climb to level 3.
    cluster_nats.run(lambda url: _publish_for(url, "deep", 300, 8))
    eventually("degradation level 3", lambda: status().get("degradationLevel") == 3, timeout=30)
    eventually("the normal backlog to drain", lambda: status().get("backlog") == 0, timeout=150)
    assert status().get("degradationLevel") == 3, "drained only after the level fell"


def test_a_killed_operator_is_replaced_and_the_successor_converges(
    operators: list[OperatorProcess],
    clusters: Clusters,
    node_cluster: KubeCluster,
    node_namespace: str,
    cluster_nats: ClusterNats,
    tmp_path: Path,
) -> None:
    first = OperatorProcess(node_cluster, node_namespace, tmp_path).start()
    operators.append(first)
    eventually("leadership", lambda: first.events("leader_elected"), timeout=30)
    for i in range(3):
        clusters.create(manifest(f"crash-{i}", cluster_nats.url))
    # kill -9 as soon as the first reconcile is under way: objects half applied, status
    # half written, a kopf progress annotation possibly left behind
    eventually(
        "a reconcile in progress",
        lambda: "owned_objects_applied" in first.log() or clusters.deployment("crash-0-worker"),
        timeout=30,
        every=0.05,
    )
    first.kill()

    second = OperatorProcess(node_cluster, node_namespace, tmp_path).start()
    operators.append(second)
    eventually(
        "the successor to take the lease", lambda: second.events("leader_elected"), timeout=30
    )
    for i in range(3):
        eventually(
            f"crash-{i} Ready", lambda i=i: clusters.is_true(f"crash-{i}", "Ready"), timeout=180
        )
        assert clusters.deployment(f"crash-{i}-worker") is not None
        mc = clusters.get(f"crash-{i}")
        assert mc is not None
        assert mc["status"]["observedGeneration"] == 1
        assert not [
            k for k in mc["metadata"].get("annotations", {}) if "kopf" in k and "managed" not in k
        ]


def test_two_replicas_elect_one_leader_and_fail_over(
    operators: list[OperatorProcess],
    clusters: Clusters,
    node_cluster: KubeCluster,
    node_namespace: str,
    cluster_nats: ClusterNats,
    tmp_path: Path,
) -> None:
    a = OperatorProcess(node_cluster, node_namespace, tmp_path).start()
    operators.append(a)
    eventually("a leader", lambda: a.events("leader_elected"), timeout=30)
    b = OperatorProcess(node_cluster, node_namespace, tmp_path).start()
    operators.append(b)
    eventually("b in standby", lambda: b.events("standby"), timeout=30)
    clusters.create(manifest("ha-1", cluster_nats.url))
    eventually("ha-1 Ready", lambda: clusters.is_true("ha-1", "Ready"), timeout=180)
    assert not b.events("operator_started")  # the standby never ran handlers

    assert a.stop() == 0  # a clean stop releases the lease at once
    eventually("b takes over", lambda: b.events("leader_elected"), timeout=15)
    clusters.create(manifest("ha-2", cluster_nats.url))
    eventually("ha-2 Ready", lambda: clusters.is_true("ha-2", "Ready"), timeout=180)
