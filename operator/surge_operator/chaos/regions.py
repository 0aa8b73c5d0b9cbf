"""Two (or more) real nats-servers on loopback, one per region, linked like production.

Each region gets its own JetStream domain (the region name); every region after the first
solicits a leafnode connection to the first, which is how a standby reaches the primary's
JetStream API as ``$JS.<domain>.API``. Same layout as the README's operations section,
minus TLS and credentials. Servers keep their port, leafnode port and store across
``kill()`` / ``restart()``, so "the region comes back" is a real restart with its data.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from surge_operator.failover import RegionEndpoint
from surge_workers.natsserver import NatsServer, free_port


def region_config(name: str, *, leaf_port: int, hub_leaf_port: int | None) -> str:
    """nats-server config for one region: its JetStream domain, and either a leafnode
    listener (the hub) or a leafnode remote to the hub that retries every second."""
    lines = [f"server_name: {name}", f"jetstream {{ domain: {name} }}"]
    if hub_leaf_port is None:
        lines.append(f"leafnodes {{ listen: 127.0.0.1:{leaf_port} }}")
    else:
        lines.append(
            "leafnodes { reconnect: 1s, remotes: [ "
            f'{{ urls: ["nats-leaf://127.0.0.1:{hub_leaf_port}"] }} ] }}'
        )
    return "\n".join(lines) + "\n"


class Regions:
    """`servers[name]`, `endpoint(name)`; the first region is the leafnode hub."""

    def __init__(self, names: Sequence[str], root: Path | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="surge-regions-")) if root is None else root
        self.names = tuple(names)
        hub_leaf = free_port()
        self.servers: dict[str, NatsServer] = {}
        for i, name in enumerate(self.names):
            store = self.root / name
            store.mkdir(parents=True, exist_ok=True)
            conf = store / "region.conf"
            conf.write_text(
                region_config(name, leaf_port=hub_leaf, hub_leaf_port=None if i == 0 else hub_leaf)
            )
            self.servers[name] = NatsServer(store_dir=store, extra_args=("-c", str(conf)))

    def endpoint(self, name: str) -> RegionEndpoint:
        return RegionEndpoint(name=name, url=self.servers[name].url, domain=name)

    def endpoints(self) -> list[RegionEndpoint]:
        return [self.endpoint(n) for n in self.names]

    def start(self) -> Regions:
        for server in self.servers.values():
            server.start()
        return self

    def cleanup(self) -> None:
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                server.kill()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_regions(names: Sequence[str], root: Path | None = None) -> Iterator[Regions]:
    regions = Regions(names, root)
    try:
        yield regions.start()
    finally:
        regions.cleanup()
