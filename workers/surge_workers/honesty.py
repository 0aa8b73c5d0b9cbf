"""Was the acknowledgement's expected wait honest? Checked where the message is handled.

The intake stage records each conversation's first message with the wait it predicted
(:class:`~surge_workers.replies.FirstMessage`). When a worker stores that message it
compares the prediction with the wait the message really had (enqueue -> stored) and
observes |predicted - actual| / actual in ``surge_worker_eta_error_ratio``. One KV read
per conversation and process (cached); later messages of a conversation cost nothing.
A first message stored before its intake record exists (both consumers get it at once
when the queue is empty) is not observed: the metric undercounts, never invents.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import nats.errors
import nats.js.errors

from surge_workers.contract import routing_bucket
from surge_workers.delivery import Delivery, HandlerContext
from surge_workers.replies import FirstMessage, first_message_key
from surge_workers.reply_metrics import ComposerMetrics

METRICS_KEY: Final = "composer_metrics"
_FIRST_CACHE: Final = "first_messages"
_CACHE_SIZE: Final = 100_000


def composer_metrics(ctx: HandlerContext) -> ComposerMetrics | None:
    metrics = ctx.cache.get(METRICS_KEY)
    return metrics if isinstance(metrics, ComposerMetrics) else None


async def observe_prediction(ctx: HandlerContext, delivery: Delivery, stored_at: float) -> None:
    metrics = composer_metrics(ctx)
    enqueued = delivery.enqueued_at
    if metrics is None or enqueued is None:
        return
    cache: OrderedDict[tuple[str, str], str] = ctx.cache.setdefault(_FIRST_CACHE, OrderedDict())
    conversation = (delivery.tenant, delivery.conversation_id)
    if conversation in cache:
        return  # this process already saw (and judged) the conversation's first message
    try:
        kv = await ctx.kv(routing_bucket(ctx.settings.pipeline.stream))
        entry = await kv.get(first_message_key(delivery.tenant, delivery.conversation_id))
    except (nats.js.errors.KeyNotFoundError, nats.js.errors.BucketNotFoundError):
        return
    except (nats.errors.Error, TimeoutError):
        return  # a metric is never worth a retry of the message
    record = FirstMessage.decode(entry.value)
    if record is None:
        return
    cache[conversation] = record.msg_id
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    if record.msg_id != delivery.msg_id or record.expected_wait_s is None:
        return
    metrics.observe_error(delivery.priority, record.expected_wait_s, stored_at - enqueued)
