"""Names, ports and URLs of a managed NATS cluster, in one place so builders, handlers and
tests agree. Pure: depends on the spec model only.

One StatefulSet per managed region, `<cluster>-nats-<region>`; its pods are
`<cluster>-nats-<region>-<ordinal>`, reachable by DNS through the headless Service
`<cluster>-nats-<region>-headless`. Clients use the Service `<cluster>-nats-<region>`.
"""

from __future__ import annotations

from typing import Final

from surge_operator.api import Region

CLIENT_PORT: Final = 4222
CLUSTER_PORT: Final = 6222
LEAFNODE_PORT: Final = 7422
MONITOR_PORT: Final = 8222
METRICS_PORT: Final = 7777

CONFIG_DIR: Final = "/etc/nats"
CONFIG_FILE: Final = "nats.conf"
DATA_DIR: Final = "/data"
TLS_DIR: Final = "/etc/nats/tls"
RUN_DIR: Final = "/var/run/nats"

#: the account every Surge identity lives in, and nats-server's system account
APP_ACCOUNT: Final = "SURGE"
SYSTEM_ACCOUNT: Final = "SYS"

REGION_LABEL: Final = "surge.dev/nats-region"


def nats_name(cluster: str, region: str) -> str:
    """StatefulSet, client Service, ConfigMap and PDB share this name."""
    return f"{cluster}-nats-{region}"


def nats_selector_labels(selector: dict[str, str], region: str) -> dict[str, str]:
    """One region's servers: the component selector plus the region."""
    return {**selector, REGION_LABEL: region}


def headless_name(cluster: str, region: str) -> str:
    return f"{nats_name(cluster, region)}-headless"


def pod_host(cluster: str, namespace: str, region: str, ordinal: int) -> str:
    """Stable DNS name of one server (StatefulSet pod behind the headless Service)."""
    return (
        f"{nats_name(cluster, region)}-{ordinal}.{headless_name(cluster, region)}.{namespace}.svc"
    )


def client_host(cluster: str, namespace: str, region: str) -> str:
    return f"{nats_name(cluster, region)}.{namespace}.svc"


def js_domain(region: Region) -> str:
    """JetStream domain of a region: explicit, else the region name."""
    return region.jetstream_domain or region.name


def region_url(cluster: str, namespace: str, region: Region) -> str:
    """Where clients reach a region's NATS: the external URL, or the managed client Service
    (`tls://` when the region requires TLS, so clients refuse a plain connection)."""
    if region.nats.url is not None:
        return region.nats.url
    scheme = "tls" if region.nats.tls else "nats"
    return f"{scheme}://{client_host(cluster, namespace, region.name)}:{CLIENT_PORT}"
