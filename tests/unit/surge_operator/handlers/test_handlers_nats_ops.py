"""The managed-NATS operations tick against fakes: one safe step, and the condition."""

from __future__ import annotations

from typing import Any

from handler_fakes import REF, FakeJetStream, FakeKube, make_deps

from surge_operator.api import ConditionStatus, ConditionType, parse_spec
from surge_operator.handlers.nats_ops import nats_tick
from surge_operator.handlers.reconcile import build_context, reconcile
from surge_operator.jetstream import NatsAuth
from surge_operator.natsops.plan import ServerView, StreamView
from surge_operator.natsops.views import JetStreamView
from surge_operator.status import get_condition

SPEC: dict[str, Any] = {"regions": [{"name": "east", "role": "primary", "nats": {"managed": {}}}]}
SELECTOR = {
    "app.kubernetes.io/name": "surge",
    "app.kubernetes.io/instance": "support",
    "app.kubernetes.io/component": "nats",
    "surge.dev/nats-region": "east",
}


class FakeAdmin:
    """Servers that report `running` as their config tag (None: the StatefulSet's)."""

    def __init__(
        self, streams: list[StreamView], refuse_reload: bool = False, running: str | None = None
    ) -> None:
        self.streams = streams
        self.refuse_reload = refuse_reload
        self.running: dict[str, str | None] = {f"ID{i}": running for i in range(3)}
        self.reloaded: list[str] = []
        self.removed: list[str] = []
        self.kube: FakeKube | None = None

    def rendered(self) -> str | None:
        assert self.kube is not None
        sts = self.kube.objects[("StatefulSet", REF.namespace, "support-nats-east")]
        return str(sts["metadata"]["annotations"]["surge.dev/nats-config-hash"])

    async def servers(self, url: str, auth: NatsAuth) -> list[ServerView]:
        assert auth.user == "system"
        return [
            ServerView(f"support-nats-east-{i}", f"ID{i}", "sha256:x", running or self.rendered())
            for i, running in enumerate(self.running.values())
        ]

    async def jetstream(self, url: str, auth: NatsAuth) -> JetStreamView:
        peers = [f"support-nats-east-{i}" for i in range(3)]
        return JetStreamView(self.streams, "support-nats-east-0", peers, {})

    async def reload(self, url: str, auth: NatsAuth, server_id: str) -> str | None:
        self.reloaded.append(server_id)
        return "config reload not supported for jetstream" if self.refuse_reload else None

    async def remove_peer(self, url: str, auth: NatsAuth, server_name: str) -> str | None:
        self.removed.append(server_name)
        return None


def add_pods(kube: FakeKube, revision: str) -> None:
    for i in range(3):
        name = f"support-nats-east-{i}"
        kube.objects[("Pod", REF.namespace, name)] = {
            "metadata": {
                "name": name,
                "labels": {**SELECTOR, "controller-revision-hash": revision},
            },
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }
    sts = kube.objects[("StatefulSet", REF.namespace, "support-nats-east")]
    sts["status"] = {"updateRevision": "rev-2"}


async def ready(admin: FakeAdmin, revision: str, spec: dict[str, Any] = SPEC) -> Any:
    kube = FakeKube()
    deps = make_deps(kube, FakeJetStream())
    deps.nats_admin = admin
    admin.kube = kube
    await reconcile(deps, REF, spec_raw=spec, generation=1, raw_status={})
    add_pods(kube, revision)
    cs = deps.registry.get(REF.uid)
    return kube, deps, cs


def condition(cs: Any) -> tuple[ConditionStatus, str, str]:
    cond = get_condition(cs.status.conditions, ConditionType.NATS_READY)
    assert cond is not None
    return cond.status, cond.reason, cond.message


HEALTHY = [StreamView("S", 3, "support-nats-east-1", 3)]


async def test_a_template_change_deletes_one_pod_per_pass_the_meta_leader_last() -> None:
    admin = FakeAdmin(HEALTHY)
    kube, deps, cs = await ready(admin, "rev-1")
    ctx = build_context(deps, REF, cs.spec, cs.status)
    await nats_tick(deps, cs, ctx)
    assert admin.reloaded == []  # every server runs the rendered configuration
    assert [r.name for r in kube.deleted if r.kind == "Pod"] == ["support-nats-east-2"]
    assert condition(cs)[:2] == (ConditionStatus.FALSE, "Changing")


