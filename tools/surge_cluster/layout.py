"""Where a local cluster keeps its files, and its state file (what runs, where)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surge_cluster.ports import Ports
from surge_cluster.procs import ProcessRecord


def default_dir() -> Path:
    """SURGE_CLUSTER_DIR, else ./.surge/cluster (git-ignored)."""
    return Path(os.environ.get("SURGE_CLUSTER_DIR", ".surge/cluster")).resolve()


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig handed to users and tests."""
        return self.root / "kubeconfig"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.yaml"

    @property
    def kwok_config(self) -> Path:
        return self.root / "kwok.yaml"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


@dataclass
class State:
    """Persisted in state.json after every change so `down` can always clean up."""

    ports: Ports | None = None
    processes: list[ProcessRecord] = field(default_factory=list)
    kubeconfig: str = ""
    server: str = ""
    subnet: str = ""
    """The node subnet of this cluster's bridge ("" without real nodes)."""
    real_nodes: list[dict[str, str]] = field(default_factory=list)
    """name/region/zone of each real node, so `down` can find everything it created."""

    def to_json(self) -> dict[str, Any]:
        return {
            "ports": self.ports.to_json() if self.ports else None,
            "processes": [p.to_json() for p in self.processes],
            "kubeconfig": self.kubeconfig,
            "server": self.server,
            "subnet": self.subnet,
            "real_nodes": self.real_nodes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        ports = data.get("ports")
        return cls(
            ports=Ports.from_json(ports) if ports else None,
            processes=[ProcessRecord.from_json(p) for p in data.get("processes", [])],
            kubeconfig=str(data.get("kubeconfig", "")),
            server=str(data.get("server", "")),
            subnet=str(data.get("subnet", "")),
            real_nodes=[dict(n) for n in data.get("real_nodes", [])],
        )


def load_state(layout: Layout) -> State:
    try:
        return State.from_json(json.loads(layout.state_file.read_text()))
    except FileNotFoundError:
        return State()


def save_state(layout: Layout, state: State) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2))
    tmp.replace(layout.state_file)
