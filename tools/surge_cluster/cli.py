"""`surge-cluster up|down|status|env|load-image|leftovers [--dir DIR]`: a local Kubernetes
cluster with real nodes (kubelet + containerd in network namespaces) for tests."""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
from pathlib import Path

from surge_cluster.cluster import ClusterError, ClusterStatus, LocalCluster
from surge_cluster.images import ImageBuildError, busybox_image
from surge_cluster.layout import default_dir
from surge_cluster.nodes import NodeError
from surge_cluster.readiness import NotReadyError
from surge_cluster.topology import DEFAULT_NODES
from surge_cluster.versions import BUILD_SCRIPT, bin_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="surge-cluster", description=__doc__)
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="cluster state directory (default: $SURGE_CLUSTER_DIR or ./.surge/cluster)",
    )
    parser.add_argument("--bin-dir", type=Path, default=None, help="built binaries")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the cluster and print the kubeconfig path")
    up.add_argument(
        "--fake-nodes",
        action="store_true",
        help="kwok nodes that run nothing instead of real nodes (many-node benchmarks)",
    )
    up.add_argument("--timeout", type=float, default=120.0)
    up.add_argument(
        "--build", action="store_true", help="run tools/build-k8s.sh first (no-op when cached)"
    )
    sub.add_parser("down", help="stop and remove everything the cluster created")
    load = sub.add_parser(
        "load-image", help="import image archives (docker-archive/OCI tar) into every node"
    )
    load.add_argument("archives", nargs="+", type=Path)
    sub.add_parser(
        "leftovers", help="list what of this cluster is still on the machine (exit 1 if any)"
    )
    sub.add_parser(
        "test-image",
        help="build if needed and print the e2e test image archive (kind: kind load image-archive)",
    )
    sub.add_parser("status", help="what runs and where")
    sub.add_parser("env", help="print shell exports: KUBECONFIG and the binaries on PATH")
    return parser


def render_status(status: ClusterStatus) -> str:
    lines = [
        f"dir:        {status.root}",
        f"kubeconfig: {status.kubeconfig or '-'}",
        f"server:     {status.server or '-'} ({'ready' if status.api_ready else 'not ready'})",
    ]
    for comp in status.components:
        state = "running" if comp.alive else "stopped"
        rss = f"{comp.rss / 2**20:5.0f} MiB"
        pid = f"pid {comp.pid}" if comp.processes == 1 else f"{comp.processes} procs"
        lines.append(f"  {comp.name:<28} {pid:<12} {state:<8} {rss}  log {comp.log}")
    if not status.components:
        lines.append("  (nothing started)")
    else:
        lines.append(f"  {'total resident memory':<46} {status.rss / 2**20:5.0f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "up" else logging.WARNING,
        format="%(asctime)s %(message)s",
        stream=sys.stderr,
    )
    root = (args.dir or default_dir()).resolve()
    cluster = LocalCluster(root, binaries=args.bin_dir or bin_dir())
    if args.command == "up":
        if args.fake_nodes:
            cluster.real_nodes, cluster.nodes = (), DEFAULT_NODES
        if args.build:
            subprocess.run(["bash", str(BUILD_SCRIPT)], check=True)
        try:
            info = cluster.up(timeout=args.timeout)
        except (ClusterError, NotReadyError, OSError, RuntimeError) as err:
            print(f"surge-cluster: {err}", file=sys.stderr)
            return 1
        if info.timings:
            print(
                f"API ready in {info.timings.api_ready:.1f} s, "
                f"cluster ready in {info.timings.cluster_ready:.1f} s",
                file=sys.stderr,
            )
        print(info.kubeconfig)
        return 0
    if args.command == "down":
        killed = cluster.down()
        if killed:
            print(f"killed after grace period: {', '.join(killed)}", file=sys.stderr)
        return 0
    if args.command == "load-image":
        try:
            cluster.load_images(args.archives)
        except (ClusterError, NodeError) as err:
            print(f"surge-cluster: {err}", file=sys.stderr)
            return 1
        return 0
    if args.command == "test-image":
        try:
            print(busybox_image())
        except ImageBuildError as err:
            print(f"surge-cluster: {err}", file=sys.stderr)
            return 1
        return 0
    if args.command == "leftovers":
        found = cluster.leftovers()
        print("\n".join(found) if found else "nothing left")
        return 1 if found else 0
    if args.command == "env":
        print(f"export KUBECONFIG={shlex.quote(str(cluster.layout.kubeconfig))}")
        print(f'export PATH={shlex.quote(str(cluster.binaries))}:"$PATH"')
        return 0
    status = cluster.status()
    print(render_status(status))
    return 0 if status.running else 3


if __name__ == "__main__":
    sys.exit(main())
