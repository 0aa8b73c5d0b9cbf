"""Traffic: load shapes as pure functions of time, bundled profiles, and trace CSVs.

A profile gives the *expected* arrival rate per priority at second t; the engine draws
the actual per-second counts from it with a seeded RNG, so every policy in one run sees
exactly the same arrivals. A trace gives the counts themselves.

Real request logs are burstier than Poisson: rates wander over seconds to minutes and
bursts come in clumps. Drawn profiles therefore multiply the expected rate by a
mean-one, log-normal factor that follows an AR(1) process (correlated over
`BURST_CORRELATION_S`), then draw Poisson counts from that: a doubly stochastic
(over-dispersed) process whose per-second variance is several times its mean.

Each bundled profile states when its surge starts (`onset_s`), so reaction is timed from
a known moment, never from something a policy did.

Trace CSV: header `t,priority,count`; t = whole seconds from the start, count = messages
of that priority arriving in that second. Missing seconds mean no arrivals.

Bundled trace `support-incident` (profiles/support-incident.csv): 16 minutes of a support
queue with burstier-than-Poisson seconds (gamma-mixed), a slow swell, an incident that
multiplies critical x8 and normal x3 within 10 s for three minutes, and a bulk export
later on; synthetic, generated once with a fixed seed and committed as data.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from surge_operator.api import Priority
from surge_operator.policy.types import PRIORITY_ORDER

Rates = Mapping[Priority, float]
Counts = Mapping[Priority, int]
RateFn = Callable[[float], Rates]


class TraceError(ValueError):
    """A trace CSV that cannot be read: says which line and why."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A named load shape: expected rates per priority over `duration_s` seconds."""

    name: str
    description: str
    duration_s: int
    rate: RateFn
    #: When the surge starts, by construction (reaction is timed from here).
    onset_s: float = 60.0
    #: Largest worker pool the scenario allows (the spec's maxReplicas).
    max_replicas: int = 60


@dataclass(frozen=True, slots=True)
class Arrivals:
    """Per-second arrival counts per priority: what every policy in a run is fed."""

    name: str
    counts: tuple[Counts, ...]
    max_replicas: int = 60
    #: The surge's start when known by construction (bundled profiles); traces without
    #: one fall back to `onset_s()`, which detects it from the counts.
    known_onset_s: float | None = None

    def surge_onset(self) -> float:
        return self.known_onset_s if self.known_onset_s is not None else self.onset_s()

    @property
    def duration_s(self) -> int:
        return len(self.counts)

    def total(self, second: int) -> int:
        if not 0 <= second < len(self.counts):
            return 0
        return sum(self.counts[second].values())

    def onset_s(self, factor: float = 1.25, baseline_s: int = 30, smooth_s: int = 5) -> float:
        """When the surge starts (policy independent): the first second whose count, and
        the mean of the `smooth_s` seconds from it, exceed `factor` x the mean of the first
        `baseline_s` seconds (and three Poisson deviations, so noise is not a surge)."""
        n = len(self.counts)
        if n == 0:
            return 0.0
        base_n = min(baseline_s, n)
        baseline = sum(self.total(s) for s in range(base_n)) / base_n
        threshold = max(factor * baseline, baseline + 3 * math.sqrt(max(baseline, 1.0)))
        for second in range(base_n, n):
            if self.total(second) <= threshold:
                continue
            ahead = [self.total(s) for s in range(second, min(n, second + smooth_s))]
            if sum(ahead) / len(ahead) > threshold:
                return float(second)
        return float(base_n)


def split(total: float, critical: float, normal: float) -> dict[Priority, float]:
    """Spread a total rate over the priorities (bulk gets the rest)."""
    return {
        Priority.CRITICAL: total * critical,
        Priority.NORMAL: total * normal,
        Priority.BULK: total * max(0.0, 1 - critical - normal),
    }


def _ramp(t: float, start: float, length: float, low: float, high: float) -> float:
    """low before start, high after start + length, linear in between."""
    if t <= start:
        return low
    if t >= start + length:
        return high
    return low + (high - low) * (t - start) / length


# --------------------------------------------------------------------------- bundled shapes


def flash_surge(t: float) -> Rates:
    """A viral moment: 10x in 30 s at t=60, four minutes at the peak, a minute to calm."""
    base, peak = 150.0, 1500.0
    rate = _ramp(t, 60, 30, base, peak) if t < 330 else _ramp(t, 330, 60, peak, base)
    return split(rate, 0.2, 0.6)


