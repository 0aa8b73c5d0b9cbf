"""Pure per-tenant token buckets (time is passed in; no clock reads).

The per-tenant rate is the whole cluster's: every gateway replica enforces its share,
``rate / live replicas`` (:func:`replica_share`, from the replica registry the gateways
already keep in the degradation bucket, ``offered.<instance>``). A token bucket shared in
a KV with compare-and-set would be exact but puts a NATS round trip, and CAS conflicts
between replicas on a hot tenant, in front of every write, and makes ingest depend on the
KV; the share costs one registry read per second and none per request. It assumes the
Service spreads a tenant's requests evenly (many connections); a tenant on one keep-alive
connection to one replica gets that replica's share only.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
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
    """One bucket per (tenant, class); ``throttled`` buckets run at a fraction of the rate,
    and every bucket at this replica's ``share`` of the cluster-wide rate."""

    def __init__(self, rate: float, burst: float, throttled_fraction: float) -> None:
        self.rate = rate
        self.burst = burst
        self.throttled_fraction = throttled_fraction
        self.share = 1.0
        self._buckets: dict[tuple[str, bool], TokenBucket] = {}

    def _shape(self, throttled: bool) -> tuple[float, float]:
        factor = (self.throttled_fraction if throttled else 1.0) * self.share
        return self.rate * factor, max(1.0, self.burst * factor)

    def set_share(self, share: float) -> None:
        """This replica's fraction of the cluster-wide rate (1 / live replicas)."""
        share = min(1.0, max(share, 1e-6))
        if share == self.share:
            return
        self.share = share
        for (_, throttled), bucket in self._buckets.items():
            bucket.rate, bucket.burst = self._shape(throttled)
            bucket.tokens = min(bucket.tokens, bucket.burst)

    def take(self, tenant: str, n: int, now: float, *, throttled: bool = False) -> float:
        key = (tenant, throttled)
        bucket = self._buckets.get(key)
        if bucket is None:
            rate, burst = self._shape(throttled)
            bucket = self._buckets[key] = TokenBucket(rate=rate, burst=burst)
        return bucket.take(n, now)


def replica_share(seen_at: Iterable[float], now: float, fresh_within: float = 10.0) -> float:
    """1 / the number of gateway replicas that reported within ``fresh_within`` seconds
    (this one included; at least one)."""
    live = sum(1 for at in seen_at if now - at <= fresh_within)
    return 1.0 / max(1, live)


class AddressLimiter:
    """Buckets per client address for requests without a valid token: probing tokens or
    flooding the refusal path costs the caller, not the tenants. Bounded: the least
    recently seen addresses are forgotten first."""

    def __init__(self, rate: float, burst: float, max_addresses: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, address: str, now: float) -> float:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = TokenBucket(rate=self.rate, burst=self.burst)
            if len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
        return bucket.take(1, now)
