"""The expected-wait forecast in the degradation bucket (key ``eta``): write and read."""

from __future__ import annotations

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from surge_workers.contract import degradation_bucket
from surge_workers.eta import ETA_KEY, Forecast, decode_forecast, encode_forecast


async def publish_forecast(js: JetStreamContext, stream: str, forecast: Forecast) -> int:
    """Put the tick's forecast (operator, `surge demo`). Returns the KV revision."""
    kv = await js.key_value(degradation_bucket(stream))
    return await kv.put(ETA_KEY, encode_forecast(forecast))


async def read_forecast(js: JetStreamContext, stream: str) -> Forecast | None:
    """The last forecast, or None when there is none (or NATS cannot say)."""
    try:
        kv = await js.key_value(degradation_bucket(stream))
        entry = await kv.get(ETA_KEY)
    except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError):
        return None
    return decode_forecast(entry.value)
