"""Command lines of the control plane components (pure: paths and ports in, argv out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from surge_cluster.layout import Layout
from surge_cluster.pki import Pki
from surge_cluster.ports import Ports

SERVICE_CIDR = "10.96.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Component:
    name: str
    argv: tuple[str, ...]
    stop_grace: float
    """Seconds between SIGTERM and SIGKILL on `down`."""
    env: Mapping[str, str] | None = None
    """The whole environment (None: inherit the caller's)."""


def etcd(bin_dir: Path, layout: Layout, ports: Ports) -> Component:
    client = f"http://{LOOPBACK}:{ports.etcd_client}"
    peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
    return Component(
        "etcd",
        (
            str(bin_dir / "etcd"),
            "--name=surge",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=surge={peer}",
            "--initial-cluster-state=new",
            # A throwaway test store: durability is not worth the fsync latency.
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ),
        stop_grace=5.0,
    )


@dataclass(frozen=True)
class NodeAccess:
    """How the API server is reached by real nodes and reaches their kubelets."""

    address: str
    """The bridge address it binds and advertises (the `kubernetes` Service endpoint)."""
    serving_cert: Path
    serving_key: Path
    kubelet_client_cert: Path
    kubelet_client_key: Path


def kube_apiserver(
    bin_dir: Path, layout: Layout, pki: Pki, ports: Ports, nodes: NodeAccess | None = None
) -> Component:
    if nodes is None:
        address = LOOPBACK
        serving = (pki.serving_cert, pki.serving_key)
        # On loopback the kubernetes Service endpoint would be rejected (loopback address).
        node_args: tuple[str, ...] = ("--endpoint-reconciler-type=none",)
    else:
        address = nodes.address
        serving = (nodes.serving_cert, nodes.serving_key)
        node_args = (
            f"--kubelet-client-certificate={nodes.kubelet_client_cert}",
            f"--kubelet-client-key={nodes.kubelet_client_key}",
            f"--kubelet-certificate-authority={pki.ca_cert}",
            # Without it logs/exec/port-forward try to resolve the node name: "no such host".
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        )
    return Component(
        "kube-apiserver",
        (
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://{LOOPBACK}:{ports.etcd_client}",
            f"--bind-address={address}",
            f"--advertise-address={address}",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={layout.root / 'apiserver-certs'}",
            f"--tls-cert-file={serving[0]}",
            f"--tls-private-key-file={serving[1]}",
            f"--client-ca-file={pki.ca_cert}",
            # Published in extension-apiserver-authentication: the controller manager and the
            # scheduler log errors every few seconds without a request-header CA.
            f"--requestheader-client-ca-file={pki.ca_cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--token-auth-file={pki.tokens_csv}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            *node_args,
            "--allow-privileged=true",
            "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
            "DefaultStorageClass,DefaultTolerationSeconds,MutatingAdmissionWebhook,"
            "ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,ResourceQuota,"
            "PodSecurity,Priority,StorageObjectInUseProtection,RuntimeClass,"
            "TaintNodesByCondition,PersistentVolumeClaimResize,CertificateApproval,"
            "CertificateSigning,CertificateSubjectRestriction,DefaultIngressClass",
            "--profiling=false",
            "--v=1",
        ),
        # The API server takes ~60 s to exit on SIGTERM (graceful shutdown): do not wait.
        stop_grace=2.0,
    )


def kube_controller_manager(bin_dir: Path, layout: Layout, pki: Pki, ports: Ports) -> Component:
    kubeconfig = layout.component_kubeconfig("controller-manager")
    return Component(
        "kube-controller-manager",
        (
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={ports.controller_manager}",
            f"--cert-dir={layout.root / 'controller-manager-certs'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--kube-api-qps=100",
            "--kube-api-burst=200",
            "--profiling=false",
            "--v=1",
        ),
        stop_grace=5.0,
    )


def kube_scheduler(bin_dir: Path, layout: Layout, ports: Ports) -> Component:
    kubeconfig = layout.component_kubeconfig("scheduler")
    return Component(
        "kube-scheduler",
        (
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={ports.scheduler}",
            f"--cert-dir={layout.root / 'scheduler-certs'}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ),
        stop_grace=5.0,
    )


def kwok(bin_dir: Path, layout: Layout, ports: Ports) -> Component:
    return Component(
        "kwok",
        (
            str(bin_dir / "kwok"),
            f"--kubeconfig={layout.component_kubeconfig('kwok')}",
            f"--config={layout.kwok_config}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--node-ip={LOOPBACK}",
            f"--server-address={LOOPBACK}:{ports.kwok}",
            "--node-lease-duration-seconds=40",
        ),
        stop_grace=5.0,
    )
