"""Regional failover driven by the operator: two real nats-servers in the cluster (east
primary on the east node, west standby on the west node mirroring over a leafnode), the
primary dies, the operator promotes west, records it on status and in an Event, and
repoints the pods' configuration; the primary returns with its data and an explicit
failback (annotation) brings traffic home. Each region is its own JetStream domain, the
same layout as surge_operator.chaos.regions, with Service names instead of loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster_nats import (
    LEAF_PORT,
    ClusterNats,
    host_store,
    remove_store,
    require_real_nodes,
)
from tests.e2e.operator_support import Clusters, OperatorProcess, eventually, install_crd, manifest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def region_config(name: str, hub: str | None) -> str:
    """Its JetStream domain, and a leafnode listener (the hub) or a remote to the hub."""
    lines = [f"server_name: {name}", f'jetstream {{ domain: {name}, store_dir: "/data" }}']
    if hub is None:
        lines.append(f'leafnodes {{ listen: "0.0.0.0:{LEAF_PORT}" }}')
    else:
        remote = f'{{ urls: ["nats-leaf://{hub}:{LEAF_PORT}"] }}'
        lines.append(f"leafnodes {{ reconnect: 1s, remotes: [ {remote} ] }}")
    return "\n".join(lines) + "\n"


@dataclass
class Regions:
    servers: dict[str, ClusterNats]


@pytest.fixture
def regions(surge_images: KubeCluster, node_namespace: str) -> Iterator[Regions]:
    require_real_nodes(surge_images)
    store = host_store()  # east comes back with its data: a host directory, no StorageClass
    try:
        east = ClusterNats(surge_images, node_namespace, "nats-east", store=store, region="east")
        east.config = region_config("east", None)
        west = ClusterNats(surge_images, node_namespace, "nats-west", region="west")
        west.config = region_config("west", east.host)
        east.deploy()
        west.deploy()
        yield Regions({"east": east, "west": west})
    finally:
        surge_images.kubectl(
            "delete", "deployment", "nats-east", "-n", node_namespace, "--cascade=foreground",
            "--ignore-not-found", check=False,
        )  # fmt: skip
        remove_store(store)


def test_primary_loss_promotes_the_standby_and_repoints_the_pods(
    node_cluster: KubeCluster, node_namespace: str, tmp_path: Path, regions: Regions
) -> None:
    install_crd(node_cluster)
    clusters = Clusters(node_cluster, node_namespace)
    op = OperatorProcess(node_cluster, node_namespace, tmp_path).start()
    try:
        east, west = regions.servers["east"].url, regions.servers["west"].url
        clusters.create(
            manifest(
                "geo",
                east,
                regions=[
                    {"name": "east", "role": "primary", "nats": {"url": east}},
                    {"name": "west", "role": "standby", "nats": {"url": west}},
                ],
                failover={"probeIntervalSeconds": 0.5, "failureThreshold": 3},
            )
        )
        eventually("Ready", lambda: clusters.is_true("geo", "Ready"), timeout=180)
        assert (clusters.get("geo") or {})["status"]["activeRegion"] == "east"
        eventually(
            "FailedOver=False from the probes",
            lambda: (c := clusters.condition("geo", "FailedOver")) and c["status"] == "False",
        )

        regions.servers["east"].stop()
        promoted = eventually(
            "activeRegion west",
            lambda: (
                (s := (clusters.get("geo") or {}).get("status", {})).get("activeRegion") == "west"
                and s
            ),
            timeout=60,
        )
        assert promoted["failoverEpoch"] >= 1
        assert any(h["kind"] == "failover" for h in promoted["history"])
        assert clusters.is_true("geo", "FailedOver")
        eventually(
            "the pods' NATS URL follows",
            lambda: (
                clusters.core.read_namespaced_config_map("geo-config", node_namespace).data[
                    "SURGE_NATS_URL"
                ]
                == west
            ),
            timeout=60,
        )
        eventually(
            "StreamReady on west", lambda: clusters.is_true("geo", "StreamReady"), timeout=60
        )
        events = node_cluster.kubectl(
            "get", "events", "-n", node_namespace, "--field-selector",
            "involvedObject.name=geo", "-o", "jsonpath={.items[*].type}",
        ).stdout  # fmt: skip
        assert "Warning" in events

        # the old primary returns: it is fenced and becomes a mirror of west; an explicit
        # failback (annotation) moves traffic home and the annotation is cleared
        regions.servers["east"].start()
        node_cluster.kubectl(
            "annotate", "-n", node_namespace, "mc/geo", "surge.dev/failback=requested"
        )
        back = eventually(
            "activeRegion east again",
            lambda: (
                (s := (clusters.get("geo") or {}).get("status", {})).get("activeRegion") == "east"
                and s
            ),
            timeout=120,
        )
        assert any(h["kind"] == "failback" for h in back["history"])
        eventually(
            "the failback annotation cleared",
            lambda: (
                "surge.dev/failback"
                not in ((clusters.get("geo") or {})["metadata"].get("annotations") or {})
            ),
        )
        eventually(
            "FailedOver=False",
            lambda: (c := clusters.condition("geo", "FailedOver")) and c["status"] == "False",
        )
        eventually(
            "the pods' NATS URL back to east",
            lambda: (
                clusters.core.read_namespaced_config_map("geo-config", node_namespace).data[
                    "SURGE_NATS_URL"
                ]
                == east
            ),
            timeout=60,
        )
    finally:
        op.stop()
