"""The simulated pipeline: gateway admission, client retries, queues, workers, metrics.

Messages are a fluid (fractional counts grouped in cohorts), which keeps waits exact
enough while a simulated day runs in well under a second. What a real cluster shows its
autoscaler is modelled, not idealised:

* **in-flight work**: a worker runs `concurrency` handlers, each taking
  concurrency / service_rate seconds per message, and holds up to `prefetch` more
  messages it has pulled but not started. Started and prefetched messages are
  *ack-pending*; the rest of the queue is *pending*. KEDA's metric (num_pending +
  num_ack_pending) is therefore never zero while there is traffic, exactly as in a
  real cluster;
* **refused work comes back**: a write the gateway throttles or sheds is retried by its
  client after the gateway's Retry-After; its wait counts from the first attempt, and a
  client gives up after `client_give_up_s` (counted as refused, never as served);
* **metrics as a cluster has them**: JetStream figures (consumer pending and
  ack-pending, stream arrivals, ack-floor completions, oldest unacked age) read once per
  operator tick; p95 wait from a Prometheus histogram scraped every `scrape_interval_s`
  over a `p95_range_s` range. Every policy reads the same figures.

Waits are queue waits: from the first offer of a message until a handler starts it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from surge_operator.api import Priority
from surge_operator.policy.types import PRIORITY_ORDER, DegradationLevel, PriorityMetrics
from surge_operator.simulate.effects import admission, retry_after, worker_share


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The world the policies run in (not the policies' own settings)."""

    #: Messages per second one worker handles at nominal speed.
    service_rate: float = 50.0
    #: Handler slots per worker (the spec's workers.concurrency default).
    concurrency: int = 16
    #: Messages a worker pulls beyond its slots (the worker's default: 4 x concurrency).
    prefetch: int = 64
    #: Standard deviation of a pod's speed relative to the nominal service rate.
    service_jitter: float = 0.1
    pod_startup_s: float = 5.0
    #: Start-up time varies uniformly by this fraction either way.
    startup_jitter: float = 0.2
    dt: float = 0.25
    warmup_s: int = 180
    #: Width of the windows p95 wait is judged over (violation time is counted in these).
    window_s: float = 10.0
    #: Prometheus scrape interval and the range its p95 query covers.
    scrape_interval_s: float = 15.0
    p95_range_s: float = 60.0
    #: A refused client stops retrying this long after its first attempt.
    client_give_up_s: float = 600.0
    seed: int = 1

    @property
    def handling_s(self) -> float:
        """Seconds one handler spends on one message at nominal speed."""
        return self.concurrency / self.service_rate


@dataclass(slots=True)
class Pod:
    ready_at: float
    speed: float


@dataclass(slots=True)
class Tally:
    """Per-priority counters of one run's measured part."""

    shed: dict[Priority, float] = field(default_factory=lambda: dict.fromkeys(PRIORITY_ORDER, 0.0))
    throttled: dict[Priority, float] = field(
        default_factory=lambda: dict.fromkeys(PRIORITY_ORDER, 0.0)
    )
    gave_up: dict[Priority, float] = field(
        default_factory=lambda: dict.fromkeys(PRIORITY_ORDER, 0.0)
    )
    accepted: float = 0.0
    processed: float = 0.0


