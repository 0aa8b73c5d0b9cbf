"""Tear a cluster down when the process that started it dies (e.g. a killed pytest session).

``python -m surge_cluster.watchdog --owner PID --owner-start TICKS --dir DIR`` polls the
owner every second; when it is gone it runs `LocalCluster(DIR).down()` and exits. It also
exits quietly once the cluster was brought down normally (no process left in the state).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from surge_cluster import procs
from surge_cluster.layout import Layout, load_state

log = logging.getLogger("surge_cluster.watchdog")
NAME = "watchdog"


def cluster_gone(layout: Layout) -> bool:
    others = [p for p in load_state(layout).processes if p.pid != os.getpid()]
    return not any(procs.record_alive(p) for p in others)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="surge-cluster-watchdog", description=__doc__)
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--owner-start", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    layout = Layout(args.dir)
    while procs.is_alive(args.owner, args.owner_start):
        time.sleep(1.0)
        if cluster_gone(layout):
            return 0
    log.info("owner %d is gone: bringing the cluster down", args.owner)
    from surge_cluster.cluster import LocalCluster  # local: avoid an import cycle

    LocalCluster(args.dir).down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
