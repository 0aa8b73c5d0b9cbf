"""Console entry points `surge-worker` and `surge-gateway` (configured by env, see settings)."""

from __future__ import annotations

import asyncio
import sys

from surge_workers.errors import ConfigError
from surge_workers.logs import configure, get_logger
from surge_workers.settings import GatewaySettings, WorkerSettings


def worker_main() -> None:
    from surge_workers.runtime import run_worker

    try:
        settings = WorkerSettings.from_env()
    except ConfigError as err:
        print(f"surge-worker: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    configure(settings.log.level, settings.log.format)
    try:
        asyncio.run(run_worker(settings))
    except ConfigError as err:
        get_logger("worker").error("config_error", error=str(err))
        raise SystemExit(2) from err


def gateway_main() -> None:
    from surge_workers.gateway import run_gateway

    try:
        settings = GatewaySettings.from_env()
    except ConfigError as err:
        print(f"surge-gateway: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    configure(settings.log.level, settings.log.format)
    try:
        asyncio.run(run_gateway(settings))
    except ConfigError as err:
        get_logger("gateway").error("config_error", error=str(err))
        raise SystemExit(2) from err
