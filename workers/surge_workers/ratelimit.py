"""Pure per-tenant token buckets (time is passed in; no clock reads)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float  # tokens per second; <= 0 means unlimited
    burst: float
    tokens: float = -1.0  # -1: start full
    updated: float = 0.0

    def take(self, n: float, now: float) -> float:
        """Take ``n`` tokens; 0.0 when allowed, else the seconds until they would be."""
        if self.rate <= 0:
            return 0.0
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        if n > self.burst:  # can never pass at once: tell the client to split and slow down
            return math.ceil(n / self.rate)
        return (n - self.tokens) / self.rate


class TenantLimiter:
    """One bucket per (tenant, class); ``throttled`` buckets run at a fraction of the rate."""

    def __init__(self, rate: float, burst: float, throttled_fraction: float) -> None:
        self.rate = rate
        self.burst = burst
        self.throttled_fraction = throttled_fraction
        self._buckets: dict[tuple[str, bool], TokenBucket] = {}

    def take(self, tenant: str, n: int, now: float, *, throttled: bool = False) -> float:
        key = (tenant, throttled)
        bucket = self._buckets.get(key)
        if bucket is None:
            factor = self.throttled_fraction if throttled else 1.0
            bucket = self._buckets[key] = TokenBucket(
                rate=self.rate * factor, burst=max(1.0, self.burst * factor)
            )
        return bucket.take(n, now)