def diurnal_day(t: float) -> Rates:
    """A support day compressed 60x (one minute per hour): quiet night, morning rise,
    lunch dip, afternoon peak, evening decline."""
    hour = (t / 60.0) % 24
    night, peak = 60.0, 900.0
    morning = math.exp(-(((hour - 10.5) / 2.2) ** 2))
    afternoon = 1.1 * math.exp(-(((hour - 15.0) / 2.5) ** 2))
    lunch = 0.35 * math.exp(-(((hour - 12.75) / 0.6) ** 2))
    shape = max(0.0, max(morning, afternoon) - lunch)
    return split(night + (peak - night) * min(1.0, shape), 0.15, 0.65)


def outage_release(t: float) -> Rates:
    """An upstream outage holds messages back for 2 min; the release arrives as 3x for
    2 min on top of the normal rate."""
    base = 300.0
    if 120 <= t < 240:
        rate = 0.0
    elif 240 <= t < 360:
        rate = base * 4
    else:
        rate = base
    return split(rate, 0.2, 0.6)


def slow_ramp(t: float) -> Rates:
    """A product launch: 12x over ten minutes, a plateau, then back."""
    rate = _ramp(t, 60, 600, 100.0, 1200.0) if t < 780 else _ramp(t, 780, 120, 1200.0, 100.0)
    return split(rate, 0.2, 0.6)


def bulk_flood_critical_spike(t: float) -> Rates:
    """A marketing blast (bulk x60) while an incident spikes critical traffic x8: more
    than the largest pool can serve, so bulk must give way."""
    critical = 400.0 if 90 <= t < 240 else 50.0
    normal = 200.0
    bulk = 3000.0 if 60 <= t < 300 else 50.0
    return {Priority.CRITICAL: critical, Priority.NORMAL: normal, Priority.BULK: bulk}


# Every profile runs five minutes past its last change: the aftermath (how long a policy
# keeps capacity it no longer needs) is part of what is measured.
PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        p.name: p
        for p in (
            Profile("flash-surge", "10x in 30 s, 4 min at peak", 690, flash_surge, 60.0),
            # The morning rise: the shape leaves the night floor around 06:00 (360 s).
            Profile("diurnal-day", "one day, compressed 60x", 1440, diurnal_day, 360.0),
            Profile("outage-release", "2 min outage, then the backlog", 660, outage_release, 240.0),
            Profile("slow-ramp", "12x over 10 min", 1200, slow_ramp, 60.0),
            Profile(
                "bulk-flood-critical-spike",
                "bulk x60 and critical x8, beyond max",
                600,
                bulk_flood_critical_spike,
                60.0,
                max_replicas=40,
            ),
        )
    }
)


def bundled_trace_names() -> list[str]:
    """Trace CSVs shipped with the package (profiles/*.csv), by stem."""
    root = resources.files("surge_operator") / "profiles"
    if not root.is_dir():
        return []
    return sorted(Path(p.name).stem for p in root.iterdir() if p.name.endswith(".csv"))


def all_profile_names() -> list[str]:
    return [*PROFILES, *bundled_trace_names()]


# --------------------------------------------------------------------------- arrivals


#: Spread of the log-rate factor (0.35: the rate's one-sigma band is about -30 %/+42 %).
BURST_SIGMA = 0.35
#: Correlation time of the burst factor: bursts last seconds to tens of seconds.
BURST_CORRELATION_S = 8.0


def burst_factors(rng: random.Random, seconds: int, priorities: int) -> list[list[float]]:
    """Mean-one log-normal AR(1) multipliers, one series per priority (they share half
    of their variation: a busy moment is busy for every class)."""
    rho = math.exp(-1.0 / BURST_CORRELATION_S)
    innovation = math.sqrt(1 - rho * rho)
    shift = -0.5 * BURST_SIGMA * BURST_SIGMA
    common = rng.gauss(0.0, 1.0)
    own = [rng.gauss(0.0, 1.0) for _ in range(priorities)]
    out = []
    for _ in range(seconds):
        common = rho * common + innovation * rng.gauss(0.0, 1.0)
        own = [rho * x + innovation * rng.gauss(0.0, 1.0) for x in own]
        out.append([math.exp(shift + BURST_SIGMA * math.sqrt(0.5) * (common + x)) for x in own])
    return out


