"""Re-judge recorded demo runs with the repository's model, on the very same waits.

A recorded run (:mod:`surge_operator.demo.record`) holds every tick's snapshot and
decision and every judged acknowledgement (position, level, enqueue time, the wait it
promised, the wait it had). The forecast is rebuilt tick by tick with the engine's own
:func:`~surge_operator.forecast.forecast_of` (and its drain memory), and each
acknowledgement is promised again from the last forecast published before its message
was enqueued, as the composer would have (its share from the level it saw; the handling
time a worker measured is not recorded: the run's latest promise to a message first in
line, which was that handling time alone, stands for it). Printed beside the promise the run
really made, so a model change is judged on runs it was not tuned on without the noise
of a new run. Pure but for reading the files.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from surge_operator.demo.honesty import Sample, summarise
from surge_operator.demo.run import DemoOptions
from surge_operator.drain import DrainMemory, remember
from surge_operator.forecast import forecast_of
from surge_operator.policy.config import PolicyConfig
from surge_operator.policy.types import (
    Decision,
    DegradationLevel,
    PriorityMetrics,
    Reason,
    Snapshot,
    frozen_mapping,
)
from surge_workers import contract
from surge_workers.eta import ClassForecast, expected_wait


@dataclass(frozen=True)
class Replayed:
    """One acknowledgement: the promise the run made and the one the model makes now."""

    sample: Sample
    #: The model's promise now, from the rebuilt forecast (None: it promises nothing).
    rebuilt: float | None
    #: Seconds since the first tick (the run's clock) when the message was enqueued.
    at_s: float
    #: The run's own model on the same rebuilt forecast, written when the run was
    #: recorded (None: not recorded, or it promised nothing).
    rebuilt_then: float | None = None

    @property
    def repromised(self) -> float | None:
        """The promise the model makes now. The rebuilt forecast is not the one the
        composer read (tick timing, a worker's own handling time), so when the record
        carries the run's model rebuilt the same way, only the difference between the two
        models is added to the promise the run really made: equal models re-judge to the
        run's own figures."""
        if self.rebuilt is None or self.rebuilt_then is None:
            return self.rebuilt
        return max(0.0, self.sample.predicted + self.rebuilt - self.rebuilt_then)


def _snapshot(tick: Mapping[str, Any]) -> Snapshot:
    return Snapshot(
        at=float(tick["at"]),
        observed_at=float(tick["at"]),
        priorities=frozen_mapping(
            {
                contract.Priority(name): PriorityMetrics(
                    backlog=m["backlog"], arrival_rate=m["arrival_rate"]
                )
                for name, m in tick["priorities"].items()
            }
        ),
        current_replicas=int(tick["current_replicas"]),
        ready_replicas=int(tick["ready_replicas"]),
        completion_rate=tick.get("completion_rate"),
        waiting=tick.get("waiting"),
    )


def _decision(tick: Mapping[str, Any]) -> Decision:
    d = tick["decision"]
    return Decision(
        at=float(tick["at"]),
        replicas=int(d["replicas"]),
        degradation_level=DegradationLevel(int(d["level"])),
        reason=Reason.STEADY,
        message="replayed",
        unbounded_replicas=float(d["unbounded_replicas"]),
        service_rate=d["service_rate"],
        startup_s=d["startup_s"],
    )


def forecasts(
    ticks: list[Mapping[str, Any]], config: PolicyConfig
) -> list[Mapping[contract.Priority, ClassForecast]]:
    """The forecast each tick would publish with the model as it is now."""
    out: list[Mapping[contract.Priority, ClassForecast]] = []
    drain: DrainMemory | None = None
    for tick in ticks:
        snapshot = _snapshot(tick)
        if not snapshot.priorities:
            out.append({})
            continue
        drain = remember(drain, snapshot)
        out.append(
            forecast_of(snapshot, _decision(tick), config, level=int(tick["level"]), drain=drain)
        )
    return out


def replay_run(record: Mapping[str, Any], options: DemoOptions | None = None) -> list[Replayed]:
    options = options or DemoOptions()
    config = options.policy()
    sheddable = frozenset(contract.Priority(p.value) for p in config.degradation.sheddable)
    ticks = list(record["ticks"])
    times = [float(t["at"]) for t in ticks]
    published = forecasts(ticks, config)
    start = times[0] if times else 0.0
    out = []
    handling = options.work_ms / 1000.0
    for raw in sorted(record["samples"], key=lambda s: s.get("enqueued_at") or 0.0):
        fields = dict(raw)
        then = fields.pop("rebuilt", None)
        sample = Sample(**fields)
        enqueued = sample.enqueued_at
        if sample.position == 1:
            # The run promised the first in line its worker's handling time alone: the
            # nearest figure to the one a worker measured then (it is not recorded).
            handling = sample.predicted
        promise: float | None = None
        index = bisect.bisect_right(times, enqueued) - 1 if enqueued is not None else -1
        priority = contract.Priority(sample.priority)
        if index >= 0 and sample.position is not None and priority in published[index]:
            cls = published[index][priority]
            share = contract.worker_share(
                contract.DegradationLevel(sample.level), priority, sheddable
            )
            promise = expected_wait(
                sample.position,
                replace(cls, share=share),
                handling,
                concurrency=options.concurrency,
            )
        out.append(
            Replayed(
                sample,
                promise,
                (enqueued or start) - start,
                rebuilt_then=float(then) if isinstance(then, int | float) else None,
            )
        )
    return out


def annotate(record: dict[str, Any], options: DemoOptions | None = None) -> dict[str, Any]:
    """The record with each sample's promise rebuilt by the model as it is now (the run's
    own model, when called as the run is recorded), for :attr:`Replayed.repromised`."""
    rebuilt = {item.sample.msg_id: item.rebuilt for item in replay_run(record, options)}
    samples = [{**raw, "rebuilt": rebuilt.get(raw["msg_id"])} for raw in record["samples"]]
    return {**record, "samples": samples}


def load(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in paths]


def rejudged(items: list[Replayed]) -> list[Sample]:
    """The samples as the model now promises them (no promise: left out, as in a run)."""
    return [replace(r.sample, predicted=r.repromised) for r in items if r.repromised is not None]


def figures(samples: list[Sample]) -> dict[str, dict[str, float | int | None]]:
    return summarise(samples)


def signed_median(samples: list[Sample]) -> float | None:
    """Median of (predicted - actual) / actual: below 0 under-promises."""
    values = [(s.predicted - s.actual) / s.actual for s in samples]
    return round(statistics.median(values), 3) if values else None


def phase(at_s: float, options: DemoOptions, onset_s: float = 16.0) -> str:
    """Where in the demo's surge a message arrived: before, onset (its first
    ``onset_s``), plateau, or drain (after the surge's end)."""
    spec = options.load()
    start = spec.surge_start * spec.duration
    end = start + spec.surge_length * spec.duration
    if at_s < start:
        return "before"
    if at_s < start + onset_s:
        return "onset"
    return "plateau" if at_s < end else "drain"


def breakdown(
    items: list[Replayed], options: DemoOptions, *, repromised: bool
) -> dict[str, dict[str, float | int | None]]:
    """Per phase and priority: n, median |error|, median signed error."""
    groups: dict[str, list[Sample]] = {}
    for item in items:
        promise = item.repromised if repromised else item.sample.predicted
        if promise is None:
            continue
        sample = replace(item.sample, predicted=promise)
        where = phase(item.at_s, options)
        for key in (where, f"{where}/{sample.priority}"):
            groups.setdefault(key, []).append(sample)
    return {
        key: {
            "n": len(samples),
            "median": summarise(samples)["all"]["median"],
            "signed": signed_median(samples),
        }
        for key, samples in sorted(groups.items())
    }


def _cell(table: Mapping[str, Mapping[str, float | int | None]], name: str) -> str:
    row = table.get(name, {})
    median, p90 = row.get("median"), row.get("p90")
    return "-" if median is None else f"{median:.3f} / {p90:.3f}"


def print_replay(records: list[dict[str, Any]], console: Any, *, phases: bool = False) -> None:
    """Per seed: the run's promises against the model's now (median / p90 per class,
    promises not made), then the median and worst over seeds, every miss printed."""
    from rich.table import Table

    from surge_operator.demo.bench import CLASSES
    from surge_operator.demo.honesty import GOAL_MEDIAN

    options = DemoOptions()
    table = Table(title="re-judged on the recorded waits: run's promise -> model now")
    for column in ("seed", "max level", *CLASSES, "no promise", "signed"):
        table.add_column(column)
    medians: dict[str, list[float]] = {"run": [], "now": []}
    misses = []
    for record in sorted(records, key=lambda r: int(r["seed"])):
        items = replay_run(record, options)
        was = [i.sample for i in items]
        now = rejudged(items)
        before, after = figures(was), figures(now)
        seed = int(record["seed"])
        for key, fig in (("run", before), ("now", after)):
            value = fig.get("all", {}).get("median")
            if value is not None:
                medians[key].append(float(value))
        value = after.get("all", {}).get("median")
        if value is None or value > GOAL_MEDIAN:
            misses.append(f"MISS seed {seed}: eta_error_median {value} > {GOAL_MEDIAN}")
        table.add_row(
            str(seed),
            str(record["summary"].get("max_degradation_level")),
            *(f"{_cell(before, c)} -> {_cell(after, c)}" for c in CLASSES),
            f"{len(items) - len(now)}",
            f"{signed_median(was)} -> {signed_median(now)}",
        )
        if phases:
            for key, row in breakdown(items, options, repromised=True).items():
                console.print(f"  seed {seed} {key}: {row}")
    console.print(table)
    for key, values in medians.items():
        if values:
            console.print(
                f"{key}: median error over {len(values)} seeds, median / worst: "
                f"{statistics.median(values):.3f} / {max(values):.3f}"
            )
    console.print(f"goal met in {len(medians['now']) - len(misses)} of {len(records)} seeds")
    for line in misses:
        console.print(line)
