"""Watch the degradation level in its KV bucket (written by the operator / `surge demo`).

Workers and the gateway keep the latest value in memory and obey it; a missing bucket or
key means level 0, and a broken watch is re-established with a delay instead of taking the
data plane down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from surge_workers.contract import (
    DEFAULT_SHEDDABLE,
    DEGRADATION_KEY,
    DegradationLevel,
    DegradationState,
    Priority,
    decode_degradation,
    degradation_bucket,
    encode_degradation,
)
from surge_workers.tasks import cancel_and_wait

_DELETED = ("DEL", "PURGE")


class DegradationWatcher:
    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        on_change: Callable[[DegradationState], None] | None = None,
        *,
        log: object | None = None,
        retry_delay: float = 2.0,
    ) -> None:
        self._js = js
        self._bucket = degradation_bucket(stream)
        self._on_change = on_change
        self._log = log
        self._retry_delay = retry_delay
        self._task: asyncio.Task[None] | None = None
        self.state = DegradationState()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"watch-{self._bucket}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    @property
    def level(self) -> DegradationLevel:
        return self.state.level

    def _set(self, state: DegradationState) -> None:
        if state == self.state:
            return
        previous, self.state = self.state, state
        if self._log is not None:
            self._log.info(  # type: ignore[attr-defined]
                "degradation_level_changed",
                level=int(state.level),
                previous=int(previous.level),
                reason=state.reason,
                sheddable=sorted(p.value for p in state.sheddable),
            )
        if self._on_change is not None:
            self._on_change(state)

    async def run(self) -> None:
        """Watch forever (cancel to stop)."""
        while True:
            try:
                kv = await self._js.key_value(self._bucket)
                watcher = await kv.watch(DEGRADATION_KEY)
                try:
                    async for entry in watcher:
                        if entry is None:
                            continue  # end of initial values
                        if entry.operation in _DELETED:
                            self._set(DegradationState(reason="level deleted"))
                        else:
                            self._set(decode_degradation(entry.value))
                finally:
                    await watcher.stop()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except (nats.errors.Error, OSError, TimeoutError) as err:
                if self._log is not None:
                    self._log.warning(  # type: ignore[attr-defined]
                        "degradation_watch_retry", bucket=self._bucket, error=str(err)
                    )
            await asyncio.sleep(self._retry_delay)


async def publish_degradation(
    js: JetStreamContext,
    stream: str,
    level: DegradationLevel,
    reason: str,
    *,
    at: float | None = None,
    sheddable: frozenset[Priority] = DEFAULT_SHEDDABLE,
) -> int:
    """Set the level and the classes it may shed (operator, `surge demo`, tests). Returns
    the KV revision."""
    kv = await js.key_value(degradation_bucket(stream))
    state = DegradationState(
        level=level,
        reason=reason,
        at=time.time() if at is None else at,
        sheddable=frozenset(sheddable),
    )
    return await kv.put(DEGRADATION_KEY, encode_degradation(state))


async def read_degradation(js: JetStreamContext, stream: str) -> DegradationState:
    try:
        kv = await js.key_value(degradation_bucket(stream))
        entry = await kv.get(DEGRADATION_KEY)
    except nats.js.errors.NotFoundError:
        return DegradationState()
    return decode_degradation(entry.value)
