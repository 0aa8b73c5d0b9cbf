"""The fake nodes kwok keeps Ready: two regions (east, west), two zones each.

Labels match kind-config.yaml so the same e2e tests select nodes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


@dataclass(frozen=True)
class FakeNode:
    name: str
    region: str
    zone: str


DEFAULT_NODES = (
    FakeNode("kwok-east-a", "east", "east-a"),
    FakeNode("kwok-east-b", "east", "east-b"),
    FakeNode("kwok-west-a", "west", "west-a"),
    FakeNode("kwok-west-b", "west", "west-b"),
)


def node_manifest(node: FakeNode) -> dict[str, Any]:
    """A Node object kwok will manage (annotation) with generous allocatable resources."""
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                REGION_LABEL: node.region,
                ZONE_LABEL: node.zone,
            },
        },
        "spec": {},
        "status": {"allocatable": resources, "capacity": resources},
    }
