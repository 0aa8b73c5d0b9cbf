from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from surge_cluster import addons, localpath
from surge_cluster.localpath import PROVISIONED_BY, PROVISIONER, SELECTED_NODE

EAST = Path("/var/lib/surge-cluster/abc123/surge-east-a/volumes")
WEST = Path("/var/lib/surge-cluster/abc123/surge-west-a/volumes")
NODE_DIRS = {"surge-east-a": EAST, "surge-west-a": WEST}


def pvc(
    name: str = "data",
    *,
    node: str | None = "surge-east-a",
    storage_class: str | None = "standard",
    phase: str = "Pending",
    volume_name: str | None = None,
    volume_mode: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "support", "name": name, "uid": f"uid-{name}"}
    if node:
        meta["annotations"] = {SELECTED_NODE: node}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T09:00:00Z"
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume_name:
        spec["volumeName"] = volume_name
    if volume_mode:
        spec["volumeMode"] = volume_mode
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def pv(
    name: str,
    path: Path | str,
    *,
    phase: str = "Released",
    policy: str = "Delete",
    by: str = PROVISIONER,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "annotations": {PROVISIONED_BY: by}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T09:00:00Z"
    return {
        "metadata": meta,
        "spec": {"persistentVolumeReclaimPolicy": policy, "local": {"path": str(path)}},
        "status": {"phase": phase},
    }


def plan_for(claims: list[dict[str, Any]], volumes: list[dict[str, Any]]) -> localpath.Plan:
    return localpath.plan(
        [localpath.claim_from(c) for c in claims],
        [localpath.volume_from(v) for v in volumes],
        NODE_DIRS,
    )


def test_storage_class_is_the_default_standard_class_waiting_for_its_first_consumer() -> None:
    sc = localpath.storage_class()

    assert sc["metadata"]["name"] == "standard"
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["reclaimPolicy"] == "Delete"
    assert sc["provisioner"] == PROVISIONER


def test_storage_addons_grant_the_provisioner_volumes_and_read_only_claims() -> None:
    objs = addons.storage()
    role = next(o for o in objs if o["kind"] == "ClusterRole")
    verbs = {r["resources"][0]: set(r["verbs"]) for r in role["rules"]}

    assert {"create", "delete"} <= verbs["persistentvolumes"]
    assert verbs["persistentvolumeclaims"] == {"get", "list", "watch"}
    assert [addons.collection_path(o) for o in objs][-1] == "/apis/storage.k8s.io/v1/storageclasses"


def test_a_scheduled_pending_claim_gets_a_directory_on_its_node_and_a_bound_local_volume() -> None:
    plan = plan_for([pvc(node="surge-west-a")], [])

    (new,) = plan.create
    spec = new.manifest["spec"]
    assert new.directory.parent == WEST
    assert new.name == "pvc-uid-data"
    assert spec["local"] == {"path": str(new.directory)}
    assert spec["capacity"] == {"storage": "1Gi"}
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["storageClassName"] == "standard"
    assert spec["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "support",
        "name": "data",
        "uid": "uid-data",
    }
    term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "kubernetes.io/hostname", "operator": "In", "values": ["surge-west-a"]}
    assert new.manifest["metadata"]["annotations"] == {PROVISIONED_BY: PROVISIONER}
    assert plan.delete == ()


def test_the_directory_names_the_claim_so_a_person_can_tell_whose_it_is() -> None:
    (new,) = plan_for([pvc("nats-data-0")], []).create

    assert new.directory == EAST / "pvc-uid-nats-data-0_support_nats-data-0"


@pytest.mark.parametrize(
    "claim",
    [
        pvc(node=None),  # no pod scheduled yet (WaitForFirstConsumer)
        pvc(node="kwok-east-a"),  # a node this provisioner does not serve
        pvc(storage_class="premium"),  # another class's provisioner
        pvc(storage_class=None),
        pvc(phase="Bound", volume_name="pvc-uid-data"),
        pvc(volume_name="pre-bound-by-hand"),
        pvc(deleting=True),
        pvc(volume_mode="Block"),  # a directory is not a block device
    ],
    ids=[
        "unscheduled",
        "foreign-node",
        "other-class",
        "no-class",
        "bound",
        "prebound",
        "deleting",
        "block",
    ],
)
def test_claims_that_are_not_ours_to_provision_are_left_alone(claim: dict[str, Any]) -> None:
    assert plan_for([claim], []).create == ()


def test_a_claim_whose_volume_already_exists_is_not_provisioned_twice() -> None:
    existing = pv("pvc-uid-data", EAST / "pvc-uid-data_support_data", phase="Available")

    assert plan_for([pvc()], [existing]).create == ()


def test_a_released_volume_of_ours_is_reclaimed_directory_then_volume() -> None:
    path = EAST / "pvc-uid-data_support_data"

    plan = plan_for([], [pv("pvc-uid-data", path)])

    assert plan.delete == (localpath.ReleasedVolume("pvc-uid-data", path),)
    assert plan.create == ()


@pytest.mark.parametrize(
    "volume",
    [
        pv("v", EAST / "x", phase="Bound"),
        pv("v", EAST / "x", phase="Available"),
        pv("v", EAST / "x", policy="Retain"),
        pv("v", EAST / "x", by="rancher.io/local-path"),
        pv("v", EAST / "x", deleting=True),
        pv("v", "/etc"),  # annotated as ours, but outside every node's volume directory
        pv("v", EAST),  # the node directory itself
        pv("v", EAST / "x" / "y"),  # not directly inside it
        pv("v", str(EAST / ".." / "volumes")),
        pv("v", "relative/x"),
    ],
    ids=[
        "bound",
        "available",
        "retain",
        "foreign",
        "deleting",
        "outside",
        "node-dir",
        "nested",
        "dotdot",
        "relative",
    ],
)
def test_volumes_that_are_not_ours_to_reclaim_are_never_removed(volume: dict[str, Any]) -> None:
    assert plan_for([], [volume]).delete == ()


def test_claims_and_volumes_parse_from_what_the_api_serves() -> None:
    claim = localpath.claim_from(pvc(node="surge-west-a", volume_mode="Filesystem"))
    volume = localpath.volume_from(pv("pvc-1", EAST / "d"))

    assert claim == localpath.Claim(
        namespace="support",
        name="data",
        uid="uid-data",
        storage_class="standard",
        selected_node="surge-west-a",
        phase="Pending",
        volume_name="",
        access_modes=("ReadWriteOnce",),
        request="1Gi",
        volume_mode="Filesystem",
        deleting=False,
    )
    assert volume == localpath.Volume(
        "pvc-1", PROVISIONER, "Released", "Delete", str(EAST / "d"), False
    )
    assert localpath.claim_from({}).phase == "Pending"
