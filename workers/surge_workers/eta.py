"""Expected wait per priority: the forecast the operator publishes each tick (pure).

The control loop knows, every tick, how much work is queued in each class, how fast the
pool serves (per ready replica, measured from ack-floor progress), how many replicas it
has asked for and how long they take to start. It publishes that per priority under the
key ``eta`` of the degradation bucket, beside the level. The composer turns it into the
wait of one message at a known place in the order of service:

    wait(position) = time for the pool to serve the messages ahead of it that it does
                     not run beside: (position - 1) - (lanes - 1), none if fewer
                      + the message's own service time

where ``lanes`` is ready replicas x the workers' concurrency (the worker composing the
reply knows its own): a newcomer behind fewer messages than that starts at once in a free
handler (a single-server queue would charge it for every message handled beside it, the
overstatement that dominates at low load). Less the handlers that classes it cannot
overtake hold (``held_share`` of them): critical has a pull credit of its own, so workers
pull the main pool's classes (:data:`~surge_workers.scheduling.MAIN_POOL`) whatever
critical has queued, and a handler finishes the message it runs; their unfinished
messages (each class at most its share of the slots at the level) keep that many handlers
from a critical newcomer, which starts in the next one to come free. Within the main pool
a lower class is pulled only once the higher one is drained, so it holds no handler a
higher newcomer waits on. Its own service time is the worker's recent
handling time, or, while the worker has measured none yet, the pool's: concurrency over
the per-replica rate (``capacity / ready``), never 0 s.

The pool serves a class at ``capacity`` (msg/s, ready replicas) and at ``capacity_later``
once the replicas being started are ready, ``later_in_s`` from now. The autoscaler asks for
them ``step_replicas`` per tick (``step_s`` apart), so they come up in steps: each step's
replicas serve from their own start-up on, the first step ``later_in_s`` minus the later
steps' ticks from now (0: all at ``later_in_s``, as older publishers meant). Minus
what arrives meanwhile in the classes served before it (``higher_rate``), and at most
``share`` of the pool (the degradation level's cap on the class), but never slower than
the class's queue was measured to move (``drain_rate``). A class the level does not serve
at all (share 0) has no forecast: nobody can promise a time.

The forecast is stamped with ``at`` (unix seconds); a reader treats one older than
``max_age_s`` as absent rather than promising a wait from a stale picture.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

from surge_workers.contract import PRIORITIES, Priority
from surge_workers.scheduling import MAIN_POOL

ETA_KEY: Final = "eta"
#: A forecast this old (seconds) is not trusted: ticks are ~1 s apart.
DEFAULT_MAX_AGE_S: Final = 10.0


@dataclass(frozen=True)
class ClassForecast:
    """The pool as one priority sees it (see the module docstring)."""

    #: Messages of this and every earlier-served class not finished yet.
    ahead: int
    capacity: float
    capacity_later: float = 0.0
    later_in_s: float = 0.0
    higher_rate: float = 0.0
    share: float = 1.0
    #: The model's wait for a new arrival of this class (for status and dashboards).
    wait_s: float | None = None
    #: Ready replicas behind ``capacity`` (0: not known).
    ready: int = 0
    #: How fast this class's queue measurably advanced lately (msg/s): the promise is
    #: never slower, whatever the model's capacity and share say (0: not measured).
    drain_rate: float = 0.0
    #: Replicas asked for per tick and the seconds between ticks: the replicas being
    #: started are ready in steps, not all at ``later_in_s`` (0: all at once).
    step_replicas: int = 0
    step_s: float = 0.0
    #: Share of the pool's handlers (0-1) that classes this one cannot overtake hold: a
    #: newcomer runs beside only the others (0: any of them may be free to it).
    held_share: float = 0.0


@dataclass(frozen=True)
class Forecast:
    at: float
    level: int = 0
    classes: Mapping[Priority, ClassForecast] = field(default_factory=dict)

    def fresh(self, now: float, max_age_s: float = DEFAULT_MAX_AGE_S) -> bool:
        return now - self.at <= max_age_s


def _effective(capacity: float, forecast: ClassForecast) -> float:
    """Service rate left for this class: its share of the pool, minus higher classes."""
    return max(0.0, min(capacity * forecast.share, capacity - forecast.higher_rate))


def expected_wait(
    position: int,
    forecast: ClassForecast,
    service_s: float | None = None,
    *,
    concurrency: int = 0,
) -> float | None:
    """Seconds until a message at ``position`` (1 = next) is handled; None if never.
    ``service_s``: the handling time measured by the worker (None: the pool's);
    ``concurrency``: handlers per worker (0: not known, nothing runs beside it)."""
    if forecast.share <= 0:
        return None
    if service_s is None:
        service_s = _pool_service_s(forecast, concurrency)
    work = max(0.0, position - max(1.0, _free_handlers(forecast, concurrency)))
    if work == 0:
        return max(0.0, service_s)
    # Serve the work ahead through the schedule of rates, segment by segment.
    left = float(work)
    segments = _schedule(forecast)
    for index, (start, rate) in enumerate(segments):
        end = segments[index + 1][0] if index + 1 < len(segments) else math.inf
        if rate <= 0:
            continue
        if left <= rate * (end - start):
            return start + left / rate + service_s
        left -= rate * (end - start)
    return None


def _free_handlers(forecast: ClassForecast, concurrency: int) -> float:
    """Handlers a newcomer of this class may run in beside the messages ahead of it."""
    held = min(1.0, max(0.0, forecast.held_share))
    return forecast.ready * concurrency * (1.0 - held)


def held_share(
    priority: Priority,
    backlog: Mapping[Priority, int],
    shares: Mapping[Priority, float],
    slots: int,
) -> float:
    """Share of ``slots`` handlers that classes ``priority`` cannot overtake hold: for a
    class outside the main pool, the main pool's unfinished messages, each class at most
    its share of the slots (the level's cap on what a worker pulls of it); 0 in the main
    pool, or with the slots not known."""
    if slots <= 0 or priority in MAIN_POOL:
        return 0.0
    held = sum(
        min(float(max(0, backlog.get(other, 0))), max(0.0, shares.get(other, 1.0)) * slots)
        for other in MAIN_POOL
    )
    return min(1.0, held / slots)


def _schedule(forecast: ClassForecast) -> list[tuple[float, float]]:
    """(from second, msg/s) for this class: the rate now, then one more step of started
    replicas each ``step_s``, the last at ``later_in_s``."""
    model_rate = _effective(forecast.capacity, forecast)
    # What the queue measurably did outranks a stale model; replicas still starting add
    # to it as they would to the model's rate.
    now_rate = max(model_rate, forecast.drain_rate)
    boost = now_rate - model_rate
    window = max(0.0, forecast.later_in_s)
    segments = [(0.0, now_rate)]
    if forecast.capacity_later <= forecast.capacity:
        return segments
    if forecast.step_replicas <= 0 or forecast.ready <= 0 or forecast.capacity <= 0:
        return [*segments, (window, _effective(forecast.capacity_later, forecast) + boost)]
    per_replica = forecast.capacity / forecast.ready
    heading = max(forecast.ready, round(forecast.capacity_later / per_replica))
    steps = math.ceil((heading - forecast.ready) / forecast.step_replicas)
    first = max(0.0, window - (steps - 1) * forecast.step_s)
    for step in range(steps):
        replicas = min(heading, forecast.ready + forecast.step_replicas * (step + 1))
        rate = _effective(per_replica * replicas, forecast) + boost
        segments.append((first + step * forecast.step_s, rate))
    return segments


def _pool_service_s(forecast: ClassForecast, concurrency: int) -> float:
    """Seconds a message spends with a worker at the pool's rate (Little's law)."""
    if forecast.ready <= 0 or forecast.capacity <= 0 or concurrency <= 0:
        return 0.0
    return concurrency * forecast.ready / forecast.capacity


def forecast_classes(
    *,
    backlog: Mapping[Priority, int],
    arrival_rate: Mapping[Priority, float],
    served_order: tuple[Priority, ...] = PRIORITIES,
    capacity: float,
    capacity_later: float,
    later_in_s: float,
    shares: Mapping[Priority, float],
    ready: int = 0,
    concurrency: int = 0,
    drain_rates: Mapping[Priority, float] | None = None,
    step_replicas: int = 0,
    step_s: float = 0.0,
) -> dict[Priority, ClassForecast]:
    """One forecast per priority from the tick's figures (pure); ``concurrency`` for
    ``wait_s``, the figure status shows, and ``held_share`` (a share: workers apply it to
    their own concurrency)."""
    classes: dict[Priority, ClassForecast] = {}
    ahead = 0
    higher_rate = 0.0
    for priority in served_order:
        ahead += max(0, backlog.get(priority, 0))
        share = shares.get(priority, 1.0)
        partial = ClassForecast(
            ahead=ahead,
            capacity=max(0.0, capacity),
            capacity_later=max(0.0, capacity_later),
            later_in_s=max(0.0, later_in_s),
            higher_rate=higher_rate,
            share=share,
            ready=max(0, ready),
            drain_rate=round(max(0.0, (drain_rates or {}).get(priority, 0.0)), 3),
            step_replicas=max(0, step_replicas),
            step_s=max(0.0, step_s),
            held_share=round(held_share(priority, backlog, shares, max(0, ready) * concurrency), 3),
        )
        wait = expected_wait(ahead + 1, partial, concurrency=concurrency)
        classes[priority] = replace(partial, wait_s=_round(wait))
        higher_rate += max(0.0, arrival_rate.get(priority, 0.0))
    return classes


def _round(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else round(value, 3)


def encode_forecast(forecast: Forecast) -> bytes:
    return json.dumps(
        {
            "at": forecast.at,
            "level": forecast.level,
            "classes": {p.value: asdict(c) for p, c in forecast.classes.items()},
        },
        sort_keys=True,
    ).encode()


def _number(doc: Mapping[str, Any], name: str, default: float) -> float:
    value = doc.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return default
    return float(value)


def decode_forecast(raw: bytes | None) -> Forecast | None:
    """None for anything that is not a forecast document (never an exception)."""
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), dict):
        return None
    classes: dict[Priority, ClassForecast] = {}
    known = {p.value: p for p in PRIORITIES}
    for name, item in doc["classes"].items():
        if name not in known or not isinstance(item, dict):
            continue
        wait = item.get("wait_s")
        classes[known[name]] = ClassForecast(
            ahead=int(_number(item, "ahead", 0)),
            capacity=_number(item, "capacity", 0.0),
            capacity_later=_number(item, "capacity_later", 0.0),
            later_in_s=_number(item, "later_in_s", 0.0),
            higher_rate=_number(item, "higher_rate", 0.0),
            share=_number(item, "share", 1.0),
            wait_s=float(wait) if isinstance(wait, int | float) else None,
            ready=int(_number(item, "ready", 0)),
            drain_rate=max(0.0, _number(item, "drain_rate", 0.0)),
            step_replicas=max(0, int(_number(item, "step_replicas", 0))),
            step_s=max(0.0, _number(item, "step_s", 0.0)),
            held_share=min(1.0, max(0.0, _number(item, "held_share", 0.0))),
        )
    return Forecast(
        at=_number(doc, "at", 0.0), level=int(_number(doc, "level", 0)), classes=classes
    )
