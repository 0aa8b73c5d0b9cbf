"""Pinned component versions (tools/versions.env) and where their binaries are cached."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent.parent
VERSIONS_FILE = TOOLS_DIR / "versions.env"
BUILD_SCRIPT = TOOLS_DIR / "build-k8s.sh"

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
    "helm",
    "kubelet",
    "kube-proxy",
    "coredns",
    "kube-router",
)
"""Every binary the build step produces."""

CONTROL_PLANE_BINARIES = BINARIES[:5]
NODE_BINARIES = ("kubelet", "kube-proxy", "coredns", "kube-router")
"""What real nodes add to the control plane (kwok is only needed for fake nodes)."""


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str
    kwok: str
    helm: str
    coredns: str
    kube_router: str


def parse_versions(text: str) -> Versions:
    """Parse the KEY=VALUE lines of versions.env (comments and blanks ignored)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"')
    return Versions(
        kubernetes=values["KUBERNETES_VERSION"],
        etcd=values["ETCD_VERSION"],
        kwok=values["KWOK_VERSION"],
        helm=values["HELM_VERSION"],
        coredns=values["COREDNS_VERSION"],
        kube_router=values["KUBE_ROUTER_VERSION"],
    )


def load_versions(path: Path = VERSIONS_FILE) -> Versions:
    return parse_versions(path.read_text())


def cache_root() -> Path:
    """Root of the per-user binary cache (same rule as tools/build-k8s.sh)."""
    if explicit := os.environ.get("SURGE_K8S_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "surge" / "k8s"


def bin_dir(versions: Versions | None = None) -> Path:
    """Directory holding the built binaries; SURGE_K8S_BIN_DIR overrides it."""
    if explicit := os.environ.get("SURGE_K8S_BIN_DIR"):
        return Path(explicit)
    return cache_root() / (versions or load_versions()).kubernetes / "bin"


def missing_binaries(directory: Path, names: tuple[str, ...] = BINARIES) -> list[str]:
    return [name for name in names if not os.access(directory / name, os.X_OK)]
