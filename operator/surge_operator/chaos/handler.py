"""The handler the chaos workers run (``SURGE_HANDLER``): Surge's default handler (route
the conversation, store its transcript create-only on the message id) with two additions
a fault suite needs.

* It takes ``SURGE_WORK_MS`` first (like a downstream call), so a worker killed or frozen
  holds messages in flight, as a busy one does.
* A message whose text starts with ``poison`` raises `PoisonError`: the worker must
  dead-letter it, and nothing else may be lost around it.
* A delivery whose message was already stored (the transcript key existed: a redelivery
  after a kill, a stop or an ack that never arrived) is announced on ``chaos.absorbed``
  (core NATS, a count for the report; the effect itself is the transcript key).
"""

from __future__ import annotations

import asyncio

from surge_workers.delivery import Delivery, HandlerContext
from surge_workers.errors import PoisonError
from surge_workers.handlers import store_message

POISON = "poison"
ABSORBED_SUBJECT = "chaos.absorbed"


async def store_or_poison(delivery: Delivery, ctx: HandlerContext) -> None:
    await asyncio.sleep(ctx.settings.work_seconds)
    body = delivery.json()
    if isinstance(body, dict) and str(body.get("text", "")).startswith(POISON):
        raise PoisonError("chaos: a poison message (never processable)")
    if not await store_message(delivery, ctx):
        await ctx.nc.publish(ABSORBED_SUBJECT, delivery.scoped_id.encode())
