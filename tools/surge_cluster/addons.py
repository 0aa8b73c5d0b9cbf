"""What a cluster with real nodes needs in the API (pure builders: values in, manifests out).

- RBAC for the node-side identities: the API server's kubelet client may use the kubelet
  API (system:kubelet-api-admin), kube-router reads what NetworkPolicy enforcement needs.
- Storage: the default StorageClass `standard` (localpath.py) and the RBAC of its
  provisioner, which creates and deletes PersistentVolumes and reads claims, nothing else.
- Cluster DNS: CoreDNS as a Deployment in kube-system behind the kube-dns Service at
  10.96.0.10. It answers cluster.local (and reverse lookups of cluster addresses) only and
  forwards nothing upstream; other names get REFUSED. Non-root, read-only root filesystem.
"""

from __future__ import annotations

from typing import Any

from surge_cluster import localpath
from surge_cluster.netplan import CLUSTER_DOMAIN, DNS_SERVICE_IP
from surge_cluster.nodecerts import APISERVER_KUBELET_CLIENT, KUBE_ROUTER_USER, PROVISIONER_USER

DNS_PORT = 53
"""CoreDNS listens on 53 inside its pod, as in kind and managed clusters, so NetworkPolicies
that allow DNS egress to port 53 work here too (policies match the port after kube-proxy's
DNAT). It still needs no capability: the pod's namespaced, "safe" sysctl
net.ipv4.ip_unprivileged_port_start lets its non-root user bind 53."""

COREFILE = f"""{CLUSTER_DOMAIN}:{DNS_PORT} in-addr.arpa:{DNS_PORT} ip6.arpa:{DNS_PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        ttl 30
    }}
    cache 30
    loadbalance
}}
"""


def _binding(name: str, role: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def node_rbac() -> list[dict[str, Any]]:
    watch = ["get", "list", "watch"]
    router_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "surge:kube-router"},
        "rules": [
            _rule([""], ["namespaces", "pods", "services", "nodes", "endpoints"], watch),
            _rule(["discovery.k8s.io"], ["endpointslices"], watch),
            _rule(["networking.k8s.io"], ["networkpolicies"], watch),
        ],
    }
    return [
        _binding(
            "surge:kube-apiserver-kubelet-client",
            "system:kubelet-api-admin",
            APISERVER_KUBELET_CLIENT,
        ),
        router_role,
        _binding("surge:kube-router", "surge:kube-router", KUBE_ROUTER_USER),
    ]


def storage() -> list[dict[str, Any]]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "surge:local-path-provisioner"},
        "rules": [
            _rule([""], ["persistentvolumes"], ["get", "list", "watch", "create", "delete"]),
            _rule([""], ["persistentvolumeclaims"], ["get", "list", "watch"]),
        ],
    }
    return [
        role,
        _binding("surge:local-path-provisioner", "surge:local-path-provisioner", PROVISIONER_USER),
        localpath.storage_class(),
    ]


def coredns(image: str) -> list[dict[str, Any]]:
    ns = "kube-system"
    labels = {"k8s-app": "kube-dns"}
    meta = {"name": "coredns", "namespace": ns}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:coredns"},
        "rules": [
            _rule([""], ["endpoints", "services", "pods", "namespaces"], ["list", "watch"]),
            _rule(["discovery.k8s.io"], ["endpointslices"], ["list", "watch"]),
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:coredns"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:coredns",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
    }
    container = {
        "name": "coredns",
        "image": image,
        "imagePullPolicy": "Never",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": DNS_PORT, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": DNS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": 8080},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
        },
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**meta, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "coredns",
                    "priorityClassName": "system-cluster-critical",
                    "dnsPolicy": "Default",
                    "securityContext": {
                        "sysctls": [
                            {"name": "net.ipv4.ip_unprivileged_port_start", "value": str(DNS_PORT)}
                        ]
                    },
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
        "spec": {
            "clusterIP": DNS_SERVICE_IP,
            "selector": labels,
            "ports": [
                {"name": "dns", "port": 53, "targetPort": DNS_PORT, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "targetPort": DNS_PORT, "protocol": "TCP"},
            ],
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        role,
        binding,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        deployment,
        service,
    ]


# Where each kind is created (REST collection paths).
_PATHS = {
    ("v1", "ServiceAccount"): "/api/v1/namespaces/{ns}/serviceaccounts",
    ("v1", "ConfigMap"): "/api/v1/namespaces/{ns}/configmaps",
    ("v1", "Service"): "/api/v1/namespaces/{ns}/services",
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{ns}/deployments",
    ("storage.k8s.io/v1", "StorageClass"): "/apis/storage.k8s.io/v1/storageclasses",
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
    ): "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
    ): "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


def collection_path(obj: dict[str, Any]) -> str:
    path = _PATHS[(obj["apiVersion"], obj["kind"])]
    return path.format(ns=obj["metadata"].get("namespace", ""))
