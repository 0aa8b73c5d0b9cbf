"""Managed NATS on real nodes (issue 10): a release whose Secrets RBAC covers one namespace,
a two-region MessagingCluster whose NATS the operator runs, a load client in a pod that
records exactly what the gateway acknowledged, and kill -9 of one server's process.

The load client runs in a pod (cluster DNS, the gateway's Service), never on the host's
loopback; it publishes one message at a time for a bounded duration, then reads every
conversation's transcript back until each acknowledged id is there (bounded), and prints
one RESULT line: acked, lost, failures and the longest stretch without an acknowledgement."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from surge_cluster.testing import KubeCluster
from tests.e2e.cluster.support import (
    RELEASE,
    RELEASE_NS,
    ROOT,
    ClientResult,
    archives,
    describe,
    install_release,
    kube_json,
    missing,
    pods,
    probe_ports,
    ready,
    run_client,
    wait_for,
)

CHART = str(ROOT / "charts" / "surge")
TOKEN = "e2e-managed-token-0123456789"
MC = "support"
CONVERSATIONS = 8
NATS_POD = "app.kubernetes.io/component=nats"


def released(cluster: KubeCluster) -> KubeCluster:
    """Images in every node (local cluster) and the chart installed by tools/e2e/install.sh."""
    if getattr(cluster, "cluster", None) is not None:
        cluster.load_images(archives())
    install_release(cluster)
    return cluster


def spec(ns: str, east_servers: int = 3) -> dict[str, Any]:
    """East (primary) runs `east_servers` servers; west (standby) one, which is enough for
    its mirror and keeps two cores' worth of nodes free for the load."""
    return {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "MessagingCluster",
        "metadata": {"name": MC, "namespace": ns},
        "spec": {
            "regions": [
                {
                    "name": "east",
                    "role": "primary",
                    "nats": {"managed": {"servers": east_servers, "metrics": False}},
                },
                {
                    "name": "west",
                    "role": "standby",
                    "nats": {"managed": {"servers": 1, "metrics": False}},
                },
            ],
            "stream": {"deletionPolicy": "delete", "partitions": 4},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
            "gateway": {
                "replicas": 1,
                "tokensSecret": {"name": "tenant-tokens", "key": "tokens"},
            },
        },
    }


def condition(cluster: KubeCluster, ns: str, kind: str) -> bool:
    mc = kube_json(cluster, "get", "messagingcluster", MC, "-n", ns)
    conditions = mc.get("status", {}).get("conditions") or []
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


def region_status(cluster: KubeCluster, ns: str, region: str) -> dict[str, Any]:
    mc = kube_json(cluster, "get", "messagingcluster", MC, "-n", ns)
    for entry in mc.get("status", {}).get("nats") or []:
        if entry.get("region") == region:
            return dict(entry)
    return {}


def nats_pods(cluster: KubeCluster, ns: str, region: str) -> list[dict[str, Any]]:
    return [
        p
        for p in pods(cluster, ns, NATS_POD)
        if p["metadata"]["name"].startswith(f"{MC}-nats-{region}-")
    ]


def servers_ready(cluster: KubeCluster, ns: str, region: str, count: int) -> bool:
    current = nats_pods(cluster, ns, region)
    status = region_status(cluster, ns, region)
    return (
        len(current) == count
        and all(ready(p) for p in current)
        and status.get("servers") == count
        and status.get("serversReady") == count
        # One server runs JetStream without a cluster: no meta leader to elect.
        and (count == 1 or bool(status.get("metaLeader")))
    )


def create(cluster: KubeCluster, ns: str, east_servers: int = 3) -> None:
    """The namespace's tokens Secret and the MessagingCluster; waits until it is Ready."""
    cluster.helm(
        "upgrade", RELEASE, CHART, "--namespace", RELEASE_NS, "--reuse-values",
        "--set", f"rbac.secretNamespaces={{{ns}}}",
    )  # fmt: skip
    cluster.kubectl(
        "create", "secret", "generic", "tenant-tokens", "-n", ns,
        f"--from-literal=tokens={json.dumps({'acme': [TOKEN]})}",
    )  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps(spec(ns, east_servers)))
    wait_for(
        f"MessagingCluster {MC} Ready with managed NATS",
        lambda: condition(cluster, ns, "Ready"),
        timeout=600,
        diagnose=lambda: describe(cluster, ns),
    )


def teardown(cluster: KubeCluster, ns: str) -> None:
    cluster.kubectl("delete", "messagingcluster", MC, "-n", ns, "--wait=false", check=False)
    cluster.kubectl(
        "patch", "messagingcluster", MC, "-n", ns, "--type=merge",
        "-p", '{"metadata":{"finalizers":null}}', check=False,
    )  # fmt: skip
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def fresh_namespace(cluster: KubeCluster) -> Iterator[str]:
    ns = f"e2e-mn-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    try:
        yield ns
    finally:
        teardown(cluster, ns)


