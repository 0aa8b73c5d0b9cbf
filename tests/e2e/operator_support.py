"""Helpers for the operator's e2e tests. The operator as a real process, MessagingCluster
CRUD, the replica log and the flood live in the package (surge_operator.chaos.operator_host,
shared with `surge chaos`'s control-plane scenarios); here they are re-exported, with
`eventually` and `install_crd` failing the test (pytest.fail) instead of raising."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from surge_cluster.testing import KubeCluster
from surge_operator.chaos import operator_host
from surge_operator.chaos.operator_host import (
    Clusters,
    OperatorProcess,
    Publisher,
    ReplicaLog,
    WaitTimeoutError,
    manifest,
    publish_messages,
)

ROOT = Path(__file__).resolve().parents[2]
CRD = operator_host.CRD
GROUP, VERSION, PLURAL = "surge.dev", "v1alpha1", "messagingclusters"

__all__ = [
    "CRD",
    "GROUP",
    "PLURAL",
    "ROOT",
    "VERSION",
    "Clusters",
    "OperatorProcess",
    "Publisher",
    "ReplicaLog",
    "eventually",
    "install_crd",
    "manifest",
    "publish_messages",
]


def eventually(
    what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.25
) -> Any:
    try:
        return operator_host.wait_for(what, check, timeout, every)
    except WaitTimeoutError as exc:
        pytest.fail(str(exc))


def install_crd(cluster: KubeCluster) -> None:
    try:
        operator_host.install_crd(cluster)
    except WaitTimeoutError as exc:
        pytest.fail(str(exc))
