"""What `surge bench nats` reports: every run of every row, the medians, the ratios, and
the table a person reads. Pure: the runners hand in the runs."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

GOAL = 0.5
#: the R3 rows are swept over these client counts and the best median is the broker's
#: figure (1 is the tool's default, 4 matches Surge's 4 HTTP connections)
CLIENT_SWEEP = (1, 4, 16)
R1_CLIENTS = 4


@dataclass
class NatsBenchResult:
    messages: int
    size: int
    rounds: int
    where: str
    nats_bench: dict[str, float] = field(default_factory=dict)
    #: the client count of the sweep that gave each R3 row's figure
    nats_bench_clients: dict[str, int] = field(default_factory=dict)
    fsync_cost_ratio: float = 0.0
    r1_vs_r3_ratio: float = 0.0
    surge_msgs_per_s: float = 0.0
    surge_vs_nats_bench: float = 0.0
    surge_vs_nats_end_to_end: float = 0.0
    runs: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def empty_runs() -> dict[str, list[float]]:
    return {
        **{f"{row}@{c}": [] for c in CLIENT_SWEEP for row in ("fsync_always", "fsync_lazy")},
        "end_to_end": [],
        "r1": [],
        "surge": [],
    }


def summarise(result: NatsBenchResult, runs: dict[str, list[float]]) -> NatsBenchResult:
    """Medians of every row, the best of each sweep, and the ratios, into ``result``."""
    med = {k: round(statistics.median(v), 1) if v else 0.0 for k, v in runs.items()}
    result.runs = {k: [round(x, 1) for x in v] for k, v in runs.items()}
    best: dict[str, int] = {}
    for row in ("fsync_always", "fsync_lazy"):
        best[row] = max(CLIENT_SWEEP, key=lambda c: med[f"{row}@{c}"])
    for row, clients in best.items():
        med[row] = med[f"{row}@{clients}"]
    result.nats_bench_clients = {**best, "r1": R1_CLIENTS}
    result.nats_bench = {
        "fsync_always": med["fsync_always"],
        "fsync_lazy": med["fsync_lazy"],
        "r3": med["fsync_always"],
        "r1": med["r1"],
        "end_to_end": med["end_to_end"],
    }
    if med["fsync_lazy"]:
        result.fsync_cost_ratio = round(med["fsync_always"] / med["fsync_lazy"], 3)
    result.r1_vs_r3_ratio = round(med["fsync_always"] / med["r1"], 3) if med["r1"] else 0.0
    result.surge_msgs_per_s = med["surge"]
    if med["fsync_always"]:
        result.surge_vs_nats_bench = round(med["surge"] / med["fsync_always"], 3)
    if med["end_to_end"]:
        result.surge_vs_nats_end_to_end = round(med["surge"] / med["end_to_end"], 3)
    return result


def render(result: NatsBenchResult) -> str:
    goal = "met" if result.surge_vs_nats_bench >= GOAL else "MISSED"
    nb, runs, clients = result.nats_bench, result.runs, result.nats_bench_clients
    rows = [
        *(
            (
                f"nats bench R3 fsync {label} x{c}",
                statistics.median(runs[f"{row}@{c}"]) if runs.get(f"{row}@{c}") else 0.0,
                runs.get(f"{row}@{c}", []),
            )
            for row, label in (("fsync_always", "always"), ("fsync_lazy", "lazy"))
            for c in CLIENT_SWEEP
        ),
        (f"nats bench R1 fsync always x{clients.get('r1', R1_CLIENTS)}", nb["r1"], runs["r1"]),
        (
            f"nats bench pub+consume R3 x{R1_CLIENTS}",
            nb.get("end_to_end", 0.0),
            runs.get("end_to_end", []),
        ),
        ("surge gateway->stream->worker", result.surge_msgs_per_s, runs["surge"]),
    ]
    lines = [
        f"surge bench nats: {result.messages} msgs x {result.size} B, {result.rounds} rounds "
        f"(median), {result.where}",
        *(
            f"  {name:<33}{rate:10,.0f} msg/s  runs {all_runs}"
            if all_runs
            else f"  {name:<33}    failed  (see notes)"
            for name, rate, all_runs in rows
        ),
        f"  nats bench R3 fsync always (best of the sweep, x{clients.get('fsync_always', 0)}) "
        f"{nb['fsync_always']:,.0f} msg/s; lazy x{clients.get('fsync_lazy', 0)} "
        f"{nb['fsync_lazy']:,.0f} msg/s",
        f"  fsync_cost_ratio (always/lazy) {result.fsync_cost_ratio:.3f}",
        f"  r1_vs_r3_ratio (R3/R1)         {result.r1_vs_r3_ratio:.3f}",
        f"  surge_vs_nats_bench            {result.surge_vs_nats_bench:.3f}"
        f"  (goal >= {GOAL}: {goal})",
        f"  surge_vs_nats_end_to_end       {result.surge_vs_nats_end_to_end:.3f}"
        "  (Surge ÷ nats bench publishing and consuming at once; context)",
    ]
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)
