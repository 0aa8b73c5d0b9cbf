"""One real node: its containerd, kubelet, kube-proxy and kube-router, all run inside the
node's network namespace (``nsenter --net``: the mount namespace stays the host's, so the
kubelet's volume mounts are the ones containerd and runc see), and everything needed to
remove it again without a trace: container processes (by cgroup), shims (by socket),
mounts (by path), cgroups, CNI cache entries and the node's state directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from surge_cluster import nodecerts, nodeconfig
from surge_cluster.components import Component
from surge_cluster.hostnet import SBIN_PATH
from surge_cluster.kubeconfig import write_cert_kubeconfig
from surge_cluster.netplan import SERVICE_CIDR, NodeNet
from surge_cluster.nodeconfig import CRI_NAMESPACE, NodePaths
from surge_cluster.pki import Pki

CGROUP_FS = Path("/sys/fs/cgroup")
SHIM_SOCKET_DIR = Path("/run/containerd/s")
CNI_CACHE = Path("/var/lib/cni/results")
CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"


class NodeError(RuntimeError):
    """A node could not be prepared or an image could not be loaded into it."""


def node_env() -> dict[str, str]:
    """Node daemons exec ip, iptables, ipset, mount, runc: give them the system PATH only."""
    return {"PATH": SBIN_PATH, "HOME": "/root", "LANG": "C.UTF-8"}


def _nsenter(node: NodeNet, *argv: str) -> tuple[str, ...]:
    return ("/usr/bin/nsenter", f"--net=/run/netns/{node.netns}", "--", *argv)


# ----------------------------------------------------------------- prepare
def prepare(node: NodeNet, paths: NodePaths, pki: Pki, server: str) -> None:
    """Write this node's configuration, certificates and kubeconfigs; create its cgroups."""
    for d in (paths.root, paths.cni_conf_dir, paths.ipam_dir, paths.kubelet_dir, paths.pod_logs):
        d.mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text(nodeconfig.containerd_toml(paths))
    (paths.cni_conf_dir / "10-surge.conflist").write_text(nodeconfig.cni_conflist(node, paths))
    paths.resolv_conf.write_text(nodeconfig.resolv_conf())
    paths.kubelet_config.write_text(nodeconfig.kubelet_config(node, paths, pki.ca_cert))
    paths.kube_proxy_config.write_text(nodeconfig.kube_proxy_config(node, paths))
    nodecerts.kubelet_serving(pki, paths.certs / "kubelet-serving", node.name, node.ip)
    clients = {
        "kubelet": (nodecerts.kubelet_client(pki, paths.certs / "kubelet", node.name), ""),
        "kube-proxy": (
            nodecerts.issue(pki, paths.certs / "kube-proxy", nodecerts.KUBE_PROXY_USER),
            nodecerts.KUBE_PROXY_USER,
        ),
        "kube-router": (
            nodecerts.issue(pki, paths.certs / "kube-router", nodecerts.KUBE_ROUTER_USER),
            nodecerts.KUBE_ROUTER_USER,
        ),
    }
    for name, (pair, user) in clients.items():
        write_cert_kubeconfig(
            paths.kubeconfig(name), server, pki.ca_cert, pair.cert, pair.key, user or name
        )
    create_cgroups(node.cgroup_root)


def controllers() -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, memory, pids, name=systemd, ...)."""
    if not CGROUP_FS.is_dir():
        return []
    return sorted(p for p in CGROUP_FS.iterdir() if p.is_dir() and (p / "cgroup.procs").exists())


def create_cgroups(root: str) -> None:
    """The kubelet refuses a cgroupRoot that does not exist in every hierarchy."""
    for ctrl in controllers():
        path = ctrl / root.strip("/")
        path.mkdir(exist_ok=True)
        if ctrl.name == "cpuset":  # a new v1 cpuset is empty until given cpus and mems
            for knob in ("cpuset.cpus", "cpuset.mems"):
                target = path / knob
                if target.exists() and not target.read_text().strip():
                    target.write_text((ctrl / knob).read_text())


# ----------------------------------------------------------------- processes
def containerd(node: NodeNet, paths: NodePaths) -> Component:
    argv = _nsenter(node, CONTAINERD, f"--config={paths.containerd_config}")
    return Component(f"containerd/{node.name}", argv, stop_grace=5.0, env=node_env())


def kubelet(node: NodeNet, paths: NodePaths, bin_dir: Path) -> Component:
    argv = _nsenter(
        node,
        str(bin_dir / "kubelet"),
        f"--config={paths.kubelet_config}",
        f"--kubeconfig={paths.kubeconfig('kubelet')}",
        f"--root-dir={paths.kubelet_dir}",
        f"--cert-dir={paths.certs}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.ip}",
        "--v=1",
    )
    return Component(f"kubelet/{node.name}", argv, stop_grace=5.0, env=node_env())


def kube_proxy(node: NodeNet, paths: NodePaths, bin_dir: Path) -> Component:
    argv = _nsenter(node, str(bin_dir / "kube-proxy"), f"--config={paths.kube_proxy_config}")
    return Component(f"kube-proxy/{node.name}", argv, stop_grace=3.0, env=node_env())


def kube_router(node: NodeNet, paths: NodePaths, bin_dir: Path) -> Component:
    """kube-router with only its firewall: NetworkPolicy as iptables rules and ipsets."""
    argv = _nsenter(
        node,
        str(bin_dir / "kube-router"),
        f"--kubeconfig={paths.kubeconfig('kube-router')}",
        f"--hostname-override={node.name}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--enable-ipv4=true",
        "--enable-ipv6=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--metrics-port=0",
        "--health-port=0",
        "--v=1",
    )
    return Component(f"kube-router/{node.name}", argv, stop_grace=3.0, env=node_env())


def ctr(paths: NodePaths, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTR, "--address", str(paths.socket), "-n", CRI_NAMESPACE, *args],
        capture_output=True,
        text=True,
        env=node_env(),
        timeout=timeout,
        check=False,
    )


def containerd_ready(paths: NodePaths) -> bool:
    return paths.socket.exists() and ctr(paths, "version", timeout=5).returncode == 0


def import_image(paths: NodePaths, archive: Path) -> None:
    """Import a docker-archive (or OCI) tar into this node's containerd, unpacked."""
    proc = ctr(paths, "images", "import", "--no-unpack=false", str(archive))
    if proc.returncode != 0:
        raise NodeError(f"importing {archive} into {paths.socket}: {proc.stderr.strip()}")


