"""A handle on the cluster that e2e tests run against: the local control plane started by
`LocalCluster`, or any cluster given by kubeconfig (kind: ``SURGE_E2E_KUBECONFIG``).

Used by tests/fixtures/kube.py; kept here so it is typed and reusable outside pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config

from surge_cluster.cluster import LocalCluster
from surge_cluster.netns import call_in_netns
from surge_cluster.topology import DEFAULT_NODES
from surge_cluster.versions import (
    BINARIES,
    CONTROL_PLANE_BINARIES,
    NODE_BINARIES,
    bin_dir,
    missing_binaries,
)

T = TypeVar("T")


def eventually(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll check until it returns something truthy and return that; AssertionError after
    timeout (the API is eventually consistent: controllers, scheduler, kubelets)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class ToolMissingError(RuntimeError):
    """kubectl or helm is not available for this cluster."""


@dataclass(frozen=True)
class KubeCluster:
    kubeconfig: Path
    api_client: client.ApiClient
    local: bool
    """True for the local control plane (surge-cluster); False for kind & co."""
    bin_dir: Path | None = None
    cluster: LocalCluster | None = None
    """The local cluster behind this handle (None for kind & co)."""

    def load_images(self, archives: list[Path]) -> None:
        """Make images available to pods: every node's containerd (local), else no-op here
        (kind: `kind load image-archive`)."""
        if self.cluster is None:
            raise ToolMissingError("load_images needs the local cluster (kind: kind load)")
        self.cluster.load_images(archives)

    def _real_nodes(self) -> LocalCluster:
        if self.cluster is None or not self.cluster.real_nodes:
            raise ToolMissingError("host processes on a node need the local real-node cluster")
        return self.cluster

    def on_node(self, argv: Sequence[str], node: str | None = None) -> list[str]:
        """argv as a host process on a real node, reaching pods, Services and cluster DNS as
        the node does (see surge_cluster.netns); local real-node cluster only."""
        return self._real_nodes().on_node(argv, node)

    def in_node(self, fn: Callable[[], T], node: str | None = None) -> T:
        """fn() on a thread in a real node's network namespace: the sockets it opens reach
        pods and Services by IP (no cluster DNS in-process); local real-node cluster only."""
        cluster = self._real_nodes()
        return call_in_netns(cluster.node_netns(node), fn)

    def tool(self, name: str) -> str:
        if self.bin_dir and (self.bin_dir / name).exists():
            return str(self.bin_dir / name)
        found = shutil.which(name)
        if not found:
            raise ToolMissingError(f"{name} not found (run tools/build-k8s.sh)")
        return found

    def env(self) -> dict[str, str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        if self.bin_dir:
            env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])
        return env

    def run(
        self, tool: str, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.tool(tool), *args],
            input=input,
            env=self.env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, input=input, check=check)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, check=check)


def external_cluster(kubeconfig: Path) -> KubeCluster:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    binaries = bin_dir()
    return KubeCluster(kubeconfig, api, local=False, bin_dir=_if_built(binaries))


def _if_built(binaries: Path) -> Path | None:
    return binaries if any((binaries / b).exists() for b in BINARIES) else None


def node_prerequisites() -> list[str]:
    """What real nodes need on this machine and lack (empty when they can start)."""
    binaries = bin_dir()
    missing = [str(binaries / b) for b in missing_binaries(binaries, CONTROL_PLANE_BINARIES[:4])]
    missing += [str(binaries / b) for b in missing_binaries(binaries, NODE_BINARIES)]
    for tool in ("/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc", "/bin/busybox"):
        if not os.access(tool, os.X_OK):
            missing.append(tool)
    if not os.access("/usr/lib/cni/bridge", os.X_OK):
        missing.append("/usr/lib/cni/bridge")
    if os.geteuid() != 0:
        missing.append("root (network namespaces, mounts, cgroups)")
    return missing


@contextmanager
def local_cluster(
    root: Path, binaries: Path | None = None, *, fake_nodes: bool = False
) -> Iterator[KubeCluster]:
    """Start a LocalCluster in root for the duration of the block; always tear it down.

    Real nodes by default; fake_nodes=True gives kwok nodes instead (many nodes that run
    nothing: the operator benchmark)."""
    cluster = LocalCluster(root, binaries=binaries or bin_dir(), owner_pid=os.getpid())
    if fake_nodes:
        cluster.real_nodes, cluster.nodes = (), DEFAULT_NODES
    try:
        info = cluster.up()
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(info.kubeconfig)
        )
        yield KubeCluster(
            info.kubeconfig,
            api,
            local=True,
            bin_dir=cluster.binaries,
            cluster=cluster,
        )
    finally:
        cluster.down()
