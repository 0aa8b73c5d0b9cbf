"""`surge-operator`: settings -> logging -> health/metrics server -> leader election ->
kopf. The only place that wires globals (structlog config, kopf's handler registry).

    KUBECONFIG=... surge-operator            # or in-cluster with a service account

Exit codes: 0 on SIGTERM/SIGINT, 1 when leadership is lost (restart as a standby).
Either way the process is gone within SURGE_SHUTDOWN_SECONDS (+ ~3 s for releasing the
Lease and closing clients), even with NATS and the API server both unreachable; a second
signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from surge_operator.kube import HttpKubeApi
from surge_operator.leader import Leadership, LeaseElector, Unfenced
from surge_operator.logs import configure, get_logger
from surge_operator.metrics import OperatorMetrics
from surge_operator.settings import OperatorConfig


async def _serve(
    config: OperatorConfig, metrics: OperatorMetrics, state: dict[str, bool]
) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        # Alive as soon as the process serves HTTP, leader or standby: a standby must not
        # be killed by its liveness probe for waiting.
        return web.json_response({"ok": True, "leader": state.get("leader", False)})

    async def readyz(_: web.Request) -> web.Response:
        ok = state.get("ready", False)
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host = config.server.host
    for port in {config.server.health_port, config.server.metrics_port} - {0}:
        await web.TCPSite(runner, host, port).start()
    return runner


async def run(config: OperatorConfig) -> int:
    import kopf

    import surge_operator.handlers.lifecycle  # noqa: F401  (registers the handlers)

    log = get_logger()
    metrics = OperatorMetrics()
    state: dict[str, bool] = {"leader": False, "ready": False}
    runner = await _serve(config, metrics, state)
    kube = await HttpKubeApi.connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            # A second signal: whatever is still running gets no more time.
            log.error("exiting_now_on_second_signal")
            os._exit(1)
        stop.set()

    def own_signals() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, on_signal)

    async def keep_own_signals() -> None:
        # kopf.operator() installs its own SIGTERM/SIGINT handlers once it starts, and its
        # shutdown then waits for cleanup activities that retry for minutes when the API
        # server or NATS is gone. Ours must stay in charge: they bound the shutdown.
        while True:
            own_signals()
            await asyncio.sleep(0.5)

    own_signals()

    elector = LeaseElector(kube, config.leader)
    leadership: Leadership = elector if config.leader.enabled else Unfenced()
    lost = asyncio.Event()
    keeper: asyncio.Task[None] | None = None
    exit_code = 0
    grace = config.leader.shutdown_seconds
    try:
        if config.leader.enabled:
            if not await elector.acquire(stop):
                return 0
            keeper = asyncio.create_task(elector.keep(lost, stop))
        state["leader"] = True
        kopf_stop = asyncio.Event()
        ready = asyncio.Event()

        async def mark_ready() -> None:
            await ready.wait()
            state["ready"] = True

        ready_task = asyncio.create_task(mark_ready())
        signals_task = asyncio.create_task(keep_own_signals())
        namespaces = list(config.namespaces)
        operator = asyncio.create_task(
            kopf.operator(
                clusterwide=not namespaces,
                namespaces=namespaces,
                standalone=True,  # leadership is the Lease's job (see leader.py)
                stop_flag=kopf_stop,
                ready_flag=ready,
                memo=kopf.Memo(config=config, metrics=metrics, kube=kube, leadership=leadership),
            )
        )
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
        await asyncio.wait([operator, *waiters], return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        ready_task.cancel()
        signals_task.cancel()
        own_signals()
        if lost.is_set():
            log.error("exiting_after_leadership_loss")
            exit_code = 1
        state["leader"] = False
        kopf_stop.set()
        await _bounded_stop(operator, grace, log)
    finally:
        stop.set()
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper
        await elector.release(within=min(1.5, grace))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(kube.close(), timeout=1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner.cleanup(), timeout=1.0)
    return exit_code


async def _bounded_stop(operator: asyncio.Task[None], grace: float, log: Any) -> None:
    """Give kopf `grace` seconds to stop (its own cleanup retries for up to 10 minutes
    when the API server or NATS is gone), then cancel it; the process exits either way."""
    done, _ = await asyncio.wait([operator], timeout=grace)
    if done:
        with contextlib.suppress(Exception):
            operator.result()
        return
    log.warning("kopf_stop_timed_out", grace=grace)
    operator.cancel()
    done, _ = await asyncio.wait([operator], timeout=1.0)
    if not done:
        log.error("kopf_would_not_stop")
        os._exit(1)


def main() -> None:
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        from surge_operator import settings

        print(__doc__)
        print(settings.__doc__)
        return
    if "--version" in sys.argv[1:]:
        from surge_operator import __version__

        print(f"surge-operator {__version__}")
        return
    config = OperatorConfig.from_env()
    configure(config.logs)
    sys.exit(asyncio.run(run(config)))


if __name__ == "__main__":
    main()
