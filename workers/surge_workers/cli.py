"""Console entry points `surge-worker` and `surge-gateway` (configured by env, see settings)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from surge_workers.errors import ConfigError
from surge_workers.logs import configure, get_logger
from surge_workers.settings import GatewaySettings, WorkerSettings

_S = TypeVar("_S", WorkerSettings, GatewaySettings)


def worker_main() -> None:
    from surge_workers.runtime import run_worker

    _serve("worker", WorkerSettings, run_worker)


def gateway_main() -> None:
    from surge_workers.gateway import run_gateway

    _serve("gateway", GatewaySettings, run_gateway)


def _serve(
    component: str,
    settings_type: type[_S],
    run: Callable[[_S], Coroutine[Any, Any, None]],
) -> None:
    """Settings from env (exit 2 naming the bad variable), logging once, then run."""
    try:
        settings = settings_type.from_env()
    except ConfigError as err:
        print(f"surge-{component}: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    configure(settings.log.level, settings.log.format)
    try:
        asyncio.run(run(settings))
    except ConfigError as err:
        get_logger(component).error("config_error", error=str(err))
        raise SystemExit(2) from err
