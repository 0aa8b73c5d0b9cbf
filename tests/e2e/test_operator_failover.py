"""Regional failover driven by the operator: two real nats-servers (east primary, west
standby mirroring over a leafnode), the primary dies, the operator promotes west, records
it on status and in an Event, and repoints the pods' configuration; the primary returns
and an explicit failback (annotation) brings traffic home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.operator_support import Clusters, OperatorProcess, eventually, install_crd, manifest
from tests.fixtures.nats_regions import Regions, running_regions

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[Regions]:
    with running_regions(["east", "west"], tmp_path / "regions") as r:
        yield r


def test_primary_loss_promotes_the_standby_and_repoints_the_pods(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path, regions: Regions
) -> None:
    install_crd(kube_cluster)
    clusters = Clusters(kube_cluster, kube_namespace)
    op = OperatorProcess(kube_cluster, kube_namespace, tmp_path).start()
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
        eventually("Ready", lambda: clusters.is_true("geo", "Ready"), timeout=90)
        assert (clusters.get("geo") or {})["status"]["activeRegion"] == "east"
        eventually(
            "FailedOver=False from the probes",
            lambda: (c := clusters.condition("geo", "FailedOver")) and c["status"] == "False",
        )

        regions.servers["east"].kill()
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
                clusters.core.read_namespaced_config_map("geo-config", kube_namespace).data[
                    "SURGE_NATS_URL"
                ]
                == west
            ),
            timeout=60,
        )
        eventually(
            "StreamReady on west", lambda: clusters.is_true("geo", "StreamReady"), timeout=60
        )
        events = kube_cluster.kubectl(
            "get", "events", "-n", kube_namespace, "--field-selector",
            "involvedObject.name=geo", "-o", "jsonpath={.items[*].type}",
        ).stdout  # fmt: skip
        assert "Warning" in events

        # the old primary returns: it is fenced and becomes a mirror of west; an explicit
        # failback (annotation) moves traffic home and the annotation is cleared
        regions.servers["east"].restart()
        kube_cluster.kubectl(
            "annotate", "-n", kube_namespace, "mc/geo", "surge.dev/failback=requested"
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
                clusters.core.read_namespaced_config_map("geo-config", kube_namespace).data[
                    "SURGE_NATS_URL"
                ]
                == east
            ),
            timeout=60,
        )
    finally:
        op.stop()
