"""Pure: a bundled profile made small enough to replay on one machine.

Time is compressed by an integer factor (each second sums `speedup` seconds of the
profile, so the surge's shape and its over-dispersion are kept), then the volume is
scaled so the busiest five seconds average `peak_rate` messages per second (rounded
with a carry per priority, so no message is lost to rounding). Live run and simulation
are then fed exactly the same counts.
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import MappingProxyType

from surge_operator.policy.types import PRIORITY_ORDER
from surge_operator.simulate.traffic import Arrivals


def compress(arrivals: Arrivals, *, speedup: int, peak_rate: float, max_replicas: int) -> Arrivals:
    if speedup < 1 or peak_rate <= 0:
        raise ValueError("speedup must be >= 1 and peak_rate > 0")
    n = math.ceil(arrivals.duration_s / speedup)
    summed = []
    for second in range(n):
        rows = arrivals.counts[second * speedup : (second + 1) * speedup]
        summed.append({p: sum(r.get(p, 0) for r in rows) for p in PRIORITY_ORDER})
    totals = [sum(row.values()) for row in summed]
    busiest = max(
        (sum(totals[s : s + 5]) / len(totals[s : s + 5]) for s in range(len(totals))), default=0
    )
    factor = peak_rate / busiest if busiest > 0 else 1.0
    carry = dict.fromkeys(PRIORITY_ORDER, 0.0)
    counts = []
    for row in summed:
        out = {}
        for p in PRIORITY_ORDER:
            exact = row[p] * factor + carry[p]
            out[p] = max(0, math.floor(exact + 1e-9))
            carry[p] = exact - out[p]
        counts.append(MappingProxyType(out))
    onset = arrivals.surge_onset() / speedup
    return replace(
        arrivals,
        name=f"{arrivals.name} /{speedup}",
        counts=tuple(counts),
        max_replicas=max_replicas,
        known_onset_s=onset,
    )
