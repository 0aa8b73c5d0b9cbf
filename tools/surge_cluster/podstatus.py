"""Pod status the pod runner reports for a pod it runs (pure: runtime facts in, status out)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from surge_cluster.localpods import CONTAINER_ID_SCHEME


def rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    started_at: dt.datetime
    finished_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "exitCode": self.exit_code,
            "reason": "Completed" if self.exit_code == 0 else "Error",
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(self.finished_at),
        }


@dataclass(frozen=True)
class ContainerFacts:
    """What the runner knows about one container right now."""

    name: str
    image: str
    pid: int | None
    started_at: dt.datetime | None
    ready: bool
    restart_count: int
    waiting_reason: str | None = None
    waiting_message: str | None = None
    last_terminated: Terminated | None = None
    terminated: Terminated | None = None


def container_status(facts: ContainerFacts) -> dict[str, Any]:
    state: dict[str, Any]
    if facts.pid is not None and facts.started_at is not None:
        state = {"running": {"startedAt": rfc3339(facts.started_at)}}
    elif facts.terminated is not None:
        state = {"terminated": facts.terminated.to_json()}
    else:
        waiting: dict[str, Any] = {"reason": facts.waiting_reason or "ContainerCreating"}
        if facts.waiting_message:
            waiting["message"] = facts.waiting_message
        state = {"waiting": waiting}
    status: dict[str, Any] = {
        "name": facts.name,
        "image": facts.image,
        "imageID": "",
        "ready": facts.ready,
        "started": facts.pid is not None,
        "restartCount": facts.restart_count,
        "state": state,
        "lastState": (
            {"terminated": facts.last_terminated.to_json()} if facts.last_terminated else {}
        ),
    }
    if facts.pid is not None:
        status["containerID"] = f"{CONTAINER_ID_SCHEME}{facts.pid}"
    return status


def pod_phase(containers: Sequence[ContainerFacts], restart_policy: str) -> str:
    if any(c.pid is not None for c in containers):
        return "Running"
    finished = [c.terminated for c in containers]
    if containers and all(t is not None for t in finished) and restart_policy != "Always":
        ok = all(t is not None and t.exit_code == 0 for t in finished)
        return "Succeeded" if ok else "Failed"
    return "Pending"


def _condition(kind: str, ok: bool, now: str, reason: str | None = None) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if not ok and reason:
        cond["reason"] = reason
    return cond


def pod_status(
    containers: Sequence[ContainerFacts],
    *,
    restart_policy: str,
    pod_ip: str,
    host_ip: str,
    start_time: dt.datetime,
    now: dt.datetime,
) -> dict[str, Any]:
    """The status subresource body (conditions merge by type; transition times are `now`,
    callers only patch when something other than the times changed)."""
    all_ready = bool(containers) and all(c.ready for c in containers)
    stamp = rfc3339(now)
    reason = None if all_ready else "ContainersNotReady"
    return {
        "phase": pod_phase(containers, restart_policy),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": rfc3339(start_time),
        "conditions": [
            _condition("PodReadyToStartContainers", True, stamp),
            _condition("Initialized", True, stamp),
            _condition("ContainersReady", all_ready, stamp, reason),
            _condition("Ready", all_ready, stamp, reason),
        ],
        "containerStatuses": [container_status(c) for c in containers],
    }


def status_key(status: dict[str, Any]) -> tuple[Any, ...]:
    """What must change for a new patch to be worth sending (ignores transition times)."""
    return (
        status["phase"],
        status["podIP"],
        tuple((c["type"], c["status"]) for c in status["conditions"]),
        tuple(
            (
                c["name"],
                c["ready"],
                c["restartCount"],
                c.get("containerID"),
                next(iter(c["state"])),
                str(c["state"]),
            )
            for c in status["containerStatuses"]
        ),
    )


def carry_transition_times(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Keep a condition's lastTransitionTime while its status does not change."""
    if not old:
        return new
    previous = {c["type"]: c for c in old.get("conditions") or []}
    for cond in new["conditions"]:
        before = previous.get(cond["type"])
        if before and before.get("status") == cond["status"]:
            cond["lastTransitionTime"] = before.get("lastTransitionTime")
    return new
