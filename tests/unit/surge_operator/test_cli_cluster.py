"""The cluster commands: one exit-code contract (0 ok, 1 failure, 2 usage) for every
subcommand, the status view, and what failback / drain-region ask of the operator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from surge_operator import cluster_commands as cc
from surge_operator.cli import app
from surge_operator.cluster_view import ClusterView
from surge_operator.resources import ObjectRef

runner = CliRunner()

OBJ: dict[str, Any] = {
    "apiVersion": "surge.dev/v1alpha1",
    "kind": "MessagingCluster",
    "metadata": {"name": "support", "namespace": "team-a", "generation": 3},
    "spec": {
        "regions": [
            {"name": "east", "role": "primary", "nats": {"url": "nats://e:4222"}},
            {"name": "west", "role": "standby", "nats": {"url": "nats://w:4222"}},
        ]
    },
    "status": {
        "phase": "Running",
        "observedGeneration": 3,
        "replicas": 4,
        "readyReplicas": 3,
        "desiredReplicas": 5,
        "degradationLevel": 1,
        "activeRegion": "west",
        "mirrorLag": 12,
        "history": [
            {
                "time": f"2026-12-06T06:0{i}:00Z",
                "kind": "scale",
                "from": str(i),
                "to": str(i + 1),
                "reason": f"backlog {i}",
            }
            for i in range(8)
        ],
    },
}


class FakeKube:
    def __init__(self, obj: dict[str, Any] | None) -> None:
        self.obj = obj
        self.patches: list[dict[str, Any]] = []

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        return self.obj if kind == "MessagingCluster" else None

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.patches.append(patch)
        return {}

    async def delete(self, ref: ObjectRef) -> bool:
        return True


def test_status_view_shows_the_figures_and_the_newest_decisions_first() -> None:
    view = ClusterView.from_object(OBJ, decisions=3).as_dict()
    assert view["phase"] == "Running"
    assert view["replicas"] == {"current": 4, "ready": 3, "desired": 5}
    assert (view["degradationLevel"], view["activeRegion"], view["mirrorLag"]) == (1, "west", 12)
    assert [d["reason"] for d in view["decisions"]] == ["backlog 7", "backlog 6", "backlog 5"]
    assert view["reconciled"] is True


def test_status_view_of_a_fresh_cluster_has_no_figures_yet() -> None:
    view = ClusterView.from_object({**OBJ, "status": {}}).as_dict()
    assert view["phase"] is None
    assert view["activeRegion"] == "east"  # the primary until the operator says otherwise
    assert view["decisions"] == []


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "support", "--output", "xml"],
        ["failback"],
        ["failback", "support", "--timeout", "0"],
        ["drain-region", "support"],
        ["drain-region", "support", "east", "--bogus"],
        ["check-install"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["status", "support"],
        ["status", "support", "-o", "json"],
        ["failback", "support"],
        ["drain-region", "support", "east"],
        ["check-install", "--operator-namespace", "s", "--operator-deployment", "s", "-n", "s"],
    ],
)
def test_an_unreachable_api_server_is_a_failure_exit_1(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "error:" in result.output


def test_drain_region_refuses_an_unknown_region_as_usage() -> None:
    kube = FakeKube(OBJ)
    with pytest.raises(cc.UsageError, match="no region 'north'"):
        asyncio.run(cc.drain_region(kube, "team-a", "support", "north", undo=False, wait=False,
                                    deadline_s=1, progress=print))  # fmt: skip
    drained = {**OBJ, "spec": {**OBJ["spec"], "drainedRegions": ["west"]}}
    with pytest.raises(cc.UsageError, match="every region"):
        asyncio.run(cc.drain_region(FakeKube(drained), "team-a", "support", "east", undo=False,
                                    wait=False, deadline_s=1, progress=print))  # fmt: skip
    assert kube.patches == []


def test_drain_region_adds_and_undo_removes_the_region() -> None:
    kube = FakeKube(OBJ)
    asyncio.run(cc.drain_region(kube, "team-a", "support", "west", undo=False, wait=False,
                                deadline_s=1, progress=print))  # fmt: skip
    assert kube.patches == [{"spec": {"drainedRegions": ["west"]}}]
    kube = FakeKube({**OBJ, "spec": {**OBJ["spec"], "drainedRegions": ["west"]}})
    asyncio.run(cc.drain_region(kube, "team-a", "support", "west", undo=True, wait=False,
                                deadline_s=1, progress=print))  # fmt: skip
    assert kube.patches == [{"spec": {"drainedRegions": None}}]


def test_failback_requests_by_annotation_and_not_when_already_home() -> None:
    kube = FakeKube(OBJ)
    asyncio.run(cc.failback(kube, "team-a", "support", wait=False, deadline_s=1, progress=print))
    assert kube.patches == [{"metadata": {"annotations": {"surge.dev/failback": "requested"}}}]
    home = FakeKube({**OBJ, "status": {**OBJ["status"], "activeRegion": "east"}})
    asyncio.run(cc.failback(home, "team-a", "support", wait=False, deadline_s=1, progress=print))
    assert home.patches == []


def test_a_wait_that_never_settles_times_out_with_the_last_state() -> None:
    kube = FakeKube(OBJ)  # active stays west: the failback never happens
    with pytest.raises(cc.CommandError, match=r"timed out .* active region west"):
        asyncio.run(cc.failback(kube, "team-a", "support", wait=True, deadline_s=0.1,
                                progress=lambda _w: None))  # fmt: skip


def test_a_missing_cluster_is_a_command_error() -> None:
    with pytest.raises(cc.CommandError, match="team-a/support not found"):
        asyncio.run(cc.status(FakeKube(None), "team-a", "support", 5))


def test_the_failback_annotation_is_the_one_the_operator_reads() -> None:
    from surge_operator.handlers.failover import FAILBACK_ANNOTATION

    assert cc.FAILBACK_ANNOTATION == FAILBACK_ANNOTATION


def test_json_output_is_machine_readable() -> None:
    view = ClusterView.from_object(OBJ)
    assert json.loads(json.dumps(view.as_dict()))["name"] == "support"


def test_mirror_lag_is_the_worst_healthy_mirror() -> None:
    from surge_operator.failover.probe import RegionProbe, StreamView
    from surge_operator.handlers.failover import worst_mirror_lag
    from surge_operator.policy.failover import ProbeResult

    def probe(region: str, ok: bool, role: str, lag: int | None) -> RegionProbe:
        result = ProbeResult.success(region, 1.0) if ok else ProbeResult.failure(region, 1.0, "x")
        return RegionProbe(
            result=result,
            streams={"S": StreamView(role, mirror_lag=lag)},  # type: ignore[arg-type]
            main="S",
        )

    probes = {
        "east": probe("east", True, "source", None),
        "west": probe("west", True, "mirror", 7),
        "north": probe("north", True, "mirror", 40),
        "south": probe("south", False, "mirror", 900),
    }
    assert worst_mirror_lag(probes) == 40
    assert worst_mirror_lag({"east": probes["east"]}) is None


class InstallKube:
    """The API server and an operator in one: the throwaway gets a status for its
    generation (StreamReady as given) on its first read, and is gone `finalize_reads`
    reads after its deletion (None: never, a finalizer that never lets go)."""

    def __init__(self, *, stream_ready: bool, finalize_reads: int | None = 1) -> None:
        self.stream_ready, self.finalize_reads = stream_ready, finalize_reads
        self.obj: dict[str, Any] | None = None
        self.calls: list[str] = []
        self.reads_since_delete: int | None = None

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        if kind == "Deployment":
            return {"spec": {"replicas": 1}, "status": {"readyReplicas": 1}}
        if self.obj is None:
            return None
        if self.reads_since_delete is not None:
            self.reads_since_delete += 1
            if self.finalize_reads is not None and self.reads_since_delete > self.finalize_reads:
                self.obj = None
                return None
        condition = {
            "type": "StreamReady",
            "status": str(self.stream_ready),
            "reason": "R",
            "lastTransitionTime": "2026-12-06T06:00:00Z",
        }
        self.obj["status"] = {"observedGeneration": 1, "conditions": [condition]}
        return self.obj

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        self.obj = {**obj, "metadata": {**obj["metadata"], "generation": 1}}
        return self.obj

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append(f"patch {json.dumps(patch, sort_keys=True)}")
        return {}

    async def delete(self, ref: ObjectRef) -> bool:
        self.calls.append("delete")
        self.reads_since_delete = 0
        return True


CHECK = cc.InstallCheck("surge-system", "surge", "surge-system", "nats://nats:4222", 0.2)
RETAIN = 'patch {"spec": {"stream": {"deletionPolicy": "retain"}}}'


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cc, "POLL_SECONDS", 0.01)


@pytest.mark.usefixtures("fast_polls")
def test_check_install_retains_a_stream_that_never_existed_and_waits_for_the_finalizer() -> None:
    kube = InstallKube(stream_ready=False, finalize_reads=3)
    proven = asyncio.run(cc.check_install(kube, CHECK, lambda _w: None))
    assert kube.calls == ["create", RETAIN, "delete"]
    assert kube.obj is None
    assert proven[-1].endswith("finalized and gone")


@pytest.mark.usefixtures("fast_polls")
def test_check_install_deletes_a_stream_that_became_ready_with_the_cluster() -> None:
    kube = InstallKube(stream_ready=True)
    asyncio.run(cc.check_install(kube, CHECK, lambda _w: None))
    assert kube.calls == ["create", "delete"]
    assert kube.obj is None


@pytest.mark.usefixtures("fast_polls")
def test_check_install_fails_when_the_finalizer_never_lets_go() -> None:
    kube = InstallKube(stream_ready=False, finalize_reads=None)
    with pytest.raises(cc.CommandError, match=r"to be finalized: .* waiting for its finalizer"):
        asyncio.run(cc.check_install(kube, CHECK, lambda _w: None))
    assert kube.calls == ["create", RETAIN, "delete"]
