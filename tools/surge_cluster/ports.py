"""Free loopback ports for the control plane components."""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ports:
        return cls(**{k: int(v) for k, v in data.items()})


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ask the kernel for count distinct free ports (all sockets held open until the end)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def allocate_ports() -> Ports:
    return Ports(*free_ports(6))
