"""Dynamic node-local volumes for the local cluster, as kind's local-path provisioner gives
kind: the `standard` StorageClass (the default) and the pure planning of its provisioner
(claims and volumes in, what to create and what to remove out; no I/O, no clock).

How a volume comes to be (`volumeBindingMode: WaitForFirstConsumer`):

1. A PVC of class `standard` stays Pending until a pod that uses it is scheduled; the
   scheduler then writes the chosen node into the claim's `volume.kubernetes.io/selected-node`.
2. The provisioner (provisioner.py) plans, for such a claim, a directory under that node's
   state directory and a `local` PersistentVolume with nodeAffinity to the node and a
   claimRef to the claim; it creates the directory, then the PV. The PV controller binds the
   two, and the pod starts on that node with the directory bind-mounted.
3. When the claim is deleted the PV controller marks the PV Released; with reclaim policy
   Delete the provisioner removes the directory, then the PV.

The PV is named `pvc-<claim uid>` (as external provisioners do), so planning twice for the
same claim never makes two volumes. Directories are created root-owned 0755: non-root pods
write through `securityContext.fsGroup`, which the kubelet applies to `local` volumes as to
cloud disks (a pod without fsGroup fails here as it would on a root-owned block volume,
rather than working by accident on a world-writable directory).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STORAGE_CLASS = "standard"
PROVISIONER = "surge.local/local-path"
RECLAIM_POLICY = "Delete"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def storage_class() -> dict[str, Any]:
    """The default StorageClass, named and shaped like kind's."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": RECLAIM_POLICY,
        "volumeBindingMode": "WaitForFirstConsumer",
    }


@dataclass(frozen=True)
class Claim:
    namespace: str
    name: str
    uid: str
    storage_class: str
    selected_node: str
    phase: str
    volume_name: str
    access_modes: tuple[str, ...]
    request: str
    volume_mode: str
    deleting: bool


@dataclass(frozen=True)
class Volume:
    name: str
    provisioned_by: str
    phase: str
    reclaim_policy: str
    path: str
    deleting: bool


@dataclass(frozen=True)
class NewVolume:
    """A directory to create, then the PersistentVolume that points at it."""

    directory: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True)
class ReleasedVolume:
    """A directory to remove, then the PersistentVolume to delete."""

    name: str
    directory: Path


@dataclass(frozen=True)
class Plan:
    create: tuple[NewVolume, ...] = ()
    delete: tuple[ReleasedVolume, ...] = ()


# ----------------------------------------------------------------- wire -> values
def claim_from(obj: Mapping[str, Any]) -> Claim:
    """A PersistentVolumeClaim as the API serves it (camelCase JSON) -> Claim."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    requests = (spec.get("resources") or {}).get("requests") or {}
    return Claim(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        storage_class=str(spec.get("storageClassName") or ""),
        selected_node=str((meta.get("annotations") or {}).get(SELECTED_NODE, "")),
        phase=str((obj.get("status") or {}).get("phase") or "Pending"),
        volume_name=str(spec.get("volumeName") or ""),
        access_modes=tuple(str(m) for m in spec.get("accessModes") or ()),
        request=str(requests.get("storage") or ""),
        volume_mode=str(spec.get("volumeMode") or "Filesystem"),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def volume_from(obj: Mapping[str, Any]) -> Volume:
    """A PersistentVolume as the API serves it -> Volume."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    return Volume(
        name=str(meta.get("name", "")),
        provisioned_by=str((meta.get("annotations") or {}).get(PROVISIONED_BY, "")),
        phase=str((obj.get("status") or {}).get("phase") or ""),
        reclaim_policy=str(spec.get("persistentVolumeReclaimPolicy") or ""),
        path=str((spec.get("local") or {}).get("path") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
    )


# ----------------------------------------------------------------- planning
def volume_name(claim: Claim) -> str:
    return f"pvc-{claim.uid}"


def volume_directory(claim: Claim, node_dir: Path) -> Path:
    """One directory per claim, named so a person can tell whose it is."""
    return node_dir / f"{volume_name(claim)}_{claim.namespace}_{claim.name}"


def wants_volume(claim: Claim, node_dirs: Mapping[str, Path]) -> bool:
    """A pending claim of our class whose pod was scheduled onto one of our nodes.
    Block-mode claims are left alone: a directory is not a block device."""
    return (
        claim.storage_class == STORAGE_CLASS
        and claim.phase == "Pending"
        and not claim.volume_name
        and not claim.deleting
        and claim.selected_node in node_dirs
        and claim.volume_mode == "Filesystem"
        and bool(claim.request)
    )


def persistent_volume(claim: Claim, node: str, directory: Path) -> dict[str, Any]:
    """A `local` PV on `node`, pre-bound to the claim (the PV controller finishes binding)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": claim.request},
            "accessModes": list(claim.access_modes or ("ReadWriteOnce",)),
            "persistentVolumeReclaimPolicy": RECLAIM_POLICY,
            "storageClassName": claim.storage_class,
            "volumeMode": "Filesystem",
            "local": {"path": str(directory)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}
                            ]
                        }
                    ]
                }
            },
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim.namespace,
                "name": claim.name,
                "uid": claim.uid,
            },
        },
    }


def releasable(volume: Volume, node_dirs: Mapping[str, Path]) -> bool:
    """Ours, released, reclaim Delete, and its path directly inside one of our node
    directories: a PV that merely carries our annotation can never make us remove any
    other path on the machine."""
    path = Path(volume.path)
    return (
        volume.provisioned_by == PROVISIONER
        and volume.phase == "Released"
        and volume.reclaim_policy == RECLAIM_POLICY
        and not volume.deleting
        and path.is_absolute()
        and ".." not in path.parts
        and path.parent in set(node_dirs.values())
    )


def plan(claims: Iterable[Claim], volumes: Sequence[Volume], node_dirs: Mapping[str, Path]) -> Plan:
    """What to provision and what to reclaim, given every claim and volume in the cluster
    and each of our nodes' volume directory."""
    existing = {v.name for v in volumes}
    create = tuple(
        NewVolume(directory, persistent_volume(claim, claim.selected_node, directory))
        for claim in claims
        if wants_volume(claim, node_dirs) and volume_name(claim) not in existing
        for directory in (volume_directory(claim, node_dirs[claim.selected_node]),)
    )
    delete = tuple(
        ReleasedVolume(v.name, Path(v.path)) for v in volumes if releasable(v, node_dirs)
    )
    return Plan(create, delete)
