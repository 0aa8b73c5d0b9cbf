"""A partition between regions, made with a network namespace, and its heal.

East (primary) runs on this host; west (standby) runs in a network namespace of its own,
joined to the host by a veth pair on link-local addresses (169.254.77.0/30, nothing
routes there). West's leafnode link to east, and so the mirror, crosses the veth. The
real `FailoverController` runs on the host and probes both regions; the real data plane
(workers, gateways, clients) works against east.

The partition takes the veth down: west and its link vanish together, east keeps its
clients. The controller must not promote anything (east stays healthy: one writer, no
split brain), nothing accepted may be lost, and after the heal west's mirror must hold
everything east stored. RPO = how far west was behind at the heal (what a primary loss
during the partition would have left to the merge); recovery = heal to west caught up.
Needs root (ip netns); the scenario says so and is skipped otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nats

from surge_operator.chaos.dataplane import Plane, chaos_pipeline, run_plane
from surge_operator.chaos.result import Result
from surge_operator.failover import FailoverController, RegionEndpoint
from surge_operator.policy.failover import FailoverConfig
from surge_workers.lifetime import die_with_parent
from surge_workers.natsserver import NatsServer, find_nats_server, free_port
from surge_workers.pipeline import PipelineConfig

HOST_IP, NS_IP = "169.254.77.1", "169.254.77.2"
PARTITION_S = 6.0
CONFIG = FailoverConfig(probe_interval=0.25, failure_threshold=3)


class NetnsUnavailableError(RuntimeError):
    """Network namespaces cannot be created here (not root, or no `ip`)."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetnsUnavailableError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@contextlib.contextmanager
def namespace() -> Iterator[tuple[str, str]]:
    """(namespace, host-side veth) joined to the host on HOST_IP/NS_IP; removed after."""
    tag = f"{os.getpid() % 100000}"
    ns, host, peer = f"surge-chaos-{tag}", f"schh{tag}", f"schn{tag}"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", ns)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", host)
        _ip("link", "set", host, "up")
        _ip("-n", ns, "addr", "add", f"{NS_IP}/30", "dev", peer)
        _ip("-n", ns, "link", "set", peer, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns, host
    finally:
        subprocess.run(["ip", "link", "del", host], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


class NamespacedNats:
    """A nats-server inside `ns`, listening on NS_IP."""

    def __init__(self, ns: str, store: Path, config: Path) -> None:
        self.ns, self.store, self.config = ns, store, config
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{NS_IP}:{self.port}"

    def start(self, timeout: float = 20.0) -> NamespacedNats:
        args = ["ip", "netns", "exec", self.ns, find_nats_server(), "-js", "-a", NS_IP]
        args += ["-p", str(self.port), "-sd", str(self.store / "jetstream")]
        args += ["-l", str(self.store / "nats-server.log"), "-c", str(self.config)]
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((NS_IP, self.port), timeout=0.2) as sock,
            ):
                if sock.recv(4).startswith(b"INFO"):
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"west nats-server not ready; see {self.store}/nats-server.log")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def _stored(url: str, stream: str) -> int:
    """Messages in `stream` at `url`; raises when that region cannot be reached."""
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=1)
    try:
        return int((await nc.jetstream(timeout=1.0).stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def partition_heal(count: int) -> Result:
    pipeline = chaos_pipeline()
    with tempfile.TemporaryDirectory(prefix="surge-chaos-") as tmp, namespace() as (ns, veth):
        root = Path(tmp)
        leaf = free_port()
        (root / "east").mkdir()
        (root / "west").mkdir()
        east_conf = root / "east" / "east.conf"
        east_conf.write_text(
            f"server_name: east\njetstream {{ domain: east }}\n"
            f"leafnodes {{ listen: {HOST_IP}:{leaf} }}\n"
        )
        west_conf = root / "west" / "west.conf"
        west_conf.write_text(
            f"server_name: west\njetstream {{ domain: west }}\n"
            "leafnodes { reconnect: 1s, remotes: [ "
            f'{{ urls: ["nats-leaf://{HOST_IP}:{leaf}"] }} ] }}\n'
        )
        east = NatsServer(store_dir=root / "east", extra_args=("-c", str(east_conf)))
        west = NamespacedNats(ns, root / "west", west_conf)
        with east:
            west.start()
            try:
                controller = FailoverController(
                    cluster="chaos/partition",
                    endpoints=[
                        RegionEndpoint(name="east", url=east.url, domain="east"),
                        RegionEndpoint(name="west", url=west.url, domain="west"),
                    ],
                    primary="east",
                    pipeline=pipeline,
                    config=CONFIG,
                    probe_timeout=0.2,
                )
                return await _run(count, pipeline, controller, east, west, veth, root)
            finally:
                west.kill()


async def _run(
    count: int,
    pipeline: PipelineConfig,
    controller: FailoverController,
    east: NatsServer,
    west: NamespacedNats,
    veth: str,
    root: Path,
) -> Result:
    stop = asyncio.Event()
    actives: set[str] = set()

    async def ticker() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await controller.tick()
            actives.add(controller.state.active)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CONFIG.probe_interval)

    tasks: list[asyncio.Task[None]] = []
    healed_at: list[float] = []

    async def fault(plane: Plane, i: int) -> None:
        if i == 0:
            tasks.append(asyncio.create_task(ticker()))
        elif i == count // 3:
            west_before = await _stored(west.url, pipeline.stream)
            plane.mark_fault()
            _ip("link", "set", veth, "down")  # west and its link are cut off

            async def heal() -> None:
                await asyncio.sleep(PARTITION_S)
                # West cannot have mirrored anything while cut off.
                plane.rpo = await _stored(east.url, pipeline.stream) - west_before
                _ip("link", "set", veth, "up")
                healed_at.append(time.monotonic())

            plane.tasks.append(asyncio.create_task(heal()))

    async def after(plane: Plane, _: object) -> None:
        # West must catch up with everything east stored (bounded wait).
        deadline = time.monotonic() + 60
        target = await _stored(east.url, pipeline.stream)
        caught = None
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if await _stored(west.url, pipeline.stream) >= target:
                    caught = time.monotonic()
                    break
            await asyncio.sleep(0.25)
        stop.set()
        await asyncio.gather(*tasks)
        plane.notes["writers_seen"] = sorted(actives)  # ["east"]: no split brain
        plane.notes["split_brain"] = actives != {"east"}
        plane.notes["west_caught_up"] = caught is not None
        plane.notes["partition_s"] = PARTITION_S
        if caught is not None and healed_at:
            plane.recovery_s = caught - healed_at[0]

    return await run_plane(
        "partition-heal",
        urls=[east.url],
        root=root / "stage",
        count=count,
        rate=60.0,
        fault=fault,
        pipeline=pipeline,
        on_traffic_done=after,
    )