LOAD_SCRIPT = """
import json, time, urllib.error, urllib.request
host, token, duration, verify, conversations = {args!r}
auth = {{"Authorization": f"Bearer {{token}}", "Content-Type": "application/json"}}
acked, failures, attempts = set(), 0, 0
start = time.monotonic()
last_ok, longest = start, 0.0
while time.monotonic() - start < duration:
    mid = f"m-{{attempts}}"
    body = json.dumps({{"id": mid, "conversation_id": f"c-{{attempts % conversations}}",
                       "text": f"message {{attempts}}", "priority": "normal"}}).encode()
    attempts += 1
    try:
        request = urllib.request.Request(f"http://{{host}}/v1/messages", data=body, headers=auth)
        with urllib.request.urlopen(request, timeout=10) as reply:
            ok = reply.status == 202
    except (urllib.error.URLError, OSError):
        ok = False
    now = time.monotonic()
    if ok:
        acked.add(mid)
        longest, last_ok = max(longest, now - last_ok), now
        if len(acked) % 25 == 0:
            print("ACKED", len(acked), flush=True)
    else:
        failures += 1
        time.sleep(0.1)
longest = max(longest, time.monotonic() - last_ok)
seen, deadline = set(), time.monotonic() + verify
while True:
    seen = set()
    for c in range(conversations):
        cursor = None
        while True:
            url = f"http://{{host}}/v1/conversations/c-{{c}}/transcript?limit=500"
            if cursor:
                url += f"&cursor={{cursor}}"
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=auth),
                                            timeout=15) as r:
                    page = json.loads(r.read())
            except (urllib.error.URLError, OSError):
                break
            seen.update(m["id"] for m in page["messages"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    if not acked - seen or time.monotonic() > deadline:
        break
    time.sleep(2)
print("RESULT", json.dumps({{"acked": len(acked), "lost": len(acked - seen),
      "attempts": attempts, "failures": failures,
      "longest_unavailable_s": round(longest, 2)}}), flush=True)
"""


def load_script(ns: str, duration: float, verify: float) -> str:
    host = f"{MC}-gateway.{ns}.svc.cluster.local"
    return LOAD_SCRIPT.format(args=(host, TOKEN, duration, verify, CONVERSATIONS))


def start_load(
    pool: ThreadPoolExecutor, cluster: KubeCluster, ns: str, duration: float, verify: float
) -> Future[ClientResult]:
    script = load_script(ns, duration, verify)
    return pool.submit(run_client, cluster, ns, script, timeout=duration + verify + 120)


def acked_so_far(cluster: KubeCluster, ns: str) -> int:
    """The running load client's latest ACKED progress line (0 before the first)."""
    for pod in kube_json(cluster, "get", "pods", "-n", ns)["items"]:
        name = pod["metadata"]["name"]
        # A finished client is deleted without waiting: skip it while it terminates.
        if name.startswith("client-") and not pod["metadata"].get("deletionTimestamp"):
            log = cluster.kubectl("logs", "-n", ns, name, check=False).stdout
            counts = [int(line.split()[1]) for line in log.splitlines() if line.startswith("ACKED")]
            return max(counts, default=0)
    return 0


def result_of(outcome: ClientResult) -> dict[str, Any]:
    lines = [line for line in outcome.log.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the load client printed no RESULT ({outcome.phase}):\n{outcome.log}"
    out: dict[str, Any] = json.loads(lines[-1].split(" ", 1)[1])
    return out


def kill_9(cluster: KubeCluster, pod: dict[str, Any], container: str = "nats") -> int:
    """SIGKILL the container's main process from the node (the local cluster's nodes run on
    this host): no lame duck, no preStop, no flush, a crash. Returns the host pid."""
    if getattr(cluster, "cluster", None) is None:
        missing("kill -9 of a server process needs the local real-node cluster")
    statuses = pod["status"].get("containerStatuses") or []
    ids = [s["containerID"].split("://", 1)[1] for s in statuses if s["name"] == container]
    assert ids, pod["status"]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroup = (entry / "cgroup").read_text()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if ids[0] in cgroup and comm == "nats-server":
            os.kill(int(entry.name), signal.SIGKILL)
            return int(entry.name)
    raise AssertionError(f"no nats-server process in container {ids[0]}")


def _east_0_ip(cluster: KubeCluster, ns: str) -> str:
    """east-0's pod IP once it is Ready: the probe dials the address, not a DNS name, so a
    refused port means the policy (or the server), never a name that did not resolve."""
    pod_name = f"{MC}-nats-east-0"

    def ready_ip() -> str | None:
        pod = kube_json(cluster, "get", "pod", pod_name, "-n", ns)
        ip: str | None = pod.get("status", {}).get("podIP")
        return ip if ready(pod) else None

    ip: str = wait_for(f"{pod_name} Ready with an address", ready_ip, timeout=300)
    return ip


def probe(cluster: KubeCluster, ns: str, labels: dict[str, str], first: int) -> dict[int, str]:
    """From a pod with `labels`: which ports of east-0 accept a TCP connection: client,
    route, leafnode and monitoring, on the server's own address as Prometheus scrapes it;
    `first` is the port tried with patience (see `probe_ports`)."""
    ports = [first] + [p for p in (4222, 6222, 7422, 8222) if p != first]
    return probe_ports(cluster, ns, _east_0_ip(cluster, ns), ports, labels=labels)
