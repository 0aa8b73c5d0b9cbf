"""Control-plane faults under load, against a real API server: the operator killed (kill
-9) while it scales the worker Deployment, and the kube-apiserver process restarted while
the operator runs.

The local control plane with kwok nodes (`control_plane`): the Deployment, its
ReplicaSet and pods are real API objects and pods are marked Running, but nothing runs
in them, so the backlog a test publishes into a nats-server on loopback only grows and
the right decision is known: scale up to maxReplicas and stay there. The operator is a
host process (operator_support.OperatorProcess). A thread records every value the
Deployment's replicas take, so a reset or a flap in between is seen, not only the end.
Recovery times are printed, not asserted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from surge_cluster.testing import KubeCluster
from surge_workers.natsserver import NatsServer
from tests.e2e.operator_support import (
    Clusters,
    OperatorProcess,
    Publisher,
    eventually,
    install_crd,
    manifest,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAX = 12
#: 100 msg/s against 10 msg/s per worker (and workers that never consume): the decision
#: climbs to MAX in steps of 2 a tick and never has a reason to come down.
AUTOSCALING = {
    "minReplicas": 1,
    "maxReplicas": MAX,
    "maxStep": 2,
    "serviceRateHint": 10,
    "scaleDownStabilizationSeconds": 600,
}


class ReplicaLog:
    """Every distinct spec.replicas of a Deployment, polled on a thread (API errors, e.g.
    while the API server is down, are skipped)."""

    def __init__(self, clusters: Clusters, name: str) -> None:
        self.clusters, self.name = clusters, name
        self.values: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ReplicaLog:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                replicas = self.clusters.deployment(self.name).spec.replicas
            except Exception:  # the API server may be away: try again
                continue
            if not self.values or self.values[-1][1] != replicas:
                self.values.append((time.monotonic(), replicas))

    def current(self) -> int | None:
        return self.values[-1][1] if self.values else None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def seen(self) -> list[int]:
        return [v for _, v in self.values]


@pytest.fixture
def clusters(control_plane: KubeCluster, plane_namespace: str) -> Clusters:
    install_crd(control_plane)
    return Clusters(control_plane, plane_namespace)


@pytest.fixture
def operators() -> Iterator[list[OperatorProcess]]:
    started: list[OperatorProcess] = []
    yield started
    for op in started:
        op.stop()


def status(clusters: Clusters, name: str) -> dict[str, Any]:
    return dict((clusters.get(name) or {}).get("status") or {})


def converged(clusters: Clusters, name: str) -> bool:
    """The Deployment holds what the operator decided, and that is MAX."""
    deployment = clusters.deployment(f"{name}-worker")
    return (
        deployment is not None
        and deployment.spec.replicas == MAX
        and status(clusters, name).get("desiredReplicas") == MAX
    )


@contextmanager
def flooded(clusters: Clusters, name: str, nats_url: str) -> Iterator[ReplicaLog]:
    """A Ready MessagingCluster `name` under a steady flood, its worker replicas recorded
    (the log is stopped, and so its values final, when the block ends)."""
    clusters.create(manifest(name, nats_url, autoscaling=AUTOSCALING))
    eventually(f"{name} Ready", lambda: clusters.is_true(name, "Ready"), timeout=180)
    replicas = ReplicaLog(clusters, f"{name}-worker").start()
    publisher = Publisher(nats_url, name.replace("-", "_"), rate=100).start()
    try:
        yield replicas
    finally:
        publisher.stop()
        replicas.stop()


def assert_never_lower(replicas: ReplicaLog) -> None:
    seen = replicas.seen()
    assert seen == sorted(seen), f"replicas went down under a growing backlog: {seen}"
    assert seen[-1] == MAX


def test_an_operator_killed_mid_scale_converges_without_resetting_replicas(
    control_plane: KubeCluster,
    plane_namespace: str,
    clusters: Clusters,
    operators: list[OperatorProcess],
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    first = OperatorProcess(control_plane, plane_namespace, tmp_path).start()
    operators.append(first)
    with flooded(clusters, "scaly", nats_server.url) as replicas:
        eventually(
            "the scale-up under way",
            lambda: (r := replicas.current()) is not None and 3 <= r <= MAX - 3,
            timeout=120,
            every=0.05,
        )
        first.kill()
        at_kill = replicas.current()
        second = OperatorProcess(control_plane, plane_namespace, tmp_path).start()
        operators.append(second)
        restarted = time.monotonic()
        eventually("leadership", lambda: second.events("leader_elected"), timeout=120)
        led = time.monotonic() - restarted
        eventually(
            f"{MAX} replicas, decided and applied", lambda: converged(clusters, "scaly"), 180
        )
        took = time.monotonic() - restarted
    print(
        f"\nkilled at {at_kill} replicas; successor led after {led:.1f}s and converged to "
        f"{MAX} {took:.1f}s after its start; replicas seen: {replicas.seen()}"
    )
    assert_never_lower(replicas)


#: The API server is stopped this long (the fault), then started again.
OUTAGE = 5.0
LEASE = 30.0
RENEW_DEADLINE = LEASE * 2 / 3  # settings: SURGE_RENEW_DEADLINE defaults to 2/3 of the lease


def api_answers(clusters: Clusters) -> bool:
    try:
        clusters.api.list_namespaced_custom_object(
            "surge.dev", "v1alpha1", clusters.namespace, "messagingclusters", limit=1
        )
    except Exception:  # connection refused while it starts: not yet
        return False
    return True


def test_the_operator_rides_out_an_api_server_restart_and_keeps_reconciling(
    control_plane: KubeCluster,
    plane_namespace: str,
    clusters: Clusters,
    operators: list[OperatorProcess],
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    """Documented: a leader whose renewals fail stops acting at the renew deadline and
    exits (code 1) to be restarted as a standby; an outage shorter than that is ridden
    out. Either way, once the API server is back, changes are reconciled again (a new
    MessagingCluster becomes Ready) and scaling resumes where it was (no reset)."""
    op = OperatorProcess(
        control_plane, plane_namespace, tmp_path, SURGE_LEASE_SECONDS=str(LEASE)
    ).start()
    operators.append(op)
    eventually("leadership", lambda: op.events("leader_elected"), timeout=120)
    local = control_plane.cluster
    assert local is not None
    with flooded(clusters, "api-1", nats_server.url) as replicas:
        eventually("a first scale-up", lambda: (replicas.current() or 0) > 1, timeout=120)
        apiserver = local.stop_process("kube-apiserver")
        stopped = time.monotonic()
        time.sleep(OUTAGE)  # the fault itself: the API server stays away this long
        local.start_process(apiserver)
        eventually("the API server answering", lambda: api_answers(clusters), timeout=120)
        back = time.monotonic()
        down = back - stopped
        exited = not op.alive()
        if exited:
            # Allowed only past the renew deadline, and then as documented.
            assert op.proc is not None
            assert down >= RENEW_DEADLINE, f"exited after an outage of only {down:.1f}s"
            assert op.proc.returncode == 1
            assert op.events("exiting_after_leadership_loss")
            op = OperatorProcess(
                control_plane, plane_namespace, tmp_path, SURGE_LEASE_SECONDS=str(LEASE)
            ).start()  # what the Deployment does
            operators.append(op)
        clusters.create(manifest("api-2", nats_server.url))
        eventually("api-2 Ready", lambda: clusters.is_true("api-2", "Ready"), timeout=180)
        reconciled = time.monotonic() - back
        eventually(f"api-1 at {MAX} replicas", lambda: converged(clusters, "api-1"), 180)
        scaled = time.monotonic() - back
        assert op.alive()
    print(
        f"\nkube-apiserver down {down:.1f}s (stopped {OUTAGE:.0f}s + start-up); operator "
        f"{'exited (code 1) and was restarted' if exited else 'kept running'}; a new cluster "
        f"Ready {reconciled:.1f}s and api-1 at {MAX} replicas {scaled:.1f}s after the API "
        f"server was back; replicas seen: {replicas.seen()}"
    )
    assert_never_lower(replicas)
