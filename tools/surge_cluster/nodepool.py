"""The real nodes of one local cluster, as a group: network, runtimes, images, agents, and
their complete removal. `cluster.LocalCluster` drives it; process bookkeeping stays there
(every daemon is spawned through the callback, so it lands in state.json at once)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from surge_cluster import hostnet, nodes
from surge_cluster.components import Component
from surge_cluster.layout import Layout
from surge_cluster.netplan import NetPlan, NodeNet, NodeSpec, plan
from surge_cluster.nodeconfig import NodePaths
from surge_cluster.pki import Pki
from surge_cluster.procs import ProcessRecord, record_alive
from surge_cluster.readiness import NotReadyError, wait_until

log = logging.getLogger("surge_cluster")

Spawn = Callable[[Component], ProcessRecord]
NODE_STATE_ROOT = Path("/var/lib/surge-cluster")
#: kubelet's device manager listens here whatever its --root-dir. The nodes share the
#: host's mount namespace, so kubelets started together race on it: each unlinks the old
#: socket, then binds, and the loser exits with EADDRINUSE (seen once in about 15 starts).
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
#: how long the next kubelet waits for the previous one to bind it
SOCKET_WAIT_S = 30.0


def socket_bound_since(path: Path, since: float) -> bool:
    """Has a socket been (re)created at ``path`` at or after wall-clock ``since``?"""
    try:
        return path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class NodePool:
    layout: Layout
    net: NetPlan
    binaries: Path

    @classmethod
    def for_state(
        cls, layout: Layout, subnet: str, specs: Sequence[NodeSpec], binaries: Path
    ) -> NodePool:
        return cls(layout, plan(layout.root, subnet, specs), binaries)

    @property
    def state_dir(self) -> Path:
        """Where the nodes keep their state: short paths, because containerd and kubelet
        sockets live below it and a unix socket path must stay under 104 bytes (a pytest
        tmp dir is too long for that)."""
        return NODE_STATE_ROOT / self.net.cluster_id

    def paths(self, node: NodeNet) -> NodePaths:
        return NodePaths(self.state_dir / node.name)

    # ----------------------------------------------------------------- up
    def create_network(self, api_port: int) -> None:
        hostnet.create(self.net, api_port)

    def prepare(self, pki: Pki, server: str) -> None:
        for node in self.net.nodes:
            nodes.prepare(node, self.paths(node), pki, server)

    def start_runtimes(self, spawn: Spawn, timeout: float) -> None:
        records = {
            node.name: spawn(nodes.containerd(node, self.paths(node))) for node in self.net.nodes
        }
        for node in self.net.nodes:
            record = records[node.name]
            wait_until(
                f"containerd on {node.name}",
                lambda node=node: nodes.containerd_ready(self.paths(node)),  # type: ignore[misc]
                timeout=timeout,
                alive=lambda record=record: record_alive(record),  # type: ignore[misc]
            )

    def load_images(self, archives: Sequence[Path]) -> None:
        """Import every archive into every node's containerd (nodes in parallel)."""

        def load(node: NodeNet) -> None:
            for archive in archives:
                nodes.import_image(self.paths(node), archive)

        with ThreadPoolExecutor(max_workers=len(self.net.nodes) or 1) as pool:
            for future in [pool.submit(load, node) for node in self.net.nodes]:
                future.result()

    def start_agents(self, spawn: Spawn, socket: Path = DEVICE_PLUGIN_SOCKET) -> None:
        for node in self.net.nodes:
            paths = self.paths(node)
            # Whole seconds: some filesystems keep coarse mtimes.
            started = float(int(time.time()))
            kubelet = spawn(nodes.kubelet(node, paths, self.binaries))
            spawn(nodes.kube_proxy(node, paths, self.binaries))
            try:  # one kubelet at a time through the shared socket (DEVICE_PLUGIN_SOCKET)
                wait_until(
                    f"kubelet {node.name} device-plugin socket",
                    partial(socket_bound_since, socket, started),
                    timeout=SOCKET_WAIT_S,
                    alive=partial(record_alive, kubelet),
                )
            except NotReadyError as err:  # the nodes' readiness wait reports it in full
                log.warning("%s", err)

    def start_policy(self, spawn: Spawn) -> None:
        """kube-router reads its node's InternalIP at start: only once the kubelets report it."""
        for node in self.net.nodes:
            spawn(nodes.kube_router(node, self.paths(node), self.binaries))

    # ----------------------------------------------------------------- down
    def remove(self) -> list[str]:
        """After every daemon was stopped: containers, mounts, cgroups, state, network."""
        problems: list[str] = []
        for node in self.net.nodes:
            problems += nodes.remove(node, self.paths(node))
        problems += hostnet.remove(self.net)
        if self.state_dir.is_dir() and not any(self.state_dir.iterdir()):
            self.state_dir.rmdir()
        return problems

    def leftovers(self) -> list[str]:
        found: list[str] = [f"node state {self.state_dir}"] if self.state_dir.exists() else []
        for node in self.net.nodes:
            found += nodes.leftovers(node, self.paths(node))
        return found + hostnet.leftovers(self.net)
