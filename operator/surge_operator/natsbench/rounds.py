"""The rounds of `surge bench nats`, wherever the servers run: each round measures every
row back to back (the R3 sweep on both clusters, the broker's own end to end, Surge, then
the slow R1 row), so load from elsewhere on the machine hits all rows alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from surge_operator.natsbench.natscli import run_nats_bench, run_nats_bench_end_to_end
from surge_operator.natsbench.result import (
    CLIENT_SWEEP,
    R1_CLIENTS,
    NatsBenchResult,
    empty_runs,
    summarise,
)

#: nats bench gives up on its own ack timeout when the machine is overloaded (seen with
#: R1 + fsync always): run it again, at most this many times in all, and say so
NATS_BENCH_ATTEMPTS = 3


@dataclass(frozen=True)
class Targets:
    """What one run measures: natscli's command on the durable (`sync_interval: always`)
    and the lazy (nats-server's default) servers, and one Surge end-to-end run (msg/s)."""

    durable: Sequence[str]
    lazy: Sequence[str]
    surge: Callable[[], float]


def measure(result: NatsBenchResult, targets: Targets) -> NatsBenchResult:
    runs = empty_runs()
    size, messages = result.size, result.messages

    def pub(nats: Sequence[str], *, replicas: int, clients: int) -> float:
        for attempt in range(1, NATS_BENCH_ATTEMPTS + 1):
            try:
                return run_nats_bench(
                    nats, replicas=replicas, messages=messages, size=size, clients=clients
                )
            except RuntimeError as err:
                if attempt == NATS_BENCH_ATTEMPTS:
                    raise
                last = str(err).strip().splitlines()[-1]
                result.notes.append(
                    f"nats bench R{replicas} x{clients} attempt {attempt} failed: {last}"
                )
        raise AssertionError("unreachable")

    for _ in range(result.rounds):
        for clients in CLIENT_SWEEP:
            for row, nats in (("fsync_always", targets.durable), ("fsync_lazy", targets.lazy)):
                runs[f"{row}@{clients}"].append(pub(nats, replicas=3, clients=clients))
        try:  # context only: a failed row is reported
            runs["end_to_end"].append(
                run_nats_bench_end_to_end(targets.durable, messages=messages, size=size)
            )
        except RuntimeError as err:
            result.notes.append(f"nats bench end to end failed: {str(err)[-200:]}")
        runs["surge"].append(targets.surge())
        try:  # context only (not in surge_vs_nats_bench): a failed row is reported
            runs["r1"].append(pub(targets.durable, replicas=1, clients=R1_CLIENTS))
        except RuntimeError:
            result.notes.append(f"nats bench R1 failed {NATS_BENCH_ATTEMPTS} times this round")
    return summarise(result, runs)
