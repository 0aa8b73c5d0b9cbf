"""Configuration files of one real node (pure: paths and addresses in, text out).

Each node has its own containerd (root, state, socket, runc root, CNI config and IPAM
store), its own kubelet root, pod log directory and cgroup root, so two nodes on one
machine never share state. The facts these files encode were paid for on these machines:
runc cannot lower oom_score_adj here (no CAP_SYS_RESOURCE), the hosts boot cgroup v1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from surge_cluster.netplan import (
    CLUSTER_CIDR,
    CLUSTER_DOMAIN,
    DNS_SERVICE_IP,
    NetPlan,
    NodeNet,
)

PAUSE_IMAGE = "surge.local/pause:3.10"
CNI_BIN_DIR = "/usr/lib/cni"
CRI_NAMESPACE = "k8s.io"


@dataclass(frozen=True)
class NodePaths:
    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.root / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni"

    @property
    def ipam_dir(self) -> Path:
        return self.root / "ipam"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy.yaml"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def volumes(self) -> Path:
        """The node's dynamically provisioned volumes (one directory each; localpath.py)."""
        return self.root / "volumes"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    def kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"


def containerd_toml(paths: NodePaths) -> str:
    """containerd 1.6 (Debian) config: CRI only, overlayfs, this node's CNI and runc root."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{paths.containerd_root}"
state = "{paths.containerd_state}"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{paths.socket}"

[ttrpc]
  address = ""

[metrics]
  address = ""

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: without this runc fails the pause container with
  # "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  max_container_log_line_size = 16384

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
  discard_unpacked_layers = false

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{paths.runc_root}"

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{paths.cni_conf_dir}"
  max_conf_num = 1

[plugins."io.containerd.internal.v1.opt"]
  path = "{paths.root / "opt"}"
"""


def cni_conflist(node: NodeNet, paths: NodePaths) -> str:
    """A bridge inside the node's namespace; no masquerade here (hostnet adds one that
    spares pod-to-pod traffic, so NetworkPolicy sees real pod addresses across nodes)."""
    conf = {
        "cniVersion": "0.4.0",
        "name": node.cni_network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.ipam_dir),
                    "ranges": [[{"subnet": node.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conf, indent=2) + "\n"


def kubelet_config(node: NodeNet, paths: NodePaths, ca_file: Path) -> str:
    serving = paths.certs / "kubelet-serving"
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # These hosts boot the cgroup v1 hierarchy; Kubernetes >= 1.35 refuses it otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "containerRuntimeEndpoint": f"unix://{paths.socket}",
        "address": node.ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(serving.with_suffix(".crt")),
        "tlsPrivateKeyFile": str(serving.with_suffix(".key")),
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(paths.resolv_conf),
        "podLogsDir": str(paths.pod_logs),
        "volumePluginDir": str(paths.kubelet_dir / "volume-plugins"),
        "failSwapOn": False,
        "protectKernelDefaults": False,
        "serializeImagePulls": False,
        # Images are imported, never pulled (no registry): garbage collection must keep them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "maxPods": 110,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "logging": {"verbosity": 1},
    }
    return yaml.safe_dump(config, sort_keys=False)


def kube_proxy_config(node: NodeNet, paths: NodePaths) -> str:
    config: dict[str, Any] = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(paths.kubeconfig("kube-proxy"))},
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "hostnameOverride": node.name,
        "bindAddress": node.ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{node.ip}/32"],
        # Conntrack limits are machine-wide knobs: a node in a namespace must not set them.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "logging": {"verbosity": 1},
    }
    return yaml.safe_dump(config, sort_keys=False)


def resolv_conf() -> str:
    """The node's "upstream" resolver file: empty on purpose, nothing leaves the cluster."""
    return "# surge local cluster: no upstream DNS; CoreDNS answers cluster.local only\n"


def node_labels(node: NodeNet) -> dict[str, str]:
    from surge_cluster.netplan import REGION_LABEL, ZONE_LABEL

    return {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        REGION_LABEL: node.spec.region,
        ZONE_LABEL: node.spec.zone,
    }


def node_manifest(node: NodeNet) -> dict[str, Any]:
    """The Node object created before its kubelet starts: labels and a fixed pod CIDR
    (the CNI config on the node uses the same range)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": node_labels(node)},
        "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
    }


def plan_summary(plan: NetPlan) -> dict[str, Any]:
    return {
        "bridge": plan.bridge,
        "gateway": plan.gateway,
        "nodes": {
            n.name: {"ip": n.ip, "podCIDR": n.pod_cidr, "netns": n.netns} for n in plan.nodes
        },
    }