def draw_arrivals(profile: Profile, seed: int) -> Arrivals:
    """Over-dispersed per-second counts from a profile's expected rates (seeded,
    reproducible): Poisson draws around a bursty, correlated rate (see module docstring)."""
    rng = random.Random(seed)
    factors = burst_factors(rng, profile.duration_s, len(PRIORITY_ORDER))
    counts = []
    for second in range(profile.duration_s):
        rates = profile.rate(second + 0.5)
        counts.append(
            MappingProxyType(
                {
                    p: _poisson(rng, rates.get(p, 0.0) * factors[second][i])
                    for i, p in enumerate(PRIORITY_ORDER)
                }
            )
        )
    return Arrivals(profile.name, tuple(counts), profile.max_replicas, profile.onset_s)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:
        # Normal approximation: exact enough here and far faster for large means.
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def read_trace(path: Path | str, *, max_replicas: int = 60, name: str | None = None) -> Arrivals:
    """Read a `t,priority,count` CSV into per-second counts."""
    path = Path(path)
    with path.open(newline="") as handle:
        return parse_trace(
            handle.read().splitlines(), name=name or path.stem, max_replicas=max_replicas
        )


def parse_trace(lines: Sequence[str], *, name: str, max_replicas: int = 60) -> Arrivals:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != ["t", "priority", "count"]:
        raise TraceError(f"{name}: line 1 must be the header t,priority,count, got {header!r}")
    per_second: dict[int, dict[Priority, int]] = {}
    for number, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 3:
            raise TraceError(f"{name}: line {number}: expected 3 columns, got {len(row)}")
        try:
            second = int(row[0])
            priority = Priority(row[1].strip())
            count = int(row[2])
        except ValueError as err:
            raise TraceError(f"{name}: line {number}: {err}") from None
        if second < 0 or count < 0:
            raise TraceError(f"{name}: line {number}: t and count must not be negative")
        slot = per_second.setdefault(second, {})
        slot[priority] = slot.get(priority, 0) + count
    if not per_second:
        raise TraceError(f"{name}: no rows after the header")
    duration = max(per_second) + 1
    counts = tuple(
        MappingProxyType({p: per_second.get(s, {}).get(p, 0) for p in PRIORITY_ORDER})
        for s in range(duration)
    )
    return Arrivals(name, counts, max_replicas)


def load_arrivals(name: str, seed: int) -> Arrivals:
    """A bundled profile (drawn with `seed`) or bundled trace, by name."""
    if name in PROFILES:
        return draw_arrivals(PROFILES[name], seed)
    resource = resources.files("surge_operator") / "profiles" / f"{name}.csv"
    if resource.is_file():
        return parse_trace(resource.read_text().splitlines(), name=name)
    raise KeyError(name)


def write_trace(arrivals: Arrivals, path: Path) -> None:
    """Write arrivals as a trace CSV (what `read_trace` reads back)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "priority", "count"])
        for second, counts in enumerate(arrivals.counts):
            for priority in PRIORITY_ORDER:
                if counts.get(priority, 0):
                    writer.writerow([second, priority.value, counts[priority]])


def arrivals_from_rates(
    name: str,
    series: Mapping[Priority, Sequence[tuple[float, float]]],
    *,
    step_s: float,
    max_replicas: int = 60,
) -> Arrivals:
    """Per-second counts from per-priority rate samples (unix time, msg/s), one every
    `step_s` seconds: each sample's messages are spread evenly over its step, rounded
    with a carry so the totals are kept. Gaps (no sample) count as no arrivals."""
    if step_s <= 0:
        raise TraceError(f"{name}: step must be positive, got {step_s}")
    times = [t for points in series.values() for t, _ in points]
    if not times:
        raise TraceError(f"{name}: no samples in the range")
    start = min(times)
    duration = max(1, math.ceil(max(times) - start + step_s))
    fractional = {p: [0.0] * duration for p in PRIORITY_ORDER}
    for priority, points in series.items():
        slot = fractional[priority]
        for t, rate in points:
            if not math.isfinite(rate) or rate <= 0:
                continue
            first = int(t - start)
            seconds = max(1, round(step_s))
            for second in range(first, min(duration, first + seconds)):
                slot[second] += rate * step_s / seconds
    counts = []
    carry = dict.fromkeys(PRIORITY_ORDER, 0.0)
    for second in range(duration):
        row = {}
        for p in PRIORITY_ORDER:
            exact = fractional[p][second] + carry[p]
            whole = max(0, math.floor(exact + 1e-9))
            carry[p] = exact - whole
            row[p] = whole
        counts.append(MappingProxyType(row))
    return Arrivals(name, tuple(counts), max_replicas)
