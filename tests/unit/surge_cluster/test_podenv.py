from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from surge_cluster.podenv import EnvError, PodAddresses, container_argv, container_env, expand

ADDRESSES = PodAddresses(pod_ip="127.1.0.7", host_ip="127.0.0.1")


class FakeLookup:
    def __init__(self) -> None:
        self.secrets = {("ns", "creds"): {"token": "s3cret"}}
        self.config_maps = {("ns", "settings"): {"LEVEL": "debug", "MODE": "fast"}}

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.secrets.get((namespace, name))

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.config_maps.get((namespace, name))


def pod(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "w-1", "namespace": "ns", "uid": "u1", "labels": {"app": "w"}},
        "spec": {"nodeName": "kwok-east-a", "containers": [container]},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-$(B)", "1-$(B)"),
        ("$$(A)", "$(A)"),
        ("cost: $5", "cost: $5"),
        ("$(A", "$(A"),
    ],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}) == expected


def test_env_resolves_values_refs_and_fields_in_kubelet_order() -> None:
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {
                "name": "LEVEL",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}},
            },
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "URL", "value": "http://$(IP):8080"},
        ],
    }

    env = container_env(pod(container), container, FakeLookup(), ADDRESSES, {"PATH": "/bin"})

    assert env == {
        "PATH": "/bin",
        "HOSTNAME": "w-1",
        "CFG_LEVEL": "debug",
        "CFG_MODE": "fast",
        "TOKEN": "s3cret",
        "LEVEL": "debug",
        "POD": "w-1",
        "NS": "ns",
        "IP": "127.1.0.7",
        "APP": "w",
        "URL": "http://127.1.0.7:8080",
    }


def test_missing_secret_is_an_error_unless_optional() -> None:
    ref = {"name": "nope", "key": "k"}
    required = {"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": ref}}]}
    optional_ref = {"secretKeyRef": {**ref, "optional": True}}
    optional = {"name": "c", "env": [{"name": "X", "valueFrom": optional_ref}]}

    with pytest.raises(EnvError, match='Secret "nope" not found'):
        container_env(pod(required), required, FakeLookup(), ADDRESSES, {})
    assert "X" not in container_env(pod(optional), optional, FakeLookup(), ADDRESSES, {})


def test_argv_is_command_plus_args_expanded() -> None:
    container = {"name": "c", "command": ["surge-worker"], "args": ["--bind", "$(IP)"]}

    assert container_argv(container, {"IP": "127.1.0.7"}) == ["surge-worker", "--bind", "127.1.0.7"]


def test_a_container_without_command_cannot_run_locally() -> None:
    with pytest.raises(EnvError, match="no command"):
        container_argv({"name": "c", "image": "nginx"}, {})