class World:
    """Queues, pods and clients of one run, advanced in steps of `dt` seconds."""

    def __init__(self, sim: SimConfig, sheddable: frozenset[Priority]) -> None:
        self.sim = sim
        self.sheddable = sheddable
        self.rng = random.Random(sim.seed)
        self.pods: list[Pod] = []
        #: Waiting (not started): [enqueued at, count, first offered at], FIFO per priority.
        self.queues: dict[Priority, deque[list[float]]] = {p: deque() for p in PRIORITY_ORDER}
        self.waiting = dict.fromkeys(PRIORITY_ORDER, 0.0)
        #: Started, not yet acked: [done at, count, enqueued at].
        self.running: dict[Priority, deque[list[float]]] = {p: deque() for p in PRIORITY_ORDER}
        self.in_service = dict.fromkeys(PRIORITY_ORDER, 0.0)
        #: Refused writes whose clients will try again: (due, seq, priority, count, first at).
        self.retries: list[tuple[float, int, Priority, float, float]] = []
        self._seq = 0
        #: Queue waits of started messages: (started at, wait, count) per priority.
        self.started: dict[Priority, deque[tuple[float, float, float]]] = {
            p: deque() for p in PRIORITY_ORDER
        }
        self.level = DegradationLevel.NORMAL
        # The contract's tables per level (looked up once: they are hot).
        self._admission = {
            (lv, p): admission(lv, p, sheddable) for lv in DegradationLevel for p in PRIORITY_ORDER
        }
        self._retry_after = {
            (lv, p): retry_after(lv, p, sheddable)
            for lv in DegradationLevel
            for p in PRIORITY_ORDER
        }
        self._share = {
            (lv, p): worker_share(lv, p, sheddable)
            for lv in DegradationLevel
            for p in PRIORITY_ORDER
        }
        self._dt = sim.dt
        self.tally = Tally()
        # Per-second counters, reset by `metrics()` each tick.
        self._accepted_sec = dict.fromkeys(PRIORITY_ORDER, 0.0)
        self._offered_sec = dict.fromkeys(PRIORITY_ORDER, 0.0)
        self._acked_sec = 0.0
        self._p95: dict[Priority, float] = {}
        self._next_scrape = -math.inf

    # ------------------------------------------------------------------ pods

    def new_pod(self, now: float, *, ready: bool = False) -> Pod:
        sim = self.sim
        startup = sim.pod_startup_s * (
            1 + self.rng.uniform(-sim.startup_jitter, sim.startup_jitter)
        )
        speed = max(0.5, self.rng.gauss(1.0, sim.service_jitter))
        return Pod(ready_at=-math.inf if ready else now + startup, speed=speed)

    def resize(self, target: int, now: float) -> None:
        if target > len(self.pods):
            self.pods.extend(self.new_pod(now) for _ in range(target - len(self.pods)))
        elif target < len(self.pods):
            # Remove pods still starting first: they serve nobody yet.
            self.pods.sort(key=lambda pod: pod.ready_at)
            del self.pods[target:]

    def ready_count(self, at: float) -> int:
        return sum(1 for pod in self.pods if pod.ready_at <= at)

    def ready_speed(self, at: float) -> float:
        return sum(pod.speed for pod in self.pods if pod.ready_at <= at)

    # ------------------------------------------------------------------ one step

    def offer(
        self, priority: Priority, count: float, now: float, first_at: float, measuring: bool
    ) -> None:
        """A client write (new or retried) reaches the gateway."""
        if count <= 0:
            return
        self._offered_sec[priority] += count
        accept, throttling = self._admission[self.level, priority]
        took = count * accept
        refused = count - took
        if refused > 1e-12:
            if measuring:
                (self.tally.throttled if throttling else self.tally.shed)[priority] += refused
            due = now + self._retry_after[self.level, priority]
            if due - first_at > self.sim.client_give_up_s:
                if first_at >= 0:  # first offered in the measured part
                    self.tally.gave_up[priority] += refused
            else:
                self._seq += 1
                heapq.heappush(self.retries, (due, self._seq, priority, refused, first_at))
        if took > 0:
            self.queues[priority].append([now, took, first_at])
            self.waiting[priority] += took
            self._accepted_sec[priority] += took
            if measuring:
                self.tally.accepted += took

    def step(
        self, counts: Mapping[Priority, float], now: float, dt: float, measuring: bool
    ) -> None:
        """Arrivals and due retries in, handlers started and finished. A cohort started
        in this step starts uniformly over it, so it finishes over [start + S, start + S
        + dt); it is acked once all of it has (the ack-pending figure counts it pro rata)."""
        self._dt = dt
        for p in PRIORITY_ORDER:
            self.offer(p, counts.get(p, 0.0), now, now, measuring)
        while self.retries and self.retries[0][0] <= now + 1e-9:
            _, _, p, count, first_at = heapq.heappop(self.retries)
            self.offer(p, count, now, first_at, measuring)
        full = self.ready_speed(now) * self.sim.service_rate * dt
        capacity = full
        handling = self.sim.handling_s
        for p in PRIORITY_ORDER:
            if capacity <= 1e-12:
                break
            allowed = min(capacity, full * self._share[self.level, p])
            if allowed <= 1e-12:
                continue
            left = self._start(p, allowed, now, handling)
            capacity -= allowed - left
        for p in PRIORITY_ORDER:
            running = self.running[p]
            while running and running[0][0] + dt <= now + dt + 1e-9:
                _, count, _ = running.popleft()
                self.in_service[p] -= count
                self._acked_sec += count
                if measuring:
                    self.tally.processed += count

    def _start(self, p: Priority, capacity: float, now: float, handling: float) -> float:
        queue = self.queues[p]
        started = self.started[p]
        while capacity > 1e-12 and queue:
            cohort = queue[0]
            take = min(cohort[1], capacity)
            started.append((now, max(0.0, now - cohort[2]), take))
            self.running[p].append([now + handling, take, cohort[0]])
            self.in_service[p] += take
            self.waiting[p] -= take
            cohort[1] -= take
            capacity -= take
            if cohort[1] <= 1e-9:
                queue.popleft()
        return capacity

    # ------------------------------------------------------------------ what is measured

    def window_samples(self, p: Priority, since: float, at: float) -> list[tuple[float, float]]:
        """(wait, weight) of messages started in (since, at], of those still queued and of
        refused writes whose clients are still retrying (their wait so far)."""
        samples = [(w, c) for t, w, c in self.started[p] if t > since - 1e-9]
        samples += [(at - c[2], c[1]) for c in self.queues[p]]
        samples += [(at - first, n) for _, _, q, n, first in self.retries if q is p]
        return samples

    def pending_retries(self) -> dict[Priority, float]:
        """Refused writes first offered in the measured part whose clients still retry."""
        out = dict.fromkeys(PRIORITY_ORDER, 0.0)
        for _, _, p, n, first in self.retries:
            if first >= 0:
                out[p] += n
        return out

    def backlog(self, p: Priority) -> float:
        """num_pending + num_ack_pending of the priority's consumer."""
        return self.waiting[p] + self.in_service[p]

    def handling_at(self, p: Priority, at: float) -> float:
        """Messages of `p` a handler is on at `at` (cohorts pro rata, see `step`)."""
        dt = self._dt
        return sum(c * min(1.0, max(0.0, (done + dt - at) / dt)) for done, c, _ in self.running[p])

    def metrics(self, at: float) -> tuple[dict[Priority, PriorityMetrics], float, int]:
        """What the operator reads at a tick: per-priority metrics, the ack rate over the
        last second and the consumers' num_pending (messages no worker has pulled)."""
        # Prefetch buffers fill in pull order (critical first) from what is waiting.
        buffer = float(self.ready_count(at) * self.sim.prefetch)
        pending = 0.0
        for p in PRIORITY_ORDER:
            pulled = min(self.waiting[p], buffer)
            buffer -= pulled
            pending += self.waiting[p] - pulled
        self._scrape(at)
        out = {}
        for p in PRIORITY_ORDER:
            oldest = (
                self.running[p][0][2]
                if self.running[p]
                else (self.queues[p][0][0] if self.queues[p] else at)
            )
            out[p] = PriorityMetrics(
                backlog=round(self.waiting[p] + self.handling_at(p, at)),
                arrival_rate=self._accepted_sec[p],
                oldest_unacked_age=max(0.0, at - oldest),
                p95_wait=self._p95.get(p),
                offered_rate=self._offered_sec[p],
            )
        acked = self._acked_sec
        self._accepted_sec = dict.fromkeys(PRIORITY_ORDER, 0.0)
        self._offered_sec = dict.fromkeys(PRIORITY_ORDER, 0.0)
        self._acked_sec = 0.0
        return out, acked, round(pending)

    def _scrape(self, at: float) -> None:
        """Prometheus: the p95 of waits observed over the last range, every interval."""
        horizon = at - max(self.sim.p95_range_s, self.sim.window_s)
        for p in PRIORITY_ORDER:
            started = self.started[p]
            while started and started[0][0] < horizon:
                started.popleft()
        if at < self._next_scrape - 1e-9:
            return
        self._next_scrape = at + self.sim.scrape_interval_s
        since = at - self.sim.p95_range_s
        p95 = {}
        for p in PRIORITY_ORDER:
            value = weighted_p95([(w, c) for t, w, c in self.started[p] if t > since])
            if value is not None:
                p95[p] = value
        self._p95 = p95


def weighted_p95(samples: list[tuple[float, float]]) -> float | None:
    """95th percentile of (value, weight) samples."""
    total = sum(w for _, w in samples)
    if total <= 1e-9:
        return None
    running = 0.0
    for value, weight in sorted(samples):
        running += weight
        if running >= 0.95 * total:
            return value
    return samples[-1][0]
