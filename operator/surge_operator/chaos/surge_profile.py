"""A surge's arrival schedule (a steady rate ramping linearly to several times itself) and
the offered rate measured from send times. Pure."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Ramp:
    """`base` messages/s for `steady_s` seconds, then a linear ramp over `ramp_s` seconds
    to `factor` times `base`, which holds until the last message."""

    base: float
    factor: float
    steady_s: float
    ramp_s: float

    @property
    def peak(self) -> float:
        return self.base * self.factor

    @property
    def peak_at_s(self) -> float:
        """When the ramp reaches the peak (seconds after the first message)."""
        return self.steady_s + self.ramp_s

    def offset(self, i: int) -> float:
        """When message i is due (seconds after message 0): where the arrivals so far,
        the integral of the rate, reach i."""
        steady = self.base * self.steady_s
        if i <= steady:
            return i / self.base
        slope = (self.peak - self.base) / self.ramp_s
        ramped = steady + (self.base + self.peak) / 2 * self.ramp_s
        if i <= ramped:
            # base*u + slope*u²/2 = i - steady, solved for u >= 0
            left = i - steady
            u = (
                left / self.base
                if slope == 0
                else (-self.base + math.sqrt(self.base**2 + 2 * slope * left)) / slope
            )
            return self.steady_s + u
        return self.peak_at_s + (i - ramped) / self.peak

    def schedule(self, count: int) -> list[float]:
        return [self.offset(i) for i in range(count)]

    def peak_index(self, count: int) -> int:
        """The first message due once the peak is reached (the last one if the ramp is
        longer than `count` messages)."""
        due = self.schedule(count)
        return min(bisect_left(due, self.peak_at_s), count - 1)


def rate_before(times: Sequence[float], end: float, width: float = 1.0) -> float:
    """Messages/s sent in the `width` seconds before `end` (`times` sorted)."""
    return (bisect_left(times, end) - bisect_left(times, end - width)) / width


def peak_rate(times: Sequence[float], until: float, width: float = 1.0) -> float:
    """The highest rate over any `width`-second window ending with a send before `until`
    (that send included; `times` sorted)."""
    ends = times[: bisect_left(times, until)]
    return max(
        ((bisect_right(times, t) - bisect_right(times, t - width)) / width for t in ends),
        default=0.0,
    )
