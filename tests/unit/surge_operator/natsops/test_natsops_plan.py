"""The pure next-step decision for a managed region: safety first, one step at a time."""

from __future__ import annotations

from dataclasses import replace

import pytest

from surge_operator.natsops.plan import (
    PodView,
    RegionObservation,
    ServerView,
    StreamView,
    next_step,
)
from surge_operator.natsops.views import jetstream_from_jsz, servers_from_varz


def pods(n: int, revision: str = "r2", ready: bool = True) -> list[PodView]:
    return [PodView(f"nats-{i}", revision, ready) for i in range(n)]


def servers(n: int, config: str | None = "c2") -> list[ServerView]:
    return [ServerView(f"nats-{i}", f"ID{i}", "sha256:x", config) for i in range(n)]


HEALTHY = [StreamView("S", 3, "nats-1", 3), StreamView("KV_S-routing", 3, "nats-0", 3)]


def obs(**kw: object) -> RegionObservation:
    base = RegionObservation(
        desired_servers=3,
        statefulset_replicas=3,
        update_revision="r2",
        pods=pods(3),
        servers=servers(3),
        streams=HEALTHY,
        meta_leader="nats-0",
        meta_peers=["nats-0", "nats-1", "nats-2"],
        config_hash="c2",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_nothing_to_do_when_every_server_runs_the_current_revision_and_config() -> None:
    assert next_step(obs()).kind == "Idle"


def test_old_revision_restarts_one_pod_at_a_time_meta_leader_last() -> None:
    step = next_step(obs(pods=pods(3, "r1")))
    assert (step.kind, step.targets) == ("RestartPod", ("nats-2",))
    order = []
    current = pods(3, "r1")
    for _ in range(3):
        step = next_step(obs(pods=current))
        order.append(step.targets[0])
        current = [replace(p, revision="r2") if p.name == step.targets[0] else p for p in current]
    assert order == ["nats-2", "nats-1", "nats-0"]  # nats-0 leads the meta group


@pytest.mark.parametrize(
    ("streams", "words"),
    [
        ([StreamView("S", 3, "nats-1", 2, lag=40)], "stream S: 2 of 3 replicas current (lag 40)"),
        ([StreamView("S", 3, None, 2)], "stream S has no leader"),
    ],
)
def test_a_stream_not_current_means_wait_before_touching_anything(
    streams: list[StreamView], words: str
) -> None:
    step = next_step(obs(pods=pods(3, "r1"), streams=streams))
    assert (step.kind, step.reason) == ("Wait", words)


def test_a_server_not_ready_means_wait() -> None:
    step = next_step(obs(pods=[*pods(2, "r1"), PodView("nats-2", "r2", False)]))
    assert step == replace(step, kind="Wait", reason="servers not ready: nats-2")


def test_scaling_below_the_widest_stream_is_refused_with_the_reason() -> None:
    step = next_step(obs(desired_servers=1))
    assert step.kind == "Refuse"
    assert "1 servers cannot hold stream KV_S-routing, S with 3 replicas" in step.reason


def test_scale_out_at_once_even_while_streams_catch_up() -> None:
    step = next_step(obs(desired_servers=5, streams=[StreamView("S", 3, "nats-1", 2)]))
    assert (step.kind, step.replicas) == ("ScaleTo", 5)


def test_scale_in_one_server_at_then_remove_its_peer_then_the_next() -> None:
    five = dict(statefulset_replicas=5, pods=pods(5), servers=servers(5))
    step = next_step(obs(desired_servers=3, **five, meta_peers=[f"nats-{i}" for i in range(5)]))
    assert (step.kind, step.replicas) == ("ScaleTo", 4)
    after = dict(statefulset_replicas=4, pods=pods(4), servers=servers(4))
    step = next_step(obs(desired_servers=3, **after, meta_peers=[f"nats-{i}" for i in range(5)]))
    assert (step.kind, step.targets) == ("RemovePeer", ("nats-4",))
    step = next_step(obs(desired_servers=3, **after, meta_peers=[f"nats-{i}" for i in range(4)]))
    assert (step.kind, step.replicas) == ("ScaleTo", 3)


def test_scale_in_waits_while_a_stream_is_moving() -> None:
    moving = [StreamView("S", 3, "nats-1", 2)]
    step = next_step(obs(desired_servers=3, statefulset_replicas=4, pods=pods(4), streams=moving))
    assert step.kind == "Wait"


def test_changed_configuration_is_reloaded_and_refusals_become_restarts() -> None:
    step = next_step(obs(servers=servers(3, config="c1")))
    assert (step.kind, step.targets) == ("Reload", ("nats-0", "nats-1", "nats-2"))
    refused = frozenset({"nats-0", "nats-1", "nats-2"})
    step = next_step(obs(servers=servers(3, config="c1"), reload_refused=refused))
    assert (step.kind, step.targets) == ("RestartPod", ("nats-2",))


def test_a_reload_is_done_when_the_server_reports_the_rendered_configuration() -> None:
    # The kubelet refreshed nats-1's Secret first: only the others are reloaded again.
    running = [replace(s, config_hash="c2") if s.name == "nats-1" else s for s in servers(3, "c1")]
    step = next_step(obs(servers=running))
    assert (step.kind, step.targets) == ("Reload", ("nats-0", "nats-2"))
    assert next_step(obs(servers=servers(3, config="c2"))).kind == "Idle"


def test_servers_without_a_config_tag_are_reloaded_onto_the_tagged_configuration() -> None:
    step = next_step(obs(servers=servers(3, config=None)))
    assert (step.kind, step.targets) == ("Reload", ("nats-0", "nats-1", "nats-2"))


def test_nothing_is_reloaded_before_the_rendered_configuration_is_known() -> None:
    assert next_step(obs(servers=servers(3, config="c1"), config_hash=None)).kind == "Idle"


JSZ = [
    {
        "server": {"name": name},
        "data": {
            "meta_cluster": {
                "leader": "nats-0",
                "replicas": [{"name": "nats-1"}, {"name": "nats-2"}],
            },
            "account_details": [
                {
                    "stream_detail": [
                        {
                            "name": "S",
                            "cluster": {
                                "leader": "nats-1",
                                "replicas": [
                                    {"name": a, "current": cur, "lag": lag}
                                    for a, cur, lag in replicas
                                ],
                            },
                        }
                    ]
                }
            ],
        },
    }
    for name, replicas in [
        ("nats-0", [("nats-1", False, 0), ("nats-2", False, 0)]),  # stale follower view
        ("nats-1", [("nats-0", True, 0), ("nats-2", False, 12)]),  # the leader's view
        ("nats-2", [("nats-0", False, 0), ("nats-1", False, 0)]),
    ]
]


def test_stream_health_comes_from_the_stream_leader_only() -> None:
    view = jetstream_from_jsz(JSZ)
    assert view.streams == [StreamView("S", 3, "nats-1", current=2, lag=12)]
    assert view.meta_leader == "nats-0"
    assert view.meta_peers == ["nats-0", "nats-1", "nats-2"]


def test_servers_from_varz_answers_with_the_config_tag() -> None:
    data = {"server_name": "nats-1", "server_id": "B", "config_digest": "sha256:b"}
    tagged = {**data, "tags": ["zone:a", "surge.dev/config:0123abcd"]}
    assert servers_from_varz([{"data": data}]) == [ServerView("nats-1", "B", "sha256:b")]
    assert servers_from_varz([{"data": tagged}]) == [
        ServerView("nats-1", "B", "sha256:b", "0123abcd")
    ]
