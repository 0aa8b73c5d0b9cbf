"""The one list of chaos scenarios. Add a scenario by appending a `Scenario` to `SCENARIOS`:
`run(short)` runs it on real components and returns its `Result` (short = the CI form).

The control-plane scenarios start a Kubernetes control plane of their own (minutes on two
cores, and built binaries): `surge chaos --short` leaves them out unless named with
`--only`; CI runs their short form through tests/e2e/test_operator_control_plane_faults.py
on the e2e session's control plane instead. Named (or in the full run) without the
binaries, they stop the run before anything starts, saying how to build them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from surge_operator.chaos import (
    control_plane_faults,
    disk_faults,
    nats_faults,
    operator_kill,
    partition,
    powerloss,
    process_faults,
    scenarios,
    soak,
)
from surge_operator.chaos.result import Result


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[bool], Awaitable[Result]]
    #: Part of `surge chaos --short` without --only (see the module's docstring).
    in_short_suite: bool = True
    #: Why it cannot run on this machine (None: it can).
    unavailable: Callable[[], str | None] = lambda: None


def _scaled(
    run: Callable[[int], Awaitable[Result]], count: int
) -> Callable[[bool], Awaitable[Result]]:
    async def scaled(short: bool) -> Result:
        return await run(count if short else count * 10)

    return scaled


def _control_plane(name: str, run: Callable[[bool], Awaitable[Result]]) -> Scenario:
    """Each starts a local control plane of its own: named with --only or in the full
    suite, never in --short, and refused up front when the kube binaries are missing."""
    return Scenario(
        name, run, in_short_suite=False, unavailable=control_plane_faults.control_plane_missing
    )


SCENARIOS: list[Scenario] = [
    Scenario("primary-kill-9", _scaled(scenarios.primary_kill, 600)),
    Scenario("split-brain-heal", _scaled(scenarios.split_brain, 600)),
    Scenario(
        "operator-kill-9-mid-failover", _scaled(operator_kill.operator_kill_mid_failover, 600)
    ),
    Scenario("primary-loss-during-surge", _scaled(scenarios.primary_loss_during_surge, 900)),
    Scenario("worker-surge-kill-stop", _scaled(process_faults.worker_surge, 1200)),
    Scenario("gateway-kill-9", _scaled(process_faults.gateway_kill, 1200)),
    Scenario("gateway-sigstop", _scaled(process_faults.gateway_freeze, 1200)),
    Scenario("poison-1pct", _scaled(process_faults.poison, 1000)),
    Scenario("nats-r3-server-kill-9", _scaled(nats_faults.r3_server_kill, 900)),
    Scenario("nats-r3-server-sigstop", _scaled(nats_faults.r3_server_freeze, 900)),
    Scenario("disk-full", _scaled(disk_faults.disk_full, 900)),
    Scenario("partition-heal", _scaled(partition.partition_heal, 900)),
    Scenario("soak", _scaled(soak.soak, 2400)),
    Scenario("power-loss-fsync-always", _scaled(powerloss.fsync_always, 600)),
    Scenario("power-loss-fsync-lazy", _scaled(powerloss.fsync_lazy, 600)),
    Scenario("power-loss-r3-fsync-always", _scaled(powerloss.r3_fsync_always, 600)),
    Scenario("power-loss-r3-fsync-lazy", _scaled(powerloss.r3_fsync_lazy, 600)),
    _control_plane("operator-kill-9-mid-scale", control_plane_faults.operator_kill_mid_scale),
    _control_plane("operator-sigstop-leader", control_plane_faults.operator_sigstop_leader),
    _control_plane("apiserver-restart", control_plane_faults.apiserver_restart),
    _control_plane("apiserver-sigstop", control_plane_faults.apiserver_sigstop),
]


class UnknownScenarioError(ValueError):
    """`--only` named a scenario the suite does not have."""


class ScenarioUnavailableError(RuntimeError):
    """A selected scenario cannot run on this machine (the message says what to install)."""


def select(only: Sequence[str] = (), *, short: bool = False) -> list[Scenario]:
    if not only:
        return [s for s in SCENARIOS if s.in_short_suite or not short]
    known = {s.name: s for s in SCENARIOS}
    missing = [name for name in only if name not in known]
    if missing:
        raise UnknownScenarioError(
            f"unknown scenario(s) {', '.join(missing)}; known: {', '.join(known)}"
        )
    return [known[name] for name in only]


def unavailable(scenarios: Sequence[Scenario]) -> list[str]:
    """Why selected scenarios cannot run, one line each (empty: all can)."""
    return [f"{s.name}: {why}" for s in scenarios if (why := s.unavailable()) is not None]


async def run_all(*, short: bool, only: Sequence[str] = ()) -> list[Result]:
    selected = select(only, short=short)
    # Before anything runs: a missing prerequisite should not cost the other scenarios.
    if missing := unavailable(selected):
        raise ScenarioUnavailableError("\n".join(missing))
    # One after another: each scenario owns the machine's (two) cores while it runs.
    return [await scenario.run(short) for scenario in selected]
