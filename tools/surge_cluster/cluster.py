"""Start, inspect and stop a local cluster: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and real nodes (containerd + kubelet + kube-proxy + kube-router each, in
their own network namespace; see nodepool.py) with CoreDNS. Fake kwok nodes remain available
for what needs many nodes that run nothing (the operator benchmark).

Every started process is recorded in <dir>/state.json as soon as it starts, so `down`
can clean up after a crash, a failed `up` or a killed test session.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from surge_cluster import (
    addons,
    components,
    hostnet,
    images,
    kernelknobs,
    kwokconfig,
    netns,
    nodecerts,
    pki,
    procs,
)
from surge_cluster.kubeconfig import write_cert_kubeconfig, write_kubeconfig
from surge_cluster.layout import Layout, State, load_state, save_state
from surge_cluster.netplan import DEFAULT_REAL_NODES, NodeSpec, plan
from surge_cluster.nodeconfig import node_manifest as real_node_manifest
from surge_cluster.nodepool import NodePool
from surge_cluster.ports import Ports, allocate_ports
from surge_cluster.readiness import NotReadyError, http_ok, wait_until
from surge_cluster.rest import Rest
from surge_cluster.topology import FakeNode, node_manifest
from surge_cluster.versions import CONTROL_PLANE_BINARIES, NODE_BINARIES, bin_dir, missing_binaries

log = logging.getLogger("surge_cluster")

WATCHDOG = "watchdog"
PROVISIONER = "provisioner"
STOP_ORDER = (
    WATCHDOG,
    PROVISIONER,
    "kube-router",
    "kube-proxy",
    "kubelet",
    "containerd",
    "kwok",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)
STOP_GRACE = {"kube-apiserver": 2.0, "kube-proxy": 2.0, "kube-router": 2.0}
DEFAULT_STOP_GRACE = 5.0


class ClusterError(RuntimeError):
    """The local cluster could not be started (missing binaries, a component failed)."""


@dataclass(frozen=True)
class Timings:
    api_ready: float
    cluster_ready: float


@dataclass(frozen=True)
class ClusterInfo:
    root: Path
    kubeconfig: Path
    server: str
    timings: Timings | None = None


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    alive: bool
    log: str
    rss: int
    """Resident memory in bytes (0 when stopped)."""
    processes: int = 1
    """More than one for a node's containers or shims (pid is then the first of them)."""


@dataclass(frozen=True)
class ClusterStatus:
    root: Path
    kubeconfig: Path | None
    server: str
    api_ready: bool
    components: tuple[ComponentStatus, ...]

    @property
    def running(self) -> bool:
        return any(c.alive for c in self.components)

    @property
    def rss(self) -> int:
        return sum(c.rss for c in self.components)


def _kind(name: str) -> str:
    """kubelet/surge-east-a -> kubelet: node daemons stop by kind, all nodes at once."""
    return name.split("/", 1)[0]