async def test_new_servers_on_the_rendered_configuration_are_ready_at_once() -> None:
    admin = FakeAdmin(HEALTHY)
    _, deps, cs = await ready(admin, "rev-2")
    await nats_tick(deps, cs, build_context(deps, REF, cs.spec, cs.status))
    assert admin.reloaded == []
    assert condition(cs) == (ConditionStatus.TRUE, "AllServersCurrent", "every stream current")


async def test_stale_servers_are_reloaded_each_pass_until_they_report_the_new_config() -> None:
    # No clock: an operator restart or a Lease handover in between changes nothing.
    admin = FakeAdmin(HEALTHY, running="0ld")
    kube, deps, cs = await ready(admin, "rev-2")
    ctx = build_context(deps, REF, cs.spec, cs.status)
    for _ in range(2):  # the kubelet has not refreshed the mounted Secret yet
        await nats_tick(deps, cs, ctx)
        assert condition(cs)[2] == "east: configuration changed: reloading in place"
    assert admin.reloaded == ["ID0", "ID1", "ID2"] * 2
    admin.running = dict.fromkeys(admin.running, None)  # the reload read the new file
    await nats_tick(deps, cs, ctx)
    assert admin.reloaded == ["ID0", "ID1", "ID2"] * 2
    assert condition(cs)[:2] == (ConditionStatus.TRUE, "AllServersCurrent")
    assert [r for r in kube.deleted if r.kind == "Pod"] == []


async def test_nothing_is_touched_while_a_stream_is_behind() -> None:
    admin = FakeAdmin([StreamView("S", 3, "support-nats-east-1", 2, lag=9)])
    kube, deps, cs = await ready(admin, "rev-1")
    await nats_tick(deps, cs, build_context(deps, REF, cs.spec, cs.status))
    assert [r for r in kube.deleted if r.kind == "Pod"] == []
    assert "S: 2 of 3 replicas current (lag 9)" in condition(cs)[2]


async def test_a_new_configuration_is_reloaded_and_a_refused_reload_becomes_a_restart() -> None:
    admin = FakeAdmin(HEALTHY, refuse_reload=True, running="0ld")
    kube, deps, cs = await ready(admin, "rev-2")
    await nats_tick(deps, cs, build_context(deps, REF, cs.spec, cs.status))
    assert admin.reloaded == ["ID0", "ID1", "ID2"]
    assert [r.name for r in kube.deleted if r.kind == "Pod"] == ["support-nats-east-2"]


async def test_scaling_below_a_streams_replicas_is_refused_with_a_condition() -> None:
    one = {"regions": [{"name": "east", "role": "primary", "nats": {"managed": {"servers": 1}}}]}
    admin = FakeAdmin(HEALTHY)
    kube, deps, cs = await ready(admin, "rev-2")
    cs.spec = parse_spec(one)
    await nats_tick(deps, cs, build_context(deps, REF, cs.spec, cs.status))
    status, reason, message = condition(cs)
    assert (status, reason) == (ConditionStatus.FALSE, "ChangeRefused")
    assert "1 servers cannot hold stream S with 3 replicas" in message
    assert [r for r in kube.deleted if r.kind == "Pod"] == []


async def test_status_nats_reports_servers_leader_and_this_clusters_streams() -> None:
    streams = [
        StreamView("SURGE_TEAM-A_SUPPORT", 3, "support-nats-east-1", 3),
        StreamView("KV_SURGE_TEAM-A_SUPPORT-routing", 3, "support-nats-east-0", 2, lag=4),
        StreamView("SOMEONE_ELSE", 3, "support-nats-east-0", 3),
    ]
    _, deps, cs = await ready(FakeAdmin(streams), "rev-2")
    await nats_tick(deps, cs, build_context(deps, REF, cs.spec, cs.status))
    [east] = cs.status.nats
    assert (east.region, east.servers, east.servers_ready) == ("east", 3, 3)
    assert east.meta_leader == "support-nats-east-0"
    assert [(s.name, s.current, s.lag) for s in east.streams] == [
        ("SURGE_TEAM-A_SUPPORT", 3, 0),
        ("KV_SURGE_TEAM-A_SUPPORT-routing", 2, 4),
    ]
    assert east.step.startswith("Wait: stream KV_SURGE_TEAM-A_SUPPORT-routing: 2 of 3")
