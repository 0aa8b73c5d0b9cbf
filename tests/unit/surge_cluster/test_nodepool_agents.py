"""Kubelets start one at a time through the device-plugin socket they all share (its path
is fixed in kubelet, and the nodes share the host's mount namespace)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from surge_cluster.components import Component
from surge_cluster.layout import Layout
from surge_cluster.netplan import NodeSpec
from surge_cluster.nodepool import NodePool, socket_bound_since
from surge_cluster.procs import ProcessRecord


def test_a_socket_counts_as_bound_only_when_made_since_the_start(tmp_path: Path) -> None:
    sock = tmp_path / "kubelet.sock"
    assert not socket_bound_since(sock, 0.0)  # absent
    sock.touch()
    old = time.time() - 3600
    os.utime(sock, (old, old))  # a previous cluster's leftover
    assert not socket_bound_since(sock, time.time() - 60)
    sock.touch()
    assert socket_bound_since(sock, float(int(time.time())))


def test_the_next_kubelet_starts_only_once_the_previous_one_bound_the_socket(
    tmp_path: Path,
) -> None:
    specs = [NodeSpec("a", "east", "east-a"), NodeSpec("b", "west", "west-a")]
    pool = NodePool.for_state(Layout(tmp_path / "root"), "198.51.100.0/28", specs, tmp_path)
    sock = tmp_path / "kubelet.sock"
    order: list[str] = []
    timers: list[threading.Timer] = []

    def spawn(component: Component) -> ProcessRecord:
        if component.name.startswith("kubelet/"):
            # the previous kubelet must have bound the socket before this one starts
            order.append(f"{component.name} sees {'bound' if sock.exists() else 'none'}")
            sock.unlink(missing_ok=True)
            # a real kubelet binds a moment after it starts, not during spawn()
            timer = threading.Timer(0.3, sock.touch)
            timer.start()
            timers.append(timer)
        # our own pid: alive for the wait's liveness check
        with open(f"/proc/{os.getpid()}/stat") as f:
            start_time = int(f.read().rsplit(")", 1)[1].split()[19])
        return ProcessRecord(component.name, os.getpid(), start_time, (), "")

    pool.start_agents(spawn, socket=sock)
    for timer in timers:
        timer.join()
    assert order == ["kubelet/a sees none", "kubelet/b sees bound"]
