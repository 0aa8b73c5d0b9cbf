"""The operator never outlives its leadership, against a real API server and nats-server.

Reproduces the issue-12 report: with a MessagingCluster running, NATS is killed and the
API server then vanishes past the Lease (a loopback forwarder between the operator and
the API server is cut: connections hang, nothing answers). The operator must stop acting
at the renew deadline and exit by itself, and SIGTERM must end it within a few seconds
in any case (it used to ignore SIGTERM for over 90 s).

The operator is a host process on a real node (operator_support) and NATS runs in the
test's namespace; the forwarder listens on that node's loopback, so it is all the
operator can see of the API server.
"""

from __future__ import annotations

import signal
import socket
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
)
from tests.fixtures.tcp_proxy import TcpProxy, kubeconfig_through, target_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LEASE = 4.0  # operator_support's SURGE_LEASE_SECONDS: renew deadline 2.7 s, retry 0.5 s
#: What "exits promptly" means here: renew deadline + kopf's shutdown grace (3 s) + the
#: bounded lease release and client close (~3 s), with slack for a loaded CI machine.
EXIT_WITHIN = 12.0


@pytest.fixture
def proxy(node_cluster: KubeCluster) -> Iterator[TcpProxy]:
    host, port = target_of(node_cluster.kubeconfig)
    listener = node_cluster.in_node(lambda: socket.create_server(("127.0.0.1", 0)))
    p = TcpProxy(host, port, listener)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def clusters(node_cluster: KubeCluster, node_namespace: str) -> Clusters:
    install_crd(node_cluster)
    return Clusters(node_cluster, node_namespace)


def start_operator(
    node_cluster: KubeCluster, namespace: str, proxy: TcpProxy, tmp_path: Path
) -> OperatorProcess:
    config = kubeconfig_through(node_cluster.kubeconfig, proxy, tmp_path / "through-proxy.yaml")
    return OperatorProcess(node_cluster, namespace, tmp_path, KUBECONFIG=str(config)).start()


def wait_exit(op: OperatorProcess, within: float) -> float | None:
    assert op.proc is not None
    started = time.monotonic()
    while time.monotonic() - started < within:
        if op.proc.poll() is not None:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def test_nats_and_api_server_gone_the_operator_exits_by_itself_and_on_sigterm(
    node_cluster: KubeCluster,
    node_namespace: str,
    clusters: Clusters,
    proxy: TcpProxy,
    tmp_path: Path,
    cluster_nats: ClusterNats,
) -> None:
    op = start_operator(node_cluster, node_namespace, proxy, tmp_path)
    try:
        # Bounded, not tight: the operator's start-up alone took 23 s on a loaded machine.
        eventually("leadership", lambda: op.events("leader_elected"), timeout=120)
        clusters.create(manifest("exit-1", cluster_nats.url))
        eventually("exit-1 Ready", lambda: clusters.is_true("exit-1", "Ready"), timeout=180)

        cluster_nats.stop()
        time.sleep(1.0)
        proxy.cut()
        cut_at = time.monotonic()
        took = wait_exit(op, LEASE + EXIT_WITHIN)
        if took is None:  # still running past the lease: SIGTERM must end it promptly
            assert op.proc is not None
            op.proc.send_signal(signal.SIGTERM)
            after_term = wait_exit(op, 5.0)
            pytest.fail(
                f"operator still running {LEASE + EXIT_WITHIN:.0f}s after the API server "
                f"vanished; SIGTERM then took {after_term}s"
            )
        since_cut = time.monotonic() - cut_at
        print(f"\nAPI server cut -> operator exited after {since_cut:.1f}s (lease {LEASE:.0f}s)")
        assert op.proc is not None
        assert op.proc.returncode == 1
        assert op.events("leadership_expired") or op.events("leadership_lost")
        assert op.events("exiting_after_leadership_loss")
    finally:
        op.kill()


def test_sigterm_with_nats_and_the_api_server_gone_exits_within_seconds(
    node_cluster: KubeCluster,
    node_namespace: str,
    clusters: Clusters,
    proxy: TcpProxy,
    tmp_path: Path,
    cluster_nats: ClusterNats,
) -> None:
    # A long lease, so SIGTERM arrives while the operator still believes it leads.
    op = OperatorProcess(
        node_cluster,
        node_namespace,
        tmp_path,
        KUBECONFIG=str(
            kubeconfig_through(node_cluster.kubeconfig, proxy, tmp_path / "through-proxy.yaml")
        ),
        SURGE_LEASE_SECONDS="30",
    ).start()
    try:
        # Bounded, not tight: the operator's start-up alone took 23 s on a loaded machine.
        eventually("leadership", lambda: op.events("leader_elected"), timeout=120)
        clusters.create(manifest("exit-2", cluster_nats.url))
        eventually("exit-2 Ready", lambda: clusters.is_true("exit-2", "Ready"), timeout=180)
        cluster_nats.stop()
        proxy.cut()
        time.sleep(2.0)
        assert op.proc is not None
        op.proc.send_signal(signal.SIGTERM)
        took = wait_exit(op, EXIT_WITHIN)
        print(f"\nSIGTERM with NATS and the API server gone -> exited after {took}s")
        assert took is not None, "operator ignored SIGTERM"
        assert op.proc.returncode == 0
    finally:
        op.kill()
