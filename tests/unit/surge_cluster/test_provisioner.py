"""The provisioner's edge against a small fake of the four CoreV1Api calls it makes: the
directory exists before its PV, and a released volume's directory goes before its PV."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from surge_cluster import localpath
from surge_cluster.provisioner import Provisioner, parse_node_dir


@dataclass
class Items:
    items: list[dict[str, Any]]


@dataclass
class FakeCore:
    claims: list[dict[str, Any]] = field(default_factory=list)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    conflict: bool = False

    def list_persistent_volume_claim_for_all_namespaces(self) -> Items:
        return Items(self.claims)

    def list_persistent_volume(self) -> Items:
        return Items(list(self.volumes.values()))

    def create_persistent_volume(self, body: dict[str, Any]) -> None:
        path = Path(body["spec"]["local"]["path"])
        self.calls.append(f"create {body['metadata']['name']} dir={path.is_dir()}")
        if self.conflict:
            raise ApiException(status=409)
        self.volumes[body["metadata"]["name"]] = {**body, "status": {"phase": "Bound"}}

    def delete_persistent_volume(self, name: str) -> None:
        path = Path(self.volumes[name]["spec"]["local"]["path"])
        self.calls.append(f"delete {name} dir={path.exists()}")
        del self.volumes[name]


def claim(node: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "data",
            "uid": "u1",
            "annotations": {localpath.SELECTED_NODE: node},
        },
        "spec": {
            "storageClassName": "standard",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
        "status": {"phase": "Pending"},
    }


def test_a_claim_gets_its_directory_before_its_volume_and_loses_it_before_the_volume(
    tmp_path: Path,
) -> None:
    core = FakeCore(claims=[claim("east")])
    provisioner = Provisioner(core, {"east": tmp_path / "east" / "volumes"})

    provisioner.reconcile()
    directory = tmp_path / "east" / "volumes" / "pvc-u1_ns_data"
    (directory / "file").write_text("kept until the claim goes")
    core.claims = []
    core.volumes["pvc-u1"]["status"]["phase"] = "Released"  # what the PV controller does
    provisioner.reconcile()

    assert core.calls == ["create pvc-u1 dir=True", "delete pvc-u1 dir=False"]
    assert not directory.exists()
    assert core.volumes == {}


def test_a_volume_made_by_an_earlier_pass_is_not_an_error(tmp_path: Path) -> None:
    core = FakeCore(claims=[claim("east")], conflict=True)

    plan = Provisioner(core, {"east": tmp_path}).reconcile()

    assert [v.name for v in plan.create] == ["pvc-u1"]


def test_claims_for_other_nodes_are_left_alone(tmp_path: Path) -> None:
    core = FakeCore(claims=[claim("elsewhere")])

    Provisioner(core, {"east": tmp_path}).reconcile()

    assert core.calls == []
    assert list(tmp_path.iterdir()) == []


def test_node_dirs_are_node_equals_absolute_path() -> None:
    assert parse_node_dir("east=/var/lib/x") == ("east", Path("/var/lib/x"))
    for bad in ("east", "=/x", "east=relative"):
        with pytest.raises(argparse.ArgumentTypeError, match="NODE=/absolute/dir"):
            parse_node_dir(bad)
