"""Processes and sockets on a real node: inside the node's network namespace, where the
cluster network is what a kubelet sees (pods by IP, Services by ClusterIP through the node's
kube-proxy, the API server on the bridge), and nothing else of this machine.

A test that is about the operator *process* (kill -9, leadership, a cut API server) runs the
operator as a host process here instead of in the host's namespace, because Pod and Service
CIDRs are only routed inside the node namespaces (see netplan.py): from the host, in-cluster
NATS is out of reach. `node_argv` adds the cluster DNS as the resolver (a bind mount in a
private mount namespace, so nothing on the machine changes), so the process reaches
`nats.<ns>.svc.cluster.local` exactly as a pod does. `call_in_netns` runs a function on a
thread that joined the namespace: the sockets it opens (a client, a listener) live there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from surge_cluster.netplan import CLUSTER_DOMAIN, DNS_SERVICE_IP

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


class NetnsError(RuntimeError):
    """A node's network namespace could not be joined."""


def resolv_conf() -> str:
    """What a pod in no particular namespace gets: the cluster DNS and its search path."""
    return (
        f"nameserver {DNS_SERVICE_IP}\n"
        f"search svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
        "options ndots:5\n"
    )


def node_argv(netns: str, resolv: Path, argv: Sequence[str]) -> list[str]:
    """argv as a process on the node: its network namespace, the cluster DNS as resolver.

    Every wrapper execs the next, so the returned command's pid is argv's own process
    (signals from the caller reach it directly)."""
    mount = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return [
        "ip", "netns", "exec", netns,
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", mount, str(resolv), *argv,
    ]  # fmt: skip


def call_in_netns(netns: str, fn: Callable[[], T]) -> T:
    """fn() on a thread inside the namespace `netns` (the calling thread stays where it is)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise NetnsError(f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:  # re-raised in the caller
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
