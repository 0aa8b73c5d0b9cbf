"""End-to-end latency from the workers' completion announcements (enqueue -> done)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from surge_workers.contract import Priority, completion_subject


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


@dataclass
class LatencyTracker:
    """Every completion's wait, and a rolling window for the live view."""

    window_s: float = 10.0
    waits: dict[Priority, list[float]] = field(default_factory=lambda: {p: [] for p in Priority})
    recent: deque[tuple[float, Priority, float]] = field(default_factory=deque)
    completions: int = 0
    _sub: Subscription | None = None

    async def start(self, nc: Client, stream: str) -> None:
        self._sub = await nc.subscribe(completion_subject(stream), cb=self._on_done)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_done(self, msg: Msg) -> None:
        parts = msg.data.decode().split()
        if len(parts) != 3:
            return
        try:
            priority = Priority(parts[0])
            wait = max(0.0, float(parts[2]) - float(parts[1]))
        except ValueError:
            return
        self.completions += 1
        self.waits[priority].append(wait)
        self.recent.append((time.monotonic(), priority, wait))

    def rolling_p95(self) -> dict[Priority, float | None]:
        cutoff = time.monotonic() - self.window_s
        while self.recent and self.recent[0][0] < cutoff:
            self.recent.popleft()
        return {p: p95([w for _, q, w in self.recent if q is p]) for p in Priority}

    def overall_p95(self) -> dict[Priority, float | None]:
        return {p: p95(self.waits[p]) for p in Priority}