@dataclass
class LocalCluster:
    root: Path
    binaries: Path = field(default_factory=bin_dir)
    real_nodes: Sequence[NodeSpec] = DEFAULT_REAL_NODES
    nodes: Sequence[FakeNode] = ()
    """kwok nodes: Ready and schedulable but running nothing (many-node benchmarks)."""
    python: str = sys.executable
    owner_pid: int | None = None
    """When set, a watchdog process brings the cluster down once this process dies."""

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    # ----------------------------------------------------------------- up
    def up(self, *, timeout: float = 90.0) -> ClusterInfo:
        """Start everything and wait until nodes are Ready and pods can be created."""
        missing = missing_binaries(self.binaries, self.required_binaries())
        if missing:
            raise ClusterError(
                f"missing binaries in {self.binaries}: {', '.join(missing)} "
                "(run tools/build-k8s.sh)"
            )
        status = self.status()
        if status.running:
            if status.api_ready and all(c.alive for c in status.components):
                log.info("cluster already running in %s", self.root)
                assert status.kubeconfig is not None
                return ClusterInfo(self.root, status.kubeconfig, status.server)
            log.info("cleaning up a partly running cluster in %s", self.root)
            self.down()
        try:
            return self._start(timeout)
        except NotReadyError as err:
            report = self._exited_report()
            self.down()
            raise ClusterError(f"{err}{report}") from err
        except BaseException:
            self.down()
            raise

    def _exited_report(self) -> str:
        """Which recorded processes died, with the end of their logs (for the error)."""
        lines = []
        for record in load_state(self.layout).processes:
            if not procs.record_alive(record):
                try:
                    tail = Path(record.log).read_text(errors="replace").splitlines()[-5:]
                except OSError:
                    tail = []
                lines.append(f"\n{record.name} exited; {record.log} ends with:")
                lines += [f"\n  {line[:300]}" for line in tail]
        return "".join(lines)

    def required_binaries(self) -> tuple[str, ...]:
        needed = [b for b in CONTROL_PLANE_BINARIES if b != "kwok" or self.nodes]
        if self.real_nodes:
            needed += NODE_BINARIES
        return tuple(needed)

    def _start(self, timeout: float) -> ClusterInfo:
        started = time.monotonic()
        layout = self.layout
        layout.root.mkdir(parents=True, exist_ok=True)
        keys = pki.ensure_pki(layout.pki)
        tokens = pki.read_tokens(keys)
        ports = allocate_ports()
        state = State(ports=ports, kubeconfig=str(layout.kubeconfig))
        pool: NodePool | None = None
        access: components.NodeAccess | None = None
        if self.real_nodes:
            # Images first: a missing input fails before anything is created.
            archives = images.builtin_images(self.binaries)
            with hostnet.allocation_lock():
                subnet = hostnet.pick_subnet()
                state.subnet = subnet
                state.real_nodes = [
                    {"name": n.name, "region": n.region, "zone": n.zone} for n in self.real_nodes
                ]
                save_state(layout, state)
                pool = NodePool(layout, plan(layout.root, subnet, self.real_nodes), self.binaries)
                pool.create_network(ports.apiserver)
            access = self._node_access(keys, pool.net.gateway)
            server = f"https://{pool.net.gateway}:{ports.apiserver}"
        else:
            server = f"https://127.0.0.1:{ports.apiserver}"
        state.server = server
        save_state(layout, state)
        self._write_configs(keys, tokens, server)

        etcd = self._spawn(state, components.etcd(self.binaries, layout, ports))
        wait_until(
            "etcd",
            lambda: http_ok(f"http://127.0.0.1:{ports.etcd_client}/health"),
            timeout=timeout,
            alive=lambda: procs.record_alive(etcd),
        )
        api = self._spawn(
            state, components.kube_apiserver(self.binaries, layout, keys, ports, access)
        )
        rest = Rest(server, tokens["admin"], keys.ca_cert)
        wait_until(
            "kube-apiserver",
            lambda: http_ok(f"{server}/readyz", token=tokens["admin"], ca_file=keys.ca_cert),
            timeout=timeout,
            alive=lambda: procs.record_alive(api),
        )
        api_ready = time.monotonic() - started
        log.info("kube-apiserver ready after %.1f s", api_ready)

        self._spawn(state, components.kube_controller_manager(self.binaries, layout, keys, ports))
        self._spawn(state, components.kube_scheduler(self.binaries, layout, ports))
        if self.nodes:
            self._spawn(state, components.kwok(self.binaries, layout, ports))
        if pool is not None:
            self._start_nodes(pool, rest, keys, state, archives, timeout)
        if self.owner_pid is not None:
            owner_start = procs.process_start_time(self.owner_pid) or 0
            self._spawn_python(
                state,
                WATCHDOG,
                "surge_cluster.watchdog",
                f"--owner={self.owner_pid}",
                f"--owner-start={owner_start}",
                f"--dir={layout.root}",
            )
        for node in self.nodes:
            rest.create("/api/v1/nodes", node_manifest(node))
        self._wait_cluster_ready(rest, state, timeout)
        ready = time.monotonic() - started
        log.info("cluster ready after %.1f s", ready)
        return ClusterInfo(layout.root, layout.kubeconfig, server, Timings(api_ready, ready))

    def _node_access(self, keys: pki.Pki, gateway: str) -> components.NodeAccess:
        certs = self.layout.root / "node-access"
        serving = nodecerts.apiserver_serving(keys, certs / "apiserver-serving", gateway)
        client = nodecerts.issue(
            keys, certs / "apiserver-kubelet-client", nodecerts.APISERVER_KUBELET_CLIENT
        )
        return components.NodeAccess(gateway, serving.cert, serving.key, client.cert, client.key)

    def _start_nodes(
        self,
        pool: NodePool,
        rest: Rest,
        keys: pki.Pki,
        state: State,
        archives: list[Path],
        timeout: float,
    ) -> None:
        """RBAC and Node objects first (labels, pod CIDRs), then containerd, images, agents."""
        for obj in addons.node_rbac():
            rest.create(addons.collection_path(obj), obj)
        for node in pool.net.nodes:
            rest.create("/api/v1/nodes", real_node_manifest(node))
        pool.prepare(keys, state.server)

        def spawn(component: components.Component) -> procs.ProcessRecord:
            return self._spawn(state, component)

        pool.start_runtimes(spawn, timeout)
        pool.load_images(archives)
        kernelknobs.save_baseline()
        pool.start_agents(spawn)
        self._wait_nodes_ready(rest, state, timeout)
        pool.start_policy(spawn)
        self._start_storage(pool, rest, keys, state)
        for obj in addons.coredns(images.coredns_ref()):
            rest.create(addons.collection_path(obj), obj)

    def _start_storage(self, pool: NodePool, rest: Rest, keys: pki.Pki, state: State) -> None:
        """The default StorageClass `standard` and its provisioner: node-local volumes
        under each node's state directory, as kind's local-path provisioner gives kind."""
        for obj in addons.storage():
            rest.create(addons.collection_path(obj), obj)
        pair = nodecerts.issue(
            keys, self.layout.root / "node-access" / PROVISIONER, nodecerts.PROVISIONER_USER
        )
        kubeconfig = write_cert_kubeconfig(
            self.layout.component_kubeconfig(PROVISIONER),
            state.server,
            keys.ca_cert,
            pair.cert,
            pair.key,
            nodecerts.PROVISIONER_USER,
        )
        self._spawn_python(
            state,
            PROVISIONER,
            "surge_cluster.provisioner",
            f"--kubeconfig={kubeconfig}",
            *(f"--node-dir={n.name}={pool.paths(n).volumes}" for n in pool.net.nodes),
        )

    def load_images(self, archives: Sequence[Path]) -> None:
        """Import image archives (docker-archive or OCI tar) into every real node."""
        pool = self._pool()
        if pool is None:
            raise ClusterError(f"no real nodes recorded in {self.layout.state_file}")
        pool.load_images(archives)

    def node_netns(self, node: str | None = None) -> str:
        """The network namespace of a real node (the first one by default)."""
        pool = self._pool()
        if pool is None or not pool.net.nodes:
            raise ClusterError(f"no real nodes recorded in {self.layout.state_file}")
        return pool.net.node(node).netns if node else pool.net.nodes[0].netns

    def on_node(self, argv: Sequence[str], node: str | None = None) -> list[str]:
        """argv as a host process on a real node: its network and the cluster DNS."""
        resolv = self.layout.root / "node-resolv.conf"
        if not resolv.exists():
            resolv.write_text(netns.resolv_conf())
        return netns.node_argv(self.node_netns(node), resolv, argv)

    def _pool(self) -> NodePool | None:
        state = load_state(self.layout)
        if not state.subnet:
            return None
        specs = [NodeSpec(n["name"], n["region"], n["zone"]) for n in state.real_nodes]
        return NodePool.for_state(self.layout, state.subnet, specs, self.binaries)

    def leftovers(self) -> list[str]:
        """Everything of this cluster still on the machine: processes, mounts, netns, links,
        nftables table, cgroups, node state (empty after `down`)."""
        from surge_cluster.nodes import processes_mentioning

        pool = self._pool()
        found = pool.leftovers() if pool else []
        found += [f"process {pid}" for pid in processes_mentioning(str(self.layout.root))]
        return sorted(set(found))

    def _write_configs(self, keys: pki.Pki, tokens: dict[str, str], server: str) -> None:
        layout = self.layout
        ca_pem = keys.ca_cert.read_bytes()
        write_kubeconfig(layout.kubeconfig, server, ca_pem, tokens["admin"], "surge-admin")
        for ident in pki.IDENTITIES:
            write_kubeconfig(
                layout.component_kubeconfig(ident.name),
                server,
                ca_pem,
                tokens[ident.name],
                ident.user,
            )
        layout.kwok_config.write_text(kwokconfig.render())

    def _spawn(self, state: State, component: components.Component) -> procs.ProcessRecord:
        _, record = procs.spawn(
            component.name, component.argv, self.layout.log(component.name), env=component.env
        )
        state.processes.append(record)
        save_state(self.layout, state)
        log.info("started %s (pid %d)", component.name, record.pid)
        return record

    def _spawn_python(self, state: State, name: str, module: str, *args: str) -> None:
        layout = self.layout
        argv = (self.python, "-m", module, *args)
        env = dict(os.environ)
        # Make surge_cluster importable even when it is not installed (plain checkout).
        tools = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (tools, env.get("PYTHONPATH")) if p)
        _, record = procs.spawn(name, argv, layout.log(name), env=env)
        state.processes.append(record)
        save_state(layout, state)
        log.info("started %s (pid %d)", name, record.pid)

    def _wait_nodes_ready(self, rest: Rest, state: State, timeout: float) -> None:
        names = [n.name for n in self.nodes] + [n.name for n in self.real_nodes]

        def nodes_ready() -> bool:
            items = rest.get("/api/v1/nodes").get("items", [])
            ready = {
                n["metadata"]["name"]
                for n in items
                for c in n.get("status", {}).get("conditions") or []
                if c.get("type") == "Ready" and c.get("status") == "True"
            }
            return all(name in ready for name in names)

        wait_until(
            "nodes Ready",
            nodes_ready,
            timeout=timeout,
            alive=lambda: all(procs.record_alive(p) for p in state.processes),
        )

    def _wait_cluster_ready(self, rest: Rest, state: State, timeout: float) -> None:
        def all_alive() -> bool:
            return all(procs.record_alive(p) for p in state.processes)

        def dns_ready() -> bool:
            dep = rest.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
            return int((dep.get("status") or {}).get("readyReplicas") or 0) >= 1

        self._wait_nodes_ready(rest, state, timeout)
        if self.real_nodes:
            wait_until("CoreDNS ready", dns_ready, timeout=timeout, alive=all_alive)
        wait_until(
            "default ServiceAccount (kube-controller-manager)",
            lambda: rest.exists("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout=timeout,
            alive=all_alive,
        )

    # ----------------------------------------------------------------- down
    def down(self) -> list[str]:
        """Stop every recorded process (bounded wait, then SIGKILL). Returns the killed ones."""
        layout = self.layout
        state = load_state(layout)
        killed: list[str] = []
        order = {name: i for i, name in enumerate(STOP_ORDER)}
        pool = self._pool()
        for record in sorted(state.processes, key=lambda p: order.get(_kind(p.name), -1)):
            if record.pid == os.getpid():
                continue  # the watchdog bringing the cluster down
            if _kind(record.name) == "containerd" and pool is not None:
                # Containers die with their cgroup before their runtime goes away.
                for node in pool.net.nodes:
                    from surge_cluster.nodes import kill_containers

                    kill_containers(node.cgroup_root)
            grace = STOP_GRACE.get(_kind(record.name), DEFAULT_STOP_GRACE)
            if procs.stop(record, grace=grace):
                killed.append(record.name)
        if pool is not None:
            problems = pool.remove()
            if problems:
                log.warning("down left behind: %s", "; ".join(problems))
            if not hostnet.any_cluster_netns():
                kernelknobs.restore()  # the last local cluster on this machine is gone
        state.processes = []
        state.subnet = ""
        state.real_nodes = []
        save_state(layout, state)
        return killed

    def stop_process(self, name: str) -> procs.ProcessRecord:
        """Stop one recorded process, e.g. `kube-apiserver` for a fault test, and drop it
        from the state; `start_process(record)` starts it again with the same command."""
        state = load_state(self.layout)
        record = next((r for r in state.processes if r.name == name), None)
        if record is None:
            raise ClusterError(f"no running {name} recorded in {self.root}")
        procs.stop(record, grace=STOP_GRACE.get(_kind(name), DEFAULT_STOP_GRACE))
        state.processes = [r for r in state.processes if r.pid != record.pid]
        save_state(self.layout, state)
        return record

    def signal_process(self, name: str, sig: signal.Signals) -> procs.ProcessRecord:
        """Send one recorded process a signal, e.g. SIGSTOP and later SIGCONT to
        `kube-apiserver` for a fault test (it stays recorded: it is frozen, not gone)."""
        record = next((r for r in load_state(self.layout).processes if r.name == name), None)
        if record is None or not procs.send(record, sig):
            raise ClusterError(f"no running {name} recorded in {self.root}")
        return record

    def start_process(self, record: procs.ProcessRecord) -> procs.ProcessRecord:
        grace = STOP_GRACE.get(_kind(record.name), DEFAULT_STOP_GRACE)
        component = components.Component(record.name, record.argv, stop_grace=grace)
        return self._spawn(load_state(self.layout), component)

    # ----------------------------------------------------------------- status
    def status(self) -> ClusterStatus:
        layout = self.layout
        state = load_state(layout)
        comps = tuple(
            ComponentStatus(p.name, p.pid, alive, p.log, procs.rss_bytes(p.pid) if alive else 0)
            for p in state.processes
            for alive in (procs.record_alive(p),)
        )
        api_ready = False
        if state.server and comps:
            keys = pki.Pki(layout.pki)
            try:
                token = pki.read_tokens(keys)["admin"]
                api_ready = http_ok(f"{state.server}/readyz", token=token, ca_file=keys.ca_cert)
            except (OSError, KeyError):
                api_ready = False
        kubeconfig = Path(state.kubeconfig) if state.kubeconfig else None
        pool = self._pool()
        if pool is not None and comps:
            comps += tuple(_workload_status(pool))
        return ClusterStatus(layout.root, kubeconfig, state.server, api_ready, comps)


def _workload_status(pool: NodePool) -> list[ComponentStatus]:
    """What runs on the nodes besides their daemons: containerd shims and containers."""
    from surge_cluster import nodes

    out = []
    for node in pool.net.nodes:
        paths = pool.paths(node)
        groups = {
            f"shims/{node.name}": nodes.shim_pids(paths),
            f"containers/{node.name}": sorted(nodes.cgroup_pids(node.cgroup_root)),
        }
        for name, pids in groups.items():
            if pids:
                rss = sum(procs.rss_bytes(pid) for pid in pids)
                out.append(ComponentStatus(name, pids[0], True, "-", rss, len(pids)))
    return out


__all__ = [
    "ClusterError",
    "ClusterInfo",
    "ClusterStatus",
    "ComponentStatus",
    "LocalCluster",
    "NotReadyError",
    "Ports",
    "Timings",
]
