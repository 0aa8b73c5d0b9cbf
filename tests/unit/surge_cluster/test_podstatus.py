from __future__ import annotations

import datetime as dt
from typing import Any

from surge_cluster.podstatus import (
    ContainerFacts,
    Terminated,
    carry_transition_times,
    pod_phase,
    pod_status,
    status_key,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(seconds=5)


def running(ready: bool) -> ContainerFacts:
    return ContainerFacts("c", "img", pid=42, started_at=T0, ready=ready, restart_count=0)


def status(*containers: ContainerFacts, now: dt.datetime = T0) -> dict[str, Any]:
    return pod_status(
        containers,
        restart_policy="Always",
        pod_ip="127.1.0.2",
        host_ip="127.0.0.1",
        start_time=T0,
        now=now,
    )


def test_a_ready_process_makes_a_ready_running_pod_with_its_pid() -> None:
    got = status(running(ready=True))

    assert got["phase"] == "Running"
    assert {c["type"]: c["status"] for c in got["conditions"]}["Ready"] == "True"
    assert got["containerStatuses"][0]["containerID"] == "surge-local://42"


def test_an_unready_process_makes_the_pod_not_ready() -> None:
    got = status(running(ready=False))

    assert {c["type"]: c["status"] for c in got["conditions"]}["Ready"] == "False"


def test_phase_follows_exits_and_restart_policy() -> None:
    done = Terminated(0, T0, T1)
    failed = Terminated(1, T0, T1)
    exited = ContainerFacts("c", "i", None, None, False, 0, terminated=done)
    crashed = ContainerFacts("c", "i", None, None, False, 0, terminated=failed)

    assert pod_phase([exited], "Never") == "Succeeded"
    assert pod_phase([crashed], "OnFailure") == "Failed"
    assert pod_phase([exited], "Always") == "Pending"
    assert pod_phase([running(True)], "Never") == "Running"


def test_transition_times_only_move_when_the_status_changes() -> None:
    first = status(running(ready=False), now=T0)
    same = carry_transition_times(first, status(running(ready=False), now=T1))
    flipped = carry_transition_times(first, status(running(ready=True), now=T1))

    assert status_key(first) == status_key(same)
    assert same["conditions"] == first["conditions"]
    ready = {c["type"]: c["lastTransitionTime"] for c in flipped["conditions"]}
    assert ready["Ready"] == "2026-01-01T00:00:05Z"
    assert ready["Initialized"] == "2026-01-01T00:00:00Z"