# ----------------------------------------------------------------- removal
def cgroup_pids(root: str) -> set[int]:
    pids: set[int] = set()
    for ctrl in controllers():
        base = ctrl / root.strip("/")
        if not base.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(base):
            with contextlib.suppress(OSError):
                text = (Path(dirpath) / "cgroup.procs").read_text()
                pids.update(int(p) for p in text.split())
    return pids


def kill_containers(root: str, timeout: float = 10.0) -> int:
    """SIGKILL every process in the node's cgroup tree (all its containers); returns how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while (pids := cgroup_pids(root)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.1)
    return len(killed)


def remove_cgroups(root: str) -> list[str]:
    problems = []
    for ctrl in controllers():
        base = ctrl / root.strip("/")
        if not base.is_dir():
            continue
        dirs = sorted((Path(d) for d, _, _ in os.walk(base)), key=lambda p: -len(p.parts))
        for d in dirs:
            try:
                d.rmdir()
            except OSError as err:
                problems.append(f"cgroup {d}: {err.strerror}")
    return problems


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def processes_mentioning(needle: str) -> list[int]:
    """Pids whose command line contains needle (our sockets and directories are unique)."""
    found = []
    for entry in Path("/proc").iterdir():
        if (
            entry.name.isdigit()
            and int(entry.name) != os.getpid()
            and any(needle in arg for arg in _cmdline(int(entry.name)))
        ):
            found.append(int(entry.name))
    return found


def shim_pids(paths: NodePaths) -> list[int]:
    """containerd shims outlive containerd; each names our socket in `-address`."""
    return [
        pid
        for pid in processes_mentioning(str(paths.socket))
        if "containerd-shim" in " ".join(_cmdline(pid)[:1])
    ]


def kill_shims(paths: NodePaths) -> int:
    pids = shim_pids(paths)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def shim_sockets(paths: NodePaths) -> list[Path]:
    """containerd 1.6 puts shim sockets at /run/containerd/s/sha256(address/ns/id)."""
    tasks = paths.containerd_state / "io.containerd.runtime.v2.task" / CRI_NAMESPACE
    if not tasks.is_dir():
        return []
    out = []
    for task in tasks.iterdir():
        digest = hashlib.sha256(f"{paths.socket}/{CRI_NAMESPACE}/{task.name}".encode()).hexdigest()
        out.append(SHIM_SOCKET_DIR / digest)
    return out


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below root, deepest first (from /proc/self/mountinfo)."""
    prefix = str(root)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(set(found), key=lambda p: -p.count("/"))


def unmount_all(root: Path) -> list[str]:
    problems = []
    for _ in range(3):  # stacked mounts (tmpfs over tmpfs) need more than one pass
        points = mounts_under(root)
        if not points:
            return []
        for point in points:
            proc = subprocess.run(["umount", point], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    problems += [f"mount {p}" for p in mounts_under(root)]
    return problems


def cni_cache_entries(node: NodeNet) -> list[Path]:
    if not CNI_CACHE.is_dir():
        return []
    return [p for p in CNI_CACHE.iterdir() if p.name.startswith(node.cni_network + "-")]


def remove(node: NodeNet, paths: NodePaths) -> list[str]:
    """After the node's daemons were stopped: everything else. Returns what stayed."""
    kill_containers(node.cgroup_root)
    kill_shims(paths)
    sockets = shim_sockets(paths)
    problems = unmount_all(paths.root)
    for sock in sockets:
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
    for entry in cni_cache_entries(node):
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
    problems += remove_cgroups(node.cgroup_root)
    if not problems and paths.root.exists():
        shutil.rmtree(paths.root, ignore_errors=True)
    return problems


def leftovers(node: NodeNet, paths: NodePaths) -> list[str]:
    """Whatever of this node still exists on the machine (empty after a clean `down`)."""
    found = [f"process {pid}" for pid in processes_mentioning(str(paths.root))]
    found += [f"process {pid} (in {node.netns})" for pid in processes_mentioning(node.netns)]
    found += [f"mount {m}" for m in mounts_under(paths.root)]
    found += [f"cgroup pid {p}" for p in cgroup_pids(node.cgroup_root)]
    found += [
        f"cgroup {ctrl / node.cgroup_root.strip('/')}"
        for ctrl in controllers()
        if (ctrl / node.cgroup_root.strip("/")).exists()
    ]
    found += [f"cni cache {p}" for p in cni_cache_entries(node)]
    if paths.root.exists():
        found.append(f"node state {paths.root}")
    return found


@contextlib.contextmanager
def timed(what: str, sink: dict[str, float]) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        sink[what] = time.monotonic() - start
