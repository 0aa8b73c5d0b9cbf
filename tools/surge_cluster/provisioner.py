"""The local cluster's volume provisioner: the I/O edge around localpath.plan.

``python -m surge_cluster.provisioner --kubeconfig K --node-dir NODE=DIR ...`` runs on the
host (the nodes share its mount namespace, so a directory made here is what the kubelet
bind-mounts), started and stopped by `surge-cluster up` / `down` like the node daemons.

Each pass lists every PersistentVolumeClaim and PersistentVolume, plans, and acts: for a
new volume the directory first, then the PV (so a PV never points at nothing); for a
released one the directory first, then the PV (so a failed removal is retried, never
forgotten). Level-triggered polling rather than watches: one pass is two list calls on a
cluster with a handful of claims, it needs no resync logic, and it survives API server
restarts unchanged.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client, config

from surge_cluster import localpath

log = logging.getLogger("surge_cluster.provisioner")
PASS_INTERVAL = 1.0
"""Seconds between passes: a pod waits at most about this long for its volume."""


class Provisioner:
    """core: a kubernetes CoreV1Api (or a fake with its four calls); plain turns what it
    returns into API JSON (ApiClient.sanitize_for_serialization)."""

    def __init__(
        self, core: Any, node_dirs: dict[str, Path], plain: Callable[[Any], Any] = lambda o: o
    ) -> None:
        self.core = core
        self.node_dirs = node_dirs
        self.plain = plain

    def _plain(self, items: Sequence[Any]) -> list[dict[str, Any]]:
        return [self.plain(i) for i in items]

    def reconcile(self) -> localpath.Plan:
        claims = self._plain(self.core.list_persistent_volume_claim_for_all_namespaces().items)
        volumes = self._plain(self.core.list_persistent_volume().items)
        plan = localpath.plan(
            [localpath.claim_from(c) for c in claims],
            [localpath.volume_from(v) for v in volumes],
            self.node_dirs,
        )
        for new in plan.create:
            self._provision(new)
        for old in plan.delete:
            self._reclaim(old)
        return plan

    def _provision(self, new: localpath.NewVolume) -> None:
        new.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            self.core.create_persistent_volume(new.manifest)
        except client.exceptions.ApiException as err:
            if err.status != 409:  # 409: made by an earlier pass whose list was stale
                raise
        claim = new.manifest["spec"]["claimRef"]
        log.info(
            "provisioned %s for %s/%s at %s",
            new.name,
            claim["namespace"],
            claim["name"],
            new.directory,
        )

    def _reclaim(self, old: localpath.ReleasedVolume) -> None:
        if old.directory.exists():
            shutil.rmtree(old.directory)
        try:
            self.core.delete_persistent_volume(old.name)
        except client.exceptions.ApiException as err:
            if err.status != 404:
                raise
        log.info("reclaimed %s: removed %s", old.name, old.directory)


def run(provisioner: Provisioner, stop: threading.Event, interval: float = PASS_INTERVAL) -> None:
    while not stop.is_set():
        try:
            provisioner.reconcile()
        except Exception:  # keep serving through API restarts and transient errors
            log.exception("pass failed; retrying")
        stop.wait(interval)


def parse_node_dir(text: str) -> tuple[str, Path]:
    node, sep, path = text.partition("=")
    if not sep or not node or not path.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected NODE=/absolute/dir, got {text!r}")
    return node, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="surge-cluster-provisioner", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument(
        "--node-dir",
        type=parse_node_dir,
        action="append",
        required=True,
        help="NODE=DIR: where volumes of NODE live (repeat per node)",
    )
    parser.add_argument("--interval", type=float, default=PASS_INTERVAL)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    api = config.new_client_from_config(config_file=str(args.kubeconfig))  # type: ignore[no-untyped-call]
    node_dirs = dict(args.node_dir)
    log.info("serving StorageClass %s on %s", localpath.STORAGE_CLASS, ", ".join(node_dirs))
    core = client.CoreV1Api(api)
    run(Provisioner(core, node_dirs, api.sanitize_for_serialization), stop, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
