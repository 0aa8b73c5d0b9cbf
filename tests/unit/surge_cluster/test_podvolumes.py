from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from surge_cluster.podenv import EnvError
from surge_cluster.podvolumes import materialize, rewrite, volume_files


class FakeLookup:
    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return {"tokens": '{"t": ["x"]}', "other": "o"} if name == "tenants" else None

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return {"rules.json": "[]"} if name == "rules" else None


def test_secret_items_pick_and_rename_keys() -> None:
    volume = {
        "name": "v",
        "secret": {"secretName": "tenants", "items": [{"key": "tokens", "path": "t.json"}]},
    }

    assert volume_files(volume, "ns", FakeLookup()) == {"t.json": '{"t": ["x"]}'}


def test_missing_source_fails_unless_optional() -> None:
    with pytest.raises(EnvError, match='Secret "nope"'):
        volume_files({"name": "v", "secret": {"secretName": "nope"}}, "ns", FakeLookup())
    optional = {"name": "v", "secret": {"secretName": "nope", "optional": True}}
    assert volume_files(optional, "ns", FakeLookup()) == {}


def test_mounts_are_written_and_container_paths_rewritten(tmp_path: Path) -> None:
    pod = {
        "metadata": {"namespace": "ns"},
        "spec": {
            "volumes": [
                {"name": "tokens", "secret": {"secretName": "tenants"}},
                {"name": "rules", "configMap": {"name": "rules"}},
                {"name": "tmp", "emptyDir": {}},
            ]
        },
    }
    container = {
        "volumeMounts": [
            {"name": "tokens", "mountPath": "/etc/surge/tokens"},
            {"name": "rules", "mountPath": "/etc/surge/rules.json", "subPath": "rules.json"},
            {"name": "tmp", "mountPath": "/tmp"},
        ]
    }

    mounts = materialize(pod, container, FakeLookup(), tmp_path)

    tokens = rewrite("/etc/surge/tokens/tokens", mounts)
    assert Path(tokens).read_text() == '{"t": ["x"]}'
    assert Path(rewrite("/etc/surge/rules.json", mounts)).read_text() == "[]"
    assert rewrite("/tmp/x", mounts) == str(tmp_path / "tmp" / "x")
    assert rewrite("/etc/surge/tokensX", mounts) == "/etc/surge/tokensX"
