"""The offered-counts reporter: each gateway's cumulative offered writes, in the KV."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable

import nats.js.errors
from nats.js import JetStreamContext

from surge_workers.contract import (
    OFFERED_TTL,
    Env,
    OfferedCounts,
    decode_offered,
    degradation_bucket,
    encode_offered,
    offered_filter,
    offered_key,
)
from surge_workers.gateway.service import Gateway
from surge_workers.ratelimit import replica_share


def instance_name() -> str:
    """This gateway's name among its replicas: the pod name when set, else host-pid."""
    for variable in (Env.POD_NAME, Env.INSTANCE):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return f"{socket.gethostname()}-{os.getpid()}"


class OfferedReporter:
    """Publishes the gateway's cumulative offered counts to ``offered.<instance>`` in the
    degradation bucket every ``interval`` seconds. A failed put is logged and retried on
    the next round; it never touches ingest."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        instance: str | None = None,
        interval: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.key = offered_key(instance or instance_name())
        self.interval = interval
        self.wall_clock = wall_clock
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"report-{self.key}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def report_once(self) -> None:
        js = self.gateway.js
        if js is None:
            return
        offered = OfferedCounts(at=self.wall_clock(), counts=dict(self.gateway.offered))
        bucket = degradation_bucket(self.gateway.settings.pipeline.stream)
        # A KV put with a per-message TTL (nats-py's kv.put has none): same subject.
        await js.publish(f"$KV.{bucket}.{self.key}", encode_offered(offered), msg_ttl=OFFERED_TTL)
        # The same keys are the replica registry: this replica's share of tenant rates.
        seen = await self._registry(js, bucket)
        self.gateway.limiter.set_share(replica_share(seen, self.wall_clock()))

    async def _registry(self, js: JetStreamContext, bucket: str) -> list[float]:
        stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
        info = await js.stream_info(stream, subjects_filter=f"{prefix}{offered_filter()}")
        seen: list[float] = []
        for subject in info.state.subjects or {}:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                raw = await js.get_last_msg(stream, subject)
                counts = decode_offered(raw.data)
                if counts is not None:
                    seen.append(counts.at)
        return seen

    async def run(self) -> None:
        log = self.gateway.log
        while True:
            try:
                await asyncio.wait_for(self.report_once(), timeout=max(self.interval, 1.0))
            except asyncio.CancelledError:
                raise
            except Exception as err:  # reporting must never stop ingest
                (log.debug if self._failing else log.warning)(
                    "offered_report_failed", key=self.key, error=str(err) or repr(err)
                )
                self._failing = True
            else:
                if self._failing:
                    log.info("offered_report_recovered", key=self.key)
                self._failing = False
            await asyncio.sleep(self.interval)
