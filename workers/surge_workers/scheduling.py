"""Pure pull planning: which pull requests a worker issues, given what it holds.

The worker keeps at most one open pull request per priority. Critical has its own credit
pool and always keeps a waiting request, so it is never queued behind other classes.
Normal and bulk share the main pool with strict priority: a lower class is only asked
for while every higher class is known to be drained ("idle"); a drained class is watched
by a waiting 1-message probe. The degradation level caps each class's share of the
worker's slots (its concurrent handlers): a class with share s holds at most s x ``slots``
messages (running and buffered), so it never takes more than that share of the worker's
throughput and the other slots stay free for critical; a class with share 0 is not pulled.
Small requests are avoided (below ``low_water``) unless the pool is empty, so a busy
worker asks in batches rather than one message at a time; a full ``max_batch`` is never
small (with ``low_water`` above ``max_batch`` no request was ever big enough, and a worker
with a large prefetch asked again only once it had run completely dry).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from surge_workers.contract import DEFAULT_SHEDDABLE, DegradationLevel, Priority, worker_share

#: The classes that share the main credit pool, in strict priority (a lower one is pulled
#: only once the higher is drained); every other class has a credit pool of its own.
MAIN_POOL: Final = (Priority.NORMAL, Priority.BULK)


@dataclass(frozen=True)
class ClassState:
    held: int = 0  # received and not finished (buffered + running)
    open_remaining: int | None = None  # credits of the open request; None = none open
    idle: bool = False  # the last no_wait request found this class drained


@dataclass(frozen=True)
class PullPlan:
    priority: Priority
    batch: int
    no_wait: bool  # answer now with what is there (learn "drained"); else wait up to expires
    probe: bool = False  # a waiting 1-message request watching a drained class


def plan_pulls(
    states: Mapping[Priority, ClassState],
    *,
    served: Iterable[Priority],
    level: DegradationLevel,
    capacity: int,
    low_water: int,
    max_batch: int,
    slots: int | None = None,
    sheddable: frozenset[Priority] = DEFAULT_SHEDDABLE,
) -> list[PullPlan]:
    """`capacity`: messages a worker may hold per pool (handlers + prefetch); `slots`: its
    concurrent handlers (default `capacity`), the base of a degraded class's share."""
    served = set(served)
    slots = capacity if slots is None else slots
    plans: list[PullPlan] = []
    crit = states.get(Priority.CRITICAL, ClassState())
    if Priority.CRITICAL in served and crit.open_remaining is None:
        free = capacity - crit.held
        if free >= low_water or (free > 0 and crit.held == 0):
            plans.append(PullPlan(Priority.CRITICAL, min(free, max_batch), no_wait=False))
    pool_held = sum(states.get(p, ClassState()).held for p in MAIN_POOL)
    free = capacity - pool_held
    for priority in MAIN_POOL:
        share = worker_share(level, priority, sheddable)
        if priority not in served or share <= 0:
            continue
        state = states.get(priority, ClassState())
        if state.open_remaining is not None:
            free -= state.open_remaining
        else:
            # At least one message, so a class that is served is never starved.
            class_cap = capacity if share >= 1 else min(capacity, max(1, int(slots * share)))
            room = min(free, class_cap - state.held, max_batch)
            if room > 0:
                if state.idle:
                    plans.append(PullPlan(priority, 1, no_wait=False, probe=True))
                    free -= 1
                elif room >= min(low_water, max(1, class_cap // 2), max_batch) or pool_held == 0:
                    plans.append(PullPlan(priority, room, no_wait=True))
                    free -= room
        if not state.idle:
            break  # strict priority: lower classes wait while this one has work
    return plans
