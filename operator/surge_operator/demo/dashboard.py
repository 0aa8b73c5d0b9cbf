"""The live terminal view of `surge demo` (rich): one render function, no state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from surge_operator.engine import Tick
from surge_operator.policy import PRIORITY_ORDER

_LEVELS = ("normal", "throttle bulk", "shed bulk", "critical first")


def _fmt(value: float | None, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def render(
    *,
    elapsed: float,
    duration: float,
    phase: str,
    offered_rate: float,
    sent: int,
    completions: int,
    ticks: Sequence[Tick],
    p95: Mapping[str, float | None],
) -> Group:
    header = Text.assemble(
        ("surge demo ", "bold"),
        f"{elapsed:5.1f}/{duration:.0f}s  phase: ",
        (phase, "bold magenta" if phase == "surge" else "green"),
        f"  offered {offered_rate:.0f} msg/s  sent {sent}  processed {completions}",
    )
    table = Table(expand=False, box=None, pad_edge=False)
    for column in ("", *[p.value for p in PRIORITY_ORDER], "total"):
        table.add_column(column, justify="right")
    last = ticks[-1] if ticks else None
    if last is not None:
        prio = last.snapshot.priorities
        rates = [prio[p].arrival_rate if p in prio else None for p in PRIORITY_ORDER]
        backlog = [prio[p].backlog if p in prio else None for p in PRIORITY_ORDER]
        table.add_row(
            "arrivals/s",
            *[_fmt(r, "") for r in rates],
            _fmt(sum(r or 0 for r in rates), ""),
        )
        table.add_row(
            "backlog",
            *["-" if b is None else str(b) for b in backlog],
            str(sum(b or 0 for b in backlog)),
        )
    table.add_row("p95 wait (10s)", *[_fmt(p95.get(p.value)) for p in PRIORITY_ORDER], "")
    replicas = Text("replicas: -")
    decisions = Table(box=None, show_header=False)
    if last is not None:
        d = last.decision
        replicas = Text.assemble(
            "replicas desired ",
            (str(d.replicas), "bold cyan"),
            f"  running {last.snapshot.current_replicas}  ready {last.ready}   degradation ",
            (
                f"{int(d.degradation_level)} {_LEVELS[int(d.degradation_level)]}",
                "bold red" if d.degradation_level else "green",
            ),
            f"   service rate {_fmt(d.service_rate, ' msg/s/worker')}",
        )
        changes = [t for t in ticks if t.decision.reason.value not in ("Steady", "Stabilizing")]
        for t in changes[-6:]:
            decisions.add_row(f"{t.decision.at - ticks[0].decision.at:6.1f}s", t.decision.message)
    return Group(
        Panel(Group(header, table, replicas), title="Surge", border_style="cyan"),
        Panel(decisions, title="decisions", border_style="dim"),
    )
