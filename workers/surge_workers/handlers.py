"""Built-in handlers (SURGE_HANDLER=module:function).

``route_and_store`` (default): the seed's "routing" and "storing" services — pick a team
for the conversation (sticky, first decision wins, kept in the routing KV bucket) and store
the message in the conversation transcript (idempotent on the message id).
``simulated``: ``route_and_store`` after SURGE_WORK_MS of simulated service time (an
awaited sleep, like waiting on a downstream API), for demos and autoscaling tests.
``noop``: does nothing; the fair comparison to a bare pull+ack loop in benchmarks.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

import nats.errors
import nats.js.errors

from surge_workers.contract import (
    Feature,
    features,
    routing_bucket,
    sticky_key,
    transcripts_bucket,
)
from surge_workers.delivery import Delivery, HandlerContext
from surge_workers.errors import PoisonError, RetryableError
from surge_workers.honesty import observe_prediction
from surge_workers.routing import RoutingRules, choose_team, load_rules
from surge_workers.transcripts import TranscriptEntry, store_entry

_RULES = "routing_rules"
_STICKY = "sticky_teams"


async def noop(delivery: Delivery, ctx: HandlerContext) -> None:
    """Accept everything, do nothing."""


def _rules(ctx: HandlerContext) -> RoutingRules:
    rules = ctx.cache.get(_RULES)
    if rules is None:
        path = ctx.settings.routing_rules_file
        rules = ctx.cache[_RULES] = load_rules(path) if path else RoutingRules()
    assert isinstance(rules, RoutingRules)
    return rules


async def sticky_team(ctx: HandlerContext, tenant: str, conversation_id: str, proposed: str) -> str:
    """The tenant's conversation's team: the first one ever assigned wins, even across
    workers.

    Assignments are create-only, so a team once seen never changes: it is cached in the
    process (bounded) and the KV bucket is read once per conversation, not per message.
    Both the cache and the key are scoped by tenant: another tenant's conversation with
    the same id never pins this one.
    """
    key = sticky_key(tenant, conversation_id)
    cache: OrderedDict[str, str] = ctx.cache.setdefault(_STICKY, OrderedDict())
    team = cache.get(key)
    if team is not None:
        return team
    kv = await ctx.kv(routing_bucket(ctx.settings.pipeline.stream))
    try:
        team = (await kv.get(key)).value.decode()  # type: ignore[union-attr]
    except nats.js.errors.KeyNotFoundError:
        try:
            await kv.create(key, proposed.encode())
            team = proposed
        except nats.js.errors.KeyWrongLastSequenceError:
            # Another worker assigned it between our get and create: theirs wins.
            team = (await kv.get(key)).value.decode()  # type: ignore[union-attr]
    cache[key] = team
    if len(cache) > ctx.settings.cache_entries:
        cache.popitem(last=False)
    return team


def _payload(delivery: Delivery) -> dict[str, Any]:
    doc = delivery.json()
    if not isinstance(doc, dict) or not isinstance(doc.get("text", ""), str):
        raise PoisonError("payload must be a JSON object with a string 'text'")
    return doc


async def route(delivery: Delivery, ctx: HandlerContext) -> str:
    """The conversation's team (sticky: the first decision wins)."""
    if not delivery.conversation_id:
        raise PoisonError("missing Surge-Conversation header")
    return await _route(delivery, ctx, _payload(delivery))


async def _route(delivery: Delivery, ctx: HandlerContext, payload: dict[str, Any]) -> str:
    language = payload.get("language")
    proposed = choose_team(
        _rules(ctx),
        tenant=delivery.tenant,
        language=language if isinstance(language, str) else None,
        text=payload.get("text", ""),
        topic_routing=Feature.TOPIC_ROUTING in features(ctx.level()),
    )
    return await sticky_team(ctx, delivery.tenant, delivery.conversation_id, proposed)


async def route_and_store(delivery: Delivery, ctx: HandlerContext) -> None:
    await store_message(delivery, ctx)


async def store_message(delivery: Delivery, ctx: HandlerContext) -> bool:
    """`route_and_store`, telling whether this delivery stored the message (False: it was
    stored before, a duplicate absorbed by the transcript's create-only key)."""
    conversation = delivery.conversation_id
    if not conversation:
        raise PoisonError("missing Surge-Conversation header")
    payload = _payload(delivery)
    text = payload.get("text", "")
    language = payload.get("language")
    try:
        team = await _route(delivery, ctx, payload)
        entry = TranscriptEntry(
            msg_id=delivery.msg_id,
            seq=delivery.seq,
            conversation_id=conversation,
            tenant=delivery.tenant,
            priority=delivery.priority.value,
            team=team,
            text=text,
            language=language if isinstance(language, str) else None,
            enqueued_at=delivery.enqueued_at,
            stored_at=time.time(),
        )
        kv = await ctx.kv(transcripts_bucket(ctx.settings.pipeline.stream))
        stored = await store_entry(kv, entry, ttl=ctx.settings.transcript_ttl)
        if stored:
            await observe_prediction(ctx, delivery, entry.stored_at)
        return stored
    except (nats.errors.Error, TimeoutError) as err:
        # NATS trouble is transient by nature: retry with backoff.
        raise RetryableError(f"nats: {type(err).__name__}: {err}") from err


async def simulated(delivery: Delivery, ctx: HandlerContext) -> None:
    await asyncio.sleep(ctx.settings.work_seconds)
    await route_and_store(delivery, ctx)
