"""The intake stage: route -> compose at once, for every message as it enters the stream.

Why its own consumer: the acknowledgement must reach the customer when the message
arrives, not after the message waited its turn in a surge (which is what the customer
is to be told about). So each worker also pulls from one more durable consumer,
``surge-intake``, which sees every new message of every priority right away (deliver
policy *new*: a pipeline upgraded with a backlog does not greet old conversations).
The priority consumers and their lanes still do the work (route -> store); the intake
only decides whether the message opens a conversation, where it stands in the order of
service and how long it should wait, asks the composer what to say, publishes that to
the replies stream and acks. Intake work is small and never throttled by degradation;
the composer itself decides what to leave out at high levels.

Exactly one reply per message and kind, even when a worker dies between composing and
acking:
 1. the first message of a conversation is named by a create-only KV record
    (:func:`~surge_workers.replies.first_message_key`) that also keeps the position and
    prediction, so a redelivery recomposes the very same acknowledgement;
 2. every reply is published with a deterministic ``Nats-Msg-Id`` into a stream whose
    duplicate window outlasts the intake consumer's redeliveries: a repeat is stored
    once;
 3. ids of messages already composed here are remembered (bounded) and acked at once;
 4. after a restore, a message that was in the backup looks for its reply among the
    restored replies first (:mod:`surge_workers.restored`): the duplicate window of step 2
    has long passed by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from surge_workers.composer import Composer, ComposeRequest
from surge_workers.contract import (
    PRIORITIES,
    DegradationState,
    Header,
    Priority,
    consumer_name,
    parse_enqueued_at,
    parse_subject,
    routing_bucket,
    worker_share,
)
from surge_workers.eta import Forecast, expected_wait
from surge_workers.forecast_kv import read_forecast
from surge_workers.replies import (
    FirstMessage,
    Reply,
    ReplyKind,
    first_message_key,
    publish_reply,
    replies_stream,
    reply_msg_id,
    reply_subject,
)
from surge_workers.restored import RestoreMarker, read_marker, restored_reply
from surge_workers.settings import WorkerSettings
from surge_workers.tasks import cancel_and_wait
from surge_workers.templates import TemplateStore

INTAKE_CONSUMER: Final = "surge-intake"
_POSITION_TTL_S: Final = 0.25
_FORECAST_TTL_S: Final = 0.5
#: After the first message, how long a pull waits for more to share its round trip.
_GATHER_S: Final = 0.05


@dataclass(frozen=True)
class Intake:
    """The parts of one message the intake needs (parsed once)."""

    tenant: str
    conversation_id: str
    msg_id: str
    priority: Priority
    enqueued_at: float | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.msg_id)


def parse_intake(msg: Msg, prefix: str) -> Intake | None:
    """None for a message the composer has nothing to say to (no conversation)."""
    headers = msg.headers or {}
    conversation = headers.get(Header.CONVERSATION, "")
    if not conversation:
        return None
    try:
        priority, _ = parse_subject(prefix, msg.subject)
    except ValueError:
        return None
    # The client's id (Surge-Msg-Id): replies name it; scoping is by tenant everywhere.
    msg_id = (
        headers.get(Header.CLIENT_ID)
        or headers.get(Header.MSG_ID)
        or f"seq-{msg.metadata.sequence.stream}"
    )
    return Intake(
        tenant=headers.get(Header.TENANT, ""),
        conversation_id=conversation,
        msg_id=msg_id,
        priority=priority,
        enqueued_at=parse_enqueued_at(headers.get(Header.ENQUEUED_AT)),
    )


class PullSubscription(Protocol):
    """The part of nats-py's pull subscription the intake uses (its signature)."""

    async def fetch(self, batch: int = 1, timeout: float | None = 5) -> list[Msg]: ...  # noqa: ASYNC109


async def pull_arrivals(
    sub: PullSubscription, batch: int, *, wait_s: float, gather_s: float
) -> list[Msg]:
    """The next messages as they arrive, up to ``batch``: waits up to ``wait_s`` for the
    first (raises TimeoutError if none comes), then at most ``gather_s`` for more.

    Why not one ``fetch(batch)``: nats-py keeps that pull open until the batch is full or
    the pull expires, so while messages trickle in (ten workers sharing the intake in a
    surge) the first one waited up to the whole expiry (2 s) before its acknowledgement
    was composed, from a queue that had moved on (seed 40: 14 % of the acknowledgements
    were composed after their message had been handled)."""
    first = await sub.fetch(1, timeout=wait_s)
    if batch <= 1:
        return first
    try:
        more = await sub.fetch(batch - 1, timeout=gather_s)
    except TimeoutError:
        more = []
    return [*first, *more]


