"""Which Secrets hold a managed region's certificates (cert-manager's layout: tls.crt,
tls.key, ca.crt), and which names each certificate must carry. The spec may name the
Secrets; otherwise the operator issues them from its own CA for the cluster
(surge_operator.natspki, applied by handlers/nats.py) under the names below."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from surge_operator.api import Region
from surge_operator.resources.context import BuildContext
from surge_operator.resources.labels import metadata
from surge_operator.resources.nats.names import client_host, headless_name, nats_name

TlsKind = Literal["client", "route"]
CA_KEY = "ca.crt"
CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"


def generated_ca_secret(cluster: str) -> str:
    return f"{cluster}-nats-ca"


def generated_tls_secret(cluster: str, region: Region, kind: TlsKind) -> str:
    return f"{nats_name(cluster, region.name)}-tls-{kind}"


def given_tls_secret(region: Region, kind: TlsKind) -> str | None:
    managed = region.nats.managed
    if managed is None or managed.tls is None:
        return None
    return managed.tls.client_secret if kind == "client" else managed.tls.route_secret


def tls_secret(cluster: str, region: Region, kind: TlsKind) -> str:
    return given_tls_secret(region, kind) or generated_tls_secret(cluster, region, kind)


def client_tls_secret(cluster: str, region: Region) -> str:
    return tls_secret(cluster, region, "client")


def route_tls_secret(cluster: str, region: Region) -> str:
    return tls_secret(cluster, region, "route")


def ca_secret_for_clients(cluster: str, region: Region) -> str | None:
    """The Secret whose ca.crt clients trust in `region` (None: the system's roots)."""
    if region.nats.managed is not None:
        return client_tls_secret(cluster, region) if region.nats.tls else None
    return region.nats.ca_secret


def certificate_names(cluster: str, namespace: str, region: Region) -> list[str]:
    """DNS names every server certificate of a region carries: the client Service (clients
    and other regions' leafnodes dial it) and each server's stable name (routes)."""
    short = nats_name(cluster, region.name)
    headless = headless_name(cluster, region.name)
    return [
        client_host(cluster, namespace, region.name),
        f"{short}.{namespace}",
        short,
        f"*.{headless}.{namespace}.svc",
        f"*.{headless}.{namespace}.svc.cluster.local",
        f"{client_host(cluster, namespace, region.name)}.cluster.local",
    ]


def build_tls_secret(ctx: BuildContext, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    """A Secret in cert-manager's layout (kubernetes.io/tls plus ca.crt)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(ctx, name, "nats"),
        "type": "kubernetes.io/tls",
        "stringData": dict(data),
    }
