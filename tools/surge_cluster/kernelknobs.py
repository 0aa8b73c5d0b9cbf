"""The machine-wide sysctls every kubelet sets at start (vm.overcommit_memory=1,
kernel.panic=10, kernel.panic_on_oops=1, ...), saved before the first local node starts and
put back when the last local cluster on the machine goes down.

These knobs are not per network namespace, so a kubelet in a node namespace changes the
host's. The kubelet offers only "modify" or "refuse to start" (protectKernelDefaults), so
the cluster records the values it found and restores them on `down`.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

KUBELET_KNOBS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
PROC_SYS = Path("/proc/sys")
BASELINE = Path("/run/surge-cluster/kernel-baseline.json")


def read_knobs(proc_sys: Path = PROC_SYS) -> dict[str, str]:
    values = {}
    for knob in KUBELET_KNOBS:
        with contextlib.suppress(OSError):
            values[knob] = (proc_sys / knob).read_text().strip()
    return values


def save_baseline(baseline: Path = BASELINE, proc_sys: Path = PROC_SYS) -> None:
    """Record the values before any local kubelet ran (first cluster up wins)."""
    if baseline.exists():
        return
    baseline.parent.mkdir(parents=True, exist_ok=True)
    baseline.write_text(json.dumps(read_knobs(proc_sys), indent=2))


def restore(baseline: Path = BASELINE, proc_sys: Path = PROC_SYS) -> dict[str, str]:
    """Write the recorded values back and forget them; returns what was restored."""
    try:
        saved: dict[str, str] = json.loads(baseline.read_text())
    except (OSError, ValueError):
        return {}
    for knob, value in saved.items():
        with contextlib.suppress(OSError):
            (proc_sys / knob).write_text(value)
    baseline.unlink(missing_ok=True)
    return saved
