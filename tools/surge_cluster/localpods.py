"""Which pods the pod runner runs as local processes (shared by kwok's stages and the runner).

A pod is run locally when it is bound to a kwok node and either carries the label
``surge.dev/run-local: "true"`` or its first container's command is a Surge entry point.
For those pods the runner, not kwok, owns the pod status and the final deletion, like a kubelet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RUN_LOCAL_LABEL = "surge.dev/run-local"
LOCAL_COMMANDS = ("surge-worker", "surge-gateway", "surge-operator")
CONTAINER_ID_SCHEME = "surge-local://"


def wants_local_run(pod: Mapping[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if labels.get(RUN_LOCAL_LABEL) == "true":
        return True
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        return False
    command = containers[0].get("command") or []
    # Exact match, as kwok's stage selector (kwokconfig.NOT_LOCAL) compares the same way.
    return bool(command) and str(command[0]) in LOCAL_COMMANDS