class IntakeStage:
    def __init__(
        self,
        nc: Client,
        settings: WorkerSettings,
        composer: Composer,
        templates: TemplateStore,
        *,
        log: Any,
        state: Callable[[], DegradationState],
        service_time: Callable[[Priority], float | None],
        route: Callable[[Msg, Priority], Any] | None = None,
        on_reply: Callable[[ReplyKind], None] | None = None,
        batch: int = 64,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.settings = settings
        self.composer = composer
        self.templates = templates
        self.log = log.bind(consumer=INTAKE_CONSUMER)
        self.state = state
        self.service_time = service_time
        self.route = route
        self.on_reply = on_reply
        self.batch = batch
        self.stream = settings.pipeline.stream
        self.prefix = settings.pipeline.subject_prefix
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()
        #: (tenant, conversation) -> the id of its first message, as far as we know.
        self._first: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._positions: dict[Priority, int] = {}
        self._positions_at = float("-inf")
        self._forecast: Forecast | None = None
        self._forecast_at = float("-inf")
        self._routing: KeyValue | None = None
        self._marker: RestoreMarker | None = None
        self._marker_read = False
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self._stopping = False

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the intake consumer (raises NotFoundError while it is missing)."""
        await self.js.consumer_info(self.stream, INTAKE_CONSUMER)
        self._sub = await self.js.pull_subscribe_bind(INTAKE_CONSUMER, self.stream)
        self._task = asyncio.create_task(self._run(), name="surge-intake")
        self.log.info("intake_started")

    async def stop(self) -> None:
        """Finish the batch at hand, then stop (its acks are sent)."""
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5.0)
            await cancel_and_wait([self._task])
            self._task = None
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None

    async def _run(self) -> None:
        expires = self.settings.pull_expires
        while not self._stopping:
            try:
                msgs = await pull_arrivals(
                    self._sub, self.batch, wait_s=expires, gather_s=_GATHER_S
                )
            except TimeoutError:  # nats.errors.TimeoutError is one
                continue
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the stage must outlive any one failure
                self.log.warning("intake_fetch_failed", error=str(err) or repr(err))
                await asyncio.sleep(0.5)
                continue
            # Conversations in parallel, each one's messages in stream order: the message
            # that opens a conversation is recorded before its successors are looked at.
            groups: dict[str, list[Msg]] = {}
            for msg in msgs:
                headers = msg.headers or {}
                key = f"{headers.get(Header.TENANT, '')}\0{headers.get(Header.CONVERSATION, '')}"
                groups.setdefault(key, []).append(msg)
            await asyncio.gather(*(self._settle_in_order(group) for group in groups.values()))

    async def _settle_in_order(self, msgs: list[Msg]) -> None:
        for msg in msgs:
            await self._settle(msg)

    async def _settle(self, msg: Msg) -> None:
        try:
            await self.process(msg)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            # Nothing was acked: JetStream redelivers after ack_wait and the deterministic
            # reply ids absorb whatever part had already been published.
            self.log.warning(
                "intake_failed",
                seq=msg.metadata.sequence.stream,
                attempt=msg.metadata.num_delivered,
                error=str(err) or repr(err),
            )
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=1.0)
            return
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()

    # --- one message ------------------------------------------------------------------------

    async def process(self, msg: Msg) -> list[Reply]:
        """Compose and publish the message's replies (not acked here). Returns the replies
        newly stored."""
        intake = parse_intake(msg, self.prefix)
        if intake is None or intake.key in self._done:
            return []
        first = await self._first_message(intake, msg)
        state = self.state()
        sheddable = intake.priority in state.sheddable
        request = ComposeRequest(
            tenant=intake.tenant,
            conversation_id=intake.conversation_id,
            msg_id=intake.msg_id,
            priority=intake.priority,
            new_conversation=first is not None,
            level=state.level,
            sheddable=sheddable,
            position=first.position if first else None,
            expected_wait_s=first.expected_wait_s if first else None,
            team=first.team if first else None,
        )
        drafts = await self.composer(request, self.templates) if first is not None else ()
        stored: list[Reply] = []
        for draft in drafts:
            reply = Reply(
                kind=draft.kind,
                tenant=intake.tenant,
                conversation_id=intake.conversation_id,
                in_reply_to=intake.msg_id,
                text=draft.text,
                created_at=time.time(),
                priority=intake.priority.value,
                position=request.position if draft.kind is ReplyKind.ACK else None,
                expected_wait_s=request.expected_wait_s if draft.kind is ReplyKind.ACK else None,
                enqueued_at=intake.enqueued_at,
                degradation_level=int(state.level),
            )
            if await self._answered_before_restore(msg, reply):
                continue
            published = await publish_reply(self.js, self.prefix, reply)
            if not published.duplicate:
                stored.append(reply)
                if self.on_reply is not None:
                    self.on_reply(reply.kind)
        self._remember(intake.key)
        return stored

    async def _answered_before_restore(self, msg: Msg, reply: Reply) -> bool:
        if not self._marker_read:
            # Read once: workers start only after a restore finished (an error here naks
            # the message and the next attempt reads again).
            self._marker = await read_marker(await self._routing_kv())
            self._marker_read = True
        marker = self._marker
        if marker is None or not marker.covers(msg.metadata.sequence.stream):
            return False
        msg_id = reply_msg_id(reply.tenant, reply.in_reply_to, reply.kind)
        subject = reply_subject(self.prefix, reply.tenant, reply.conversation_id)
        found = await restored_reply(self.js, replies_stream(self.stream), subject, msg_id, marker)
        if found:
            self.log.info("reply_restored", msg_id=msg_id, backup=marker.backup)
        return found

    def _remember(self, key: tuple[str, str]) -> None:
        self._done[key] = None
        if len(self._done) > self.settings.cache_entries:
            self._done.popitem(last=False)

    async def _routing_kv(self) -> KeyValue:
        if self._routing is None:
            self._routing = await self.js.key_value(routing_bucket(self.stream))
        return self._routing

    async def _first_message(self, intake: Intake, msg: Msg) -> FirstMessage | None:
        """The record of the conversation's first message when ``msg`` is it, else None."""
        conversation = (intake.tenant, intake.conversation_id)
        known = self._first.get(conversation)
        if known is not None and known != intake.msg_id:
            return None  # a later message of a conversation we have seen opened
        kv = await self._routing_kv()
        key = first_message_key(intake.tenant, intake.conversation_id)
        record: FirstMessage | None = None
        try:
            entry = await kv.get(key)
            record = FirstMessage.decode(entry.value)
        except nats.js.errors.KeyNotFoundError:
            candidate = await self._candidate(intake, msg)
            try:
                await kv.create(key, candidate.encode())
                record = candidate
            except nats.js.errors.KeyWrongLastSequenceError:
                # Another worker recorded this conversation's first message meanwhile.
                record = FirstMessage.decode((await kv.get(key)).value)
        first_id = record.msg_id if record is not None else ""
        self._first[conversation] = first_id
        if len(self._first) > self.settings.cache_entries:
            self._first.popitem(last=False)
        return record if record is not None and record.msg_id == intake.msg_id else None

    async def _candidate(self, intake: Intake, msg: Msg) -> FirstMessage:
        state = self.state()
        position = await self._position(intake.priority, state)
        wait = await self._expected_wait(intake.priority, position, state)
        team = None
        if self.route is not None:
            team = await self.route(msg, intake.priority)
        return FirstMessage(
            msg_id=intake.msg_id,
            priority=intake.priority.value,
            position=position,
            expected_wait_s=None if wait is None else round(wait, 3),
            enqueued_at=intake.enqueued_at,
            level=int(state.level),
            team=team,
        )

    async def _position(self, priority: Priority, state: DegradationState) -> int | None:
        """1-based place in the order of service: the unfinished messages of this class
        and of every class served before it (the message itself included)."""
        now = time.monotonic()
        if now - self._positions_at > _POSITION_TTL_S:
            positions: dict[Priority, int] = {}
            for p in PRIORITIES:
                try:
                    info = await self.js.consumer_info(self.stream, consumer_name(p))
                except (nats.errors.Error, TimeoutError):
                    continue
                positions[p] = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            self._positions, self._positions_at = positions, now
        if priority not in self._positions:
            return None
        ahead = 0
        for p in PRIORITIES:
            # A class the level does not serve holds nobody up.
            if worker_share(state.level, p, state.sheddable) > 0 or p is priority:
                ahead += self._positions.get(p, 0)
            if p is priority:
                break
        return max(1, ahead)

    async def _forecast_now(self) -> Forecast | None:
        now = time.monotonic()
        if now - self._forecast_at > _FORECAST_TTL_S:
            self._forecast = await read_forecast(self.js, self.stream)
            self._forecast_at = now
        return self._forecast

    async def _expected_wait(
        self, priority: Priority, position: int | None, state: DegradationState
    ) -> float | None:
        forecast = await self._forecast_now()
        if forecast is None or position is None or not forecast.fresh(time.time()):
            return None
        cls = forecast.classes.get(priority)
        if cls is None:
            return None
        # The level the data plane obeys now decides the class's share of the pool.
        cls = replace(cls, share=worker_share(state.level, priority, state.sheddable))
        return expected_wait(
            position,
            cls,
            self.service_time(priority),
            concurrency=self.settings.concurrency,
        )
