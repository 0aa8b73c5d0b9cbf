"""Managed NATS on real nodes (issue 10): a two-region MessagingCluster whose JetStream
clusters the operator runs, messages through the gateway, kill -9 of one server of three
under load (nothing acknowledged is lost, consumption goes on), the servers scaled
3 -> 5 -> 3 (every stream current, every server on the new configuration) and a pod
template change rolled under load (nothing lost; the longest stretch without an
acknowledgement is the unavailability, printed).

One release and one MessagingCluster for the module (the servers take minutes to come up on
a shared machine; each test leaves three current servers behind, which the next starts
from); the figures are printed, the invariants asserted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster.managed_support import (
    MC,
    acked_so_far,
    condition,
    create,
    fresh_namespace,
    kill_9,
    nats_pods,
    probe,
    region_status,
    released,
    result_of,
    servers_ready,
    start_load,
)
from tests.e2e.cluster.support import RELEASE, RELEASE_NS, describe, kube_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def release(node_cluster: KubeCluster) -> Iterator[KubeCluster]:
    yield released(node_cluster)
    node_cluster.helm("uninstall", RELEASE, "--namespace", RELEASE_NS, check=False)


@pytest.fixture(scope="module")
def managed_ns(release: KubeCluster) -> Iterator[str]:
    for ns in fresh_namespace(release):
        create(release, ns, east_servers=3)
        yield ns


@pytest.mark.timeout(1200)
def test_a_two_region_cluster_with_managed_nats_takes_messages_through_the_gateway(
    release: KubeCluster, managed_ns: str
) -> None:
    for region, count in (("east", 3), ("west", 1)):
        wait_for(
            f"{region}: {count} servers ready with a meta leader",
            lambda r=region, c=count: servers_ready(release, managed_ns, r, c),  # type: ignore[misc]
            timeout=300,
            diagnose=lambda: describe(release, managed_ns),
        )
        claims = release.kubectl(
            "get", "pvc", "-n", managed_ns, "-o", "jsonpath={.items[*].status.phase}"
        ).stdout.split()
        assert claims, "managed servers keep JetStream on PersistentVolumeClaims"
        assert set(claims) == {"Bound"}, claims
    # Servers that started on the rendered configuration are current at once (no reload).
    wait_for(
        "NatsReady: every server on the rendered configuration, every stream current",
        lambda: condition(release, managed_ns, "NatsReady"),
        timeout=180,
        diagnose=lambda: describe(release, managed_ns),
    )
    east = region_status(release, managed_ns, "east")
    print(f"\neast: {east}")
    # West runs one server: its mirrors hold one replica each, over the leafnode.
    wait_for(
        "west: every mirror current",
        lambda: _streams_current(release, managed_ns, "west"),
        timeout=180,
        diagnose=lambda: describe(release, managed_ns),
    )
    print(f"west: {region_status(release, managed_ns, 'west')['streams']}")
    with ThreadPoolExecutor(1) as pool:
        result = result_of(start_load(pool, release, managed_ns, duration=10, verify=120).result())
    print(f"managed NATS, gateway publish: {result}")
    assert result["acked"] > 0, result
    assert result["lost"] == 0, result


@pytest.mark.timeout(1200)
def test_kill_9_of_one_server_of_three_under_load_loses_nothing_acknowledged(
    release: KubeCluster, managed_ns: str
) -> None:
    victim = nats_pods(release, managed_ns, "east")[0]
    name = victim["metadata"]["name"]
    restarts = next(
        int(s["restartCount"]) for s in victim["status"]["containerStatuses"] if s["name"] == "nats"
    )
    with ThreadPoolExecutor(1) as pool:
        load = start_load(pool, release, managed_ns, duration=45, verify=180)
        wait_for(
            "the load client's first acknowledgements",
            lambda: acked_so_far(release, managed_ns) >= 25,
            timeout=180,
        )
        pid = kill_9(release, victim)
        print(f"\nkill -9 {name} (host pid {pid})")
        result = result_of(load.result())
    print(f"kill -9 one server of three under load: {result}")

    def restarted() -> bool:
        east = {p["metadata"]["name"]: p for p in nats_pods(release, managed_ns, "east")}
        statuses = east[name]["status"]["containerStatuses"] if name in east else []
        return any(int(s["restartCount"]) > restarts for s in statuses if s["name"] == "nats")

    wait_for(f"{name} restarted by its kubelet", restarted, timeout=120)
    assert result["acked"] > 0, result
    assert result["lost"] == 0, result
    wait_for(
        "east: 3 servers ready again",
        lambda: servers_ready(release, managed_ns, "east", 3),
        timeout=300,
        diagnose=lambda: describe(release, managed_ns),
    )
    # Consumption went on: everything acked (before, during and after the kill) was stored
    # by a worker, which is what lost == 0 read back from the transcripts says.


def _streams_current(release: KubeCluster, ns: str, region: str) -> bool:
    streams = region_status(release, ns, region).get("streams") or []
    return bool(streams) and all(s["current"] == s["replicas"] for s in streams)


def _set_east(release: KubeCluster, ns: str, field: str, value: object) -> None:
    patch = [{"op": "add", "path": f"/spec/regions/0/nats/managed/{field}", "value": value}]
    release.kubectl(
        "patch", "messagingcluster", MC, "-n", ns, "--type=json", "-p", json.dumps(patch)
    )


@pytest.mark.timeout(1500)
def test_the_servers_scale_3_to_5_to_3_with_every_stream_current(
    release: KubeCluster, managed_ns: str
) -> None:
    for count in (5, 3):
        started = time.monotonic()
        _set_east(release, managed_ns, "servers", count)
        wait_for(
            f"east: {count} servers ready, every stream current",
            lambda c=count: (
                servers_ready(release, managed_ns, "east", c)  # type: ignore[misc]
                and _streams_current(release, managed_ns, "east")
            ),
            timeout=600,
            diagnose=lambda: describe(release, managed_ns),
        )
        scaled = time.monotonic() - started
        # The route list changed: the old servers reload it once the kubelet refreshed
        # their mounted configuration Secret.
        wait_for(
            f"NatsReady: every server of {count} on the new configuration",
            lambda: condition(release, managed_ns, "NatsReady"),
            timeout=300,
            diagnose=lambda: describe(release, managed_ns),
        )
        streams = region_status(release, managed_ns, "east")["streams"]
        print(
            f"\nscaled east to {count} servers in {scaled:.0f} s, every server on the new"
            f" configuration after {time.monotonic() - started:.0f} s: {streams}"
        )
        replicas = {s["name"]: s["replicas"] for s in streams}
        assert all(1 <= r <= count for r in replicas.values()), replicas


@pytest.mark.timeout(1500)
def test_a_rolled_config_change_under_load_loses_nothing_and_unavailability_is_measured(
    release: KubeCluster, managed_ns: str
) -> None:
    sts = kube_json(release, "get", "statefulset", f"{MC}-nats-east", "-n", managed_ns)
    before = sts["status"].get("updateRevision")
    with ThreadPoolExecutor(1) as pool:
        load = start_load(pool, release, managed_ns, duration=90, verify=180)
        wait_for(
            "the load client's first acknowledgements",
            lambda: acked_so_far(release, managed_ns) >= 25,
            timeout=180,
        )
        # Resources are not reloadable: a new pod template revision, rolled one pod at a time.
        _set_east(release, managed_ns, "resources", {"requests": {"cpu": "20m"}})

        def rolled() -> bool:
            now = kube_json(release, "get", "statefulset", f"{MC}-nats-east", "-n", managed_ns)
            status = now["status"]
            return (
                status.get("updateRevision") != before
                and status.get("updatedReplicas") == 3
                and servers_ready(release, managed_ns, "east", 3)
            )

        wait_for("east rolled to the new revision", rolled, timeout=900,
                 diagnose=lambda: describe(release, managed_ns))  # fmt: skip
        result = result_of(load.result())
    print(f"\nrolled config change under load: {result}")
    assert result["acked"] > 0, result
    assert result["lost"] == 0, result


@pytest.mark.timeout(600)
def test_the_servers_policy_admits_clients_to_4222_prometheus_to_8222_and_nobody_to_routes(
    release: KubeCluster, managed_ns: str
) -> None:
    # Workers, gateways, the operator, routes and west's leafnode got through in every test
    # above; here a pod of none of those, a labelled client and a Prometheus pod.
    stranger = probe(release, managed_ns, {}, first=4222)
    client = probe(release, managed_ns, {"surge.dev/nats-client": MC}, first=4222)
    prometheus = probe(release, managed_ns, {"app.kubernetes.io/name": "prometheus"}, first=8222)
    print(f"\nunlabelled pod: {stranger}; labelled client: {client}; prometheus: {prometheus}")
    assert stranger == {4222: "closed", 6222: "closed", 7422: "closed", 8222: "closed"}
    assert client == {4222: "open", 6222: "closed", 7422: "closed", 8222: "closed"}
    assert prometheus == {4222: "closed", 6222: "closed", 7422: "closed", 8222: "open"}
