"""A disk that fills: the nats-server's JetStream store on a small tmpfs of its own (a
real filesystem with a real size limit; needs root to mount). In the middle of the
traffic something else fills the filesystem to the last byte; writes must then be refused
with an answer the client sees (the gateway's 503), nothing acknowledged may be lost, and
once the space is freed writes are accepted again. nats-server 2.x does not resume by
itself: a stream that hit ENOSPC keeps refusing (the log says "Critical write error")
until the server restarts, so the scenario restarts it when writes have not resumed
`RESTART_AFTER` seconds after the space was freed, and says so in its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from surge_operator.chaos.dataplane import Plane, later, run_plane
from surge_operator.chaos.result import Result
from surge_workers.natsserver import NatsServer

DISK_MB = 64
FULL_FOR = 8.0
#: Seconds after the space is freed before nats-server, still refusing, is restarted.
RESTART_AFTER = 5.0


class DiskUnavailableError(RuntimeError):
    """A tmpfs cannot be mounted here (not root, or no mount namespace rights)."""


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        raise DiskUnavailableError(f"mount tmpfs: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(path: Path) -> int:
    """Write `path` until the filesystem refuses (ENOSPC); returns the bytes written."""
    written = 0
    chunk = b"\0" * (256 << 10)
    with path.open("wb", buffering=0) as out:
        while True:
            try:
                written += out.write(chunk)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                if len(chunk) <= 4096:
                    break
                chunk = chunk[: len(chunk) // 2]  # the last few KiB too
        os.fsync(out.fileno())
    return written


async def disk_full(count: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="surge-chaos-") as tmp:
        root = Path(tmp)
        with small_disk(root / "disk", DISK_MB) as disk:
            server = NatsServer(store_dir=disk / "nats")
            server.log_path = root / "nats-server.log"  # logs elsewhere: not the full disk
            filler = disk / "filler"

            async def fault(plane: Plane, i: int) -> None:
                async def free() -> None:
                    filler.unlink()
                    plane.mark_fault()  # recovery counts from the space being freed
                    freed = time.time()
                    await asyncio.sleep(RESTART_AFTER)
                    if plane.traffic.first_accept_after(freed) is None:
                        # nats-server keeps a stream's write error after the disk has room
                        # again: only a restart (what an operator or a liveness probe
                        # does to the pod) brings writes back.
                        plane.notes["nats_restarted_after_free"] = True
                        await asyncio.to_thread(server.restart, 30.0)
                    else:
                        plane.notes["nats_restarted_after_free"] = False

                if i == count // 3:
                    plane.notes["filled_bytes"] = fill(filler)
                    plane.notes["full_for_s"] = FULL_FOR
                    # By time, not by message: clients make no progress while it is full.
                    later(plane, FULL_FOR, free)

            with server:
                return await run_plane(
                    "disk-full",
                    urls=[server.url],
                    root=root / "stage",
                    count=count,
                    rate=60.0,
                    fault=fault,
                )
