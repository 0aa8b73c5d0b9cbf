"""`surge-cluster down` leaves nothing behind: no process, mount, network namespace, veth,
bridge, nftables/iptables rule, cgroup, CNI cache entry, containerd state or volume directory.

Starts its own cluster (not the shared session one) so it can bring it down mid-session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from surge_cluster.cluster import LocalCluster
from surge_cluster.images import BUSYBOX_IMAGE
from surge_cluster.netplan import cluster_id
from surge_cluster.nodeconfig import NodePaths
from surge_cluster.nodepool import NODE_STATE_ROOT
from surge_cluster.testing import eventually, node_prerequisites
from surge_cluster.versions import bin_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _required() -> bool:
    return os.environ.get("SURGE_REQUIRE_E2E", "").lower() in ("1", "true", "yes")


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    missing = node_prerequisites()
    if missing:
        reason = f"real nodes need {', '.join(missing)} (make k8s)"
        if _required():
            pytest.fail(f"SURGE_REQUIRE_E2E is set but {reason}")
        pytest.skip(reason)
    cluster = LocalCluster(tmp_path / "c", binaries=bin_dir(), owner_pid=os.getpid())
    try:
        yield cluster
    finally:
        cluster.down()


def _ruleset() -> str:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    out = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, env=env)
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, env=env)
    return out.stdout + saved.stdout


def test_down_leaves_no_process_mount_netns_link_rule_cgroup_or_state(
    own_cluster: LocalCluster,
) -> None:
    info = own_cluster.up()
    ident = cluster_id(own_cluster.root)
    api: Any = config.new_client_from_config(config_file=str(info.kubeconfig))  # type: ignore[no-untyped-call]
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    for region in ("east", "west"):  # a secret volume (a tmpfs mount), a provisioned volume
        core.create_namespaced_persistent_volume_claim(  # (a bind mount) and a pod on each node
            "default",
            {
                "metadata": {"name": f"v-{region}"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "16Mi"}},
                },
            },
        )
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": f"p-{region}"},
                "spec": {
                    "nodeSelector": {"topology.kubernetes.io/region": region},
                    "containers": [
                        {
                            "name": "c",
                            "image": BUSYBOX_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"],
                            "volumeMounts": [
                                {"name": "s", "mountPath": "/s"},
                                {"name": "v", "mountPath": "/v"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "s", "secret": {"secretName": "s"}},
                        {"name": "v", "persistentVolumeClaim": {"claimName": f"v-{region}"}},
                    ],
                },
            },
        )
    eventually(
        "both pods Running",
        lambda: all(
            core.read_namespaced_pod(f"p-{r}", "default").status.phase == "Running"
            for r in ("east", "west")
        ),
        timeout=120,
    )
    volume_dirs = [
        NodePaths(NODE_STATE_ROOT / ident / node.metadata.name).volumes
        for node in core.list_node().items
    ]
    assert all(len(list(d.iterdir())) == 1 for d in volume_dirs), "one volume on each node"
    assert own_cluster.leftovers(), "a running cluster must show up in leftovers()"
    assert ident in _ruleset()

    own_cluster.down()

    assert own_cluster.leftovers() == []
    assert ident not in _ruleset()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(own_cluster.root) not in mounts
    assert not (NODE_STATE_ROOT / ident).exists()
    assert not any(d.exists() for d in volume_dirs)
