"""Files the pod runner keeps in its directory, readable by tests, `down` and Prometheus.

- pids.json: one entry per running container process (a procs.ProcessRecord plus pod identity);
  `down` kills what a crashed runner left behind, tests find a pod's process here.
- targets.json: Prometheus file_sd targets, one per container port named like "metrics"
  (or the port in the pod's prometheus.io/port annotation), at the pod's loopback IP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surge_cluster.procs import ProcessRecord

PIDS_FILE = "pids.json"
TARGETS_FILE = "targets.json"


@dataclass(frozen=True)
class PodProcess:
    namespace: str
    pod: str
    uid: str
    container: str
    pod_ip: str
    record: ProcessRecord

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "pod": self.pod,
            "uid": self.uid,
            "container": self.container,
            "podIP": self.pod_ip,
            "process": self.record.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodProcess:
        return cls(
            namespace=str(data["namespace"]),
            pod=str(data["pod"]),
            uid=str(data["uid"]),
            container=str(data["container"]),
            pod_ip=str(data["podIP"]),
            record=ProcessRecord.from_json(data["process"]),
        )


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def save_processes(directory: Path, processes: list[PodProcess]) -> None:
    _write_json(directory / PIDS_FILE, [p.to_json() for p in processes])


def load_processes(directory: Path) -> list[PodProcess]:
    try:
        raw = json.loads((directory / PIDS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [PodProcess.from_json(item) for item in raw]


def load_records(directory: Path) -> list[ProcessRecord]:
    return [p.record for p in load_processes(directory)]


def save_targets(directory: Path, targets: list[dict[str, Any]]) -> None:
    _write_json(directory / TARGETS_FILE, targets)
