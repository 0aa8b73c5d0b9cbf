"""A true lower bound on replica-seconds: the offline optimum of the same fluid model.

A linear programme over the measured seconds t = 0..T-1 (scipy's HiGHS), with the whole
arrival curve known in advance:

    variables   r_t        replicas (continuous: a relaxation of whole pods)
                u_t >= 0   replicas added at t (each pays start-up while it starts)
                C_p,t      messages of class p started by the end of second t
    minimise    sum r_t + startup_min * sum u_t + sum_p (A_p,T-1 - C_p,T-1) / mu
    subject to  sum_p (C_p,t - C_p,t-1) <= mu * r_t           (capacity)
                C_p,t-1 <= C_p,t <= A_p,t                       (nothing served early)
                C_p,t >= A_p,t-W_p - 0.05 * (A_p,t - A_p,t-w)   (the wait target)
                r_t - r_t-1 <= u_t,  minReplicas <= r_t <= maxReplicas

A_p,t counts arrivals of class p up to t, W_p is the class's latency target, w the
window p95 is judged over and mu the nominal per-worker rate. The wait constraint lets
5 % of the last window's arrivals run late, a relaxation of "p95 within target in every
window"; the LP may also serve classes in any order, start pods with the shortest
start-up the world draws, and run fractional pods. Every relaxation makes it cheaper, so
its optimum is below the cost of any policy that meets the targets in the same world
(refused work is charged to policies at 1/mu per message, as work left at the end is
here). When the targets cannot be met within maxReplicas at all, the wait rows are
dropped and the bound is that of serving every message by the end (`target_feasible`
false).

The look-ahead oracle in `engine` is a heuristic that knows the future; it is *not* a
bound, and a policy can beat it.
"""

from __future__ import annotations

from dataclasses import dataclass

from surge_operator.policy.config import ScalingConfig
from surge_operator.policy.types import PRIORITY_ORDER
from surge_operator.simulate.traffic import Arrivals
from surge_operator.simulate.world import SimConfig

#: Share of a window's arrivals the wait constraint lets run late (p95).
LATE_SHARE = 0.05


class BoundUnavailableError(RuntimeError):
    """scipy is not installed (`pip install 'surge[bench]'`) or the solver failed."""


@dataclass(frozen=True, slots=True)
class LowerBound:
    replica_seconds: float
    #: False when no plan within maxReplicas meets the targets (the bound then only
    #: requires every message to be served).
    target_feasible: bool

    def summary(self) -> dict[str, object]:
        return {
            "replica_seconds": round(self.replica_seconds, 1),
            "target_feasible": self.target_feasible,
        }


def _cumulative(arrivals: Arrivals) -> list[list[float]]:
    out = []
    for p in PRIORITY_ORDER:
        total = 0.0
        series = []
        for counts in arrivals.counts:
            total += counts.get(p, 0)
            series.append(total)
        out.append(series)
    return out


def lower_bound(arrivals: Arrivals, sim: SimConfig, scaling: ScalingConfig) -> LowerBound:
    """Solve the LP (see the module docstring); raises BoundUnavailableError without scipy."""
    try:
        import numpy as np
        from scipy.optimize import linprog
        from scipy.sparse import coo_matrix
    except ImportError as err:  # pragma: no cover - optional extra
        raise BoundUnavailableError(
            "the lower bound needs scipy: pip install 'surge[bench]'"
        ) from err

    n = arrivals.duration_s
    k = len(PRIORITY_ORDER)
    mu = sim.service_rate
    startup = sim.pod_startup_s * (1 - sim.startup_jitter)
    cum = np.array(_cumulative(arrivals))  # k x n
    window = max(1, round(sim.window_s))

    def r(t: int) -> int:
        return t

    def u(t: int) -> int:
        return n + t

    def c(p: int, t: int) -> int:
        return 2 * n + p * n + t

    size = (2 + k) * n
    cost = np.zeros(size)
    cost[:n] = 1.0
    cost[n : 2 * n] = startup
    for p in range(k):
        cost[c(p, n - 1)] = -1.0 / mu
    constant = float(cum[:, -1].sum()) / mu

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    row = 0
    for t in range(n):
        # capacity: sum_p C[p,t] - C[p,t-1] - mu r_t <= 0
        for p in range(k):
            rows.append(row)
            cols.append(c(p, t))
            vals.append(1.0)
            if t > 0:
                rows.append(row)
                cols.append(c(p, t - 1))
                vals.append(-1.0)
        rows.append(row)
        cols.append(r(t))
        vals.append(-mu)
        row += 1
    for p in range(k):
        for t in range(1, n):
            rows += [row, row]
            cols += [c(p, t - 1), c(p, t)]
            vals += [1.0, -1.0]
            row += 1
    for t in range(1, n):
        rows += [row, row, row]
        cols += [r(t), r(t - 1), u(t)]
        vals += [1.0, -1.0, -1.0]
        row += 1
    matrix = coo_matrix((vals, (rows, cols)), shape=(row, size)).tocsr()
    rhs = np.zeros(row)

    def solve(with_target: bool) -> float | None:
        bounds: list[tuple[float, float | None]] = [
            (float(scaling.min_replicas), float(scaling.max_replicas))
        ] * n
        bounds += [(0.0, 0.0)] + [(0.0, None)] * (n - 1)
        for p, priority in enumerate(PRIORITY_ORDER):
            target = max(0, int(scaling.latency_target(priority)))
            for t in range(n):
                upper = float(cum[p, t])
                lower = 0.0
                if with_target and t - target >= 0:
                    recent = upper - (float(cum[p, t - window]) if t >= window else 0.0)
                    lower = max(0.0, float(cum[p, t - target]) - LATE_SHARE * recent)
                bounds.append((min(lower, upper), upper))
        result = linprog(cost, A_ub=matrix, b_ub=rhs, bounds=bounds, method="highs")
        if result.status == 2:  # infeasible
            return None
        if result.status != 0:
            raise BoundUnavailableError(f"HiGHS: {result.message}")
        return float(result.fun) + constant

    value = solve(True)
    if value is not None:
        return LowerBound(value, True)
    value = solve(False)
    if value is None:  # pragma: no cover - serving everything at the end is always feasible
        raise BoundUnavailableError("HiGHS: no feasible plan")
    return LowerBound(value, False)
