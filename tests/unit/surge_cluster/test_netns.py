"""surge_cluster.netns in a network namespace of the test's own (root only; no cluster)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from surge_cluster.netns import call_in_netns, node_argv, resolv_conf

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

PROBE = """
import json, os, socket
print(json.dumps({"pid": os.getpid(), "resolv": open("/etc/resolv.conf").read(),
                  "links": sorted(os.listdir("/sys/class/net"))}))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"surge-test-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_a_node_process_has_the_nodes_network_and_the_cluster_dns_and_nothing_leaks(
    netns: str, tmp_path: Path
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(resolv_conf())
    host_resolv = Path("/etc/resolv.conf").read_text()

    proc = subprocess.Popen(
        node_argv(netns, resolv, [sys.executable, "-c", PROBE]), stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate(timeout=30)
    seen = json.loads(out)
    assert proc.returncode == 0
    assert seen["pid"] == proc.pid  # every wrapper execs: signals reach the process itself
    assert "nameserver 10.96.0.10" in seen["resolv"]
    assert "search svc.cluster.local cluster.local" in seen["resolv"]
    assert seen["links"] == ["lo"]  # the namespace's links only
    assert Path("/etc/resolv.conf").read_text() == host_resolv


def test_sockets_opened_in_the_namespace_stay_there(netns: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
    listener = call_in_netns(netns, lambda: socket.create_server(("127.0.0.1", 0)))
    port = listener.getsockname()[1]
    try:
        with pytest.raises(ConnectionRefusedError):  # not on this host's loopback
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        reached = call_in_netns(netns, lambda: socket.create_connection(("127.0.0.1", port), 2))
        conn, _ = listener.accept()
        conn.close()
        reached.close()
    finally:
        listener.close()
