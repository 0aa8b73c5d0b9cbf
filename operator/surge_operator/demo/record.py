"""A demo run written down for re-judging: every tick's figures and published forecast,
every judged acknowledgement (`surge bench replies --record DIR`).

The waits messages really had do not depend on what they were promised, so a recorded
run can be re-judged with another model on the very same waits
(:mod:`surge_operator.demo.replay`): a model change is compared with the current one on
runs it was not tuned on, without the noise of a new run on a shared machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from surge_operator.demo.replay import annotate
from surge_operator.demo.run import DemoResult


def run_record(seed: int, result: DemoResult) -> dict[str, Any]:
    """The run as plain JSON values; tick times are unix seconds like the messages'."""
    offset = result.clock_offset
    ticks = []
    for tick in result.ticks:
        snap = tick.snapshot
        decision = tick.decision
        ticks.append(
            {
                "at": snap.at + offset,
                "ready": tick.ready,
                "ready_replicas": snap.ready_replicas,
                "current_replicas": snap.current_replicas,
                "completion_rate": snap.completion_rate,
                "waiting": snap.waiting,
                "priorities": {
                    p.value: {"backlog": m.backlog, "arrival_rate": m.arrival_rate}
                    for p, m in snap.priorities.items()
                },
                "decision": {
                    "replicas": decision.replicas,
                    "unbounded_replicas": decision.unbounded_replicas,
                    "service_rate": decision.service_rate,
                    "startup_s": decision.startup_s,
                    "level": int(decision.degradation_level),
                },
                "level": int(tick.plan.level),
                "forecast": {p.value: asdict(c) for p, c in tick.plan.expected_wait.items()},
            }
        )
    samples = [asdict(s) for s in result.honesty.samples] if result.honesty else []
    # Each promise rebuilt by this very model: a later model is judged by its difference
    # from that, added to the promise really made (:attr:`replay.Replayed.repromised`).
    return annotate(
        {"seed": seed, "summary": result.summary.to_json(), "ticks": ticks, "samples": samples}
    )


def write_record(directory: Path, seed: int, result: DemoResult) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"seed-{seed}.json").write_text(json.dumps(run_record(seed, result)) + "\n")
