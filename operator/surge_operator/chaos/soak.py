"""A compressed soak: steady traffic through the real gateways to the real workers while
the resident memory and open file descriptors of every worker and gateway process are
sampled each second from /proc. The result prints each role's worst slope (least squares
over the samples after a warm-up quarter), per minute: flat means no leak that the run was
long enough to see. Long form (`surge chaos --only soak`) runs ten times longer.

A soak compressed in time compresses the workers' bounded caches too: at their default
bound (50,000 entries each) they fill over hours, and their filling is a slope that looks
like a leak. Here they hold `CACHE_ENTRIES`, full within the warm-up, so what grows after
it is not a cache filling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from surge_operator.chaos.clients import Traffic
from surge_operator.chaos.dataplane import Plane, one_server, run_plane
from surge_operator.chaos.result import Result
from surge_workers.contract import Env

RATE = 60.0
SAMPLE_EVERY = 1.0
#: Each worker sees ~RATE/3 messages a second: full in ~15 s, inside the warm-up quarter
#: of the short form (40 s) and far inside the long form's.
CACHE_ENTRIES = 300


def slope_per_minute(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) pairs, in value per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return 60.0 * cov / var


async def soak(count: int) -> Result:
    series: dict[int, tuple[str, list[tuple[float, float, float]]]] = {}
    done = asyncio.Event()

    async def sample(plane: Plane) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not done.is_set():
            for proc in plane.stage.live("worker") + plane.stage.live("gateway"):
                with contextlib.suppress(OSError):
                    rss, fds = proc.footprint()
                    series.setdefault(proc.pid, (proc.role, []))[1].append(
                        (loop.time() - start, rss, fds)
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), SAMPLE_EVERY)

    sampler: list[asyncio.Task[None]] = []

    async def fault(plane: Plane, i: int) -> None:
        if i == 0:
            sampler.append(asyncio.create_task(sample(plane)))

    async def stop(plane: Plane, traffic: Traffic) -> None:
        done.set()
        await asyncio.gather(*sampler)
        plane.notes.update(_slopes(series))

    with one_server() as (url, root):
        return await run_plane(
            "soak",
            urls=[url],
            root=root,
            count=count,
            rate=RATE,
            fault=fault,
            on_traffic_done=stop,
            role_env={"worker": {Env.CACHE_ENTRIES: str(CACHE_ENTRIES)}},
        )


def _slopes(
    series: dict[int, tuple[str, list[tuple[float, float, float]]]],
) -> dict[str, object]:
    """Per role: the worst (largest) RSS and fd slopes over its processes, and the span."""
    out: dict[str, object] = {}
    for role in ("worker", "gateway"):
        rss: list[float] = []
        fds: list[float] = []
        last_rss: list[float] = []
        for kind, samples in series.values():
            if kind != role or len(samples) < 8:
                continue
            steady = samples[len(samples) // 4 :]  # after the warm-up (imports, first pulls)
            rss.append(slope_per_minute([(t, r) for t, r, _ in steady]))
            fds.append(slope_per_minute([(t, f) for t, _, f in steady]))
            last_rss.append(samples[-1][1])
        out[f"{role}_rss_slope_kib_per_min"] = round(max(rss, default=0.0), 1)
        out[f"{role}_fds_slope_per_min"] = round(max(fds, default=0.0), 2)
        out[f"{role}_rss_kib"] = int(max(last_rss, default=0))
    spans = [s[-1][0] for _, s in series.values() if s]
    out["soak_s"] = round(max(spans, default=0.0), 1)
    return out
