"""The worker engine: priority-ordered JetStream pulls, lanes, ack/nak/term, drain.

Pulling (planned by the pure :mod:`surge_workers.scheduling`). Each priority has its own
inbox subscription (a callback, no per-message futures) and at most one open pull request
at a time, so the credit accounting is exact:
 * critical always has a waiting pull request (``expires`` = SURGE_PULL_EXPIRES) with its
   own credit pool, so a critical message is pushed to an idle slot the moment it lands,
   whatever bulk flood is queued behind it;
 * normal and bulk share the main pool with strict priority: bulk is only asked for once a
   ``no_wait`` request found normal drained; a drained class is watched with a waiting
   1-message "probe" so new work is noticed without polling;
 * the degradation level (with the cluster's sheddable classes) caps each class's share
   of the worker's handler slots: at level 3 a class that is not sheddable still holds up
   to a quarter of them, critical first; a shed class has share 0 and is not pulled at
   all (its messages stay queued in the stream, nothing is dropped). A pull request
   already waiting when the level rises cannot be recalled: for up to ``expires`` a shed
   class may still deliver its 1-message probe, which is then processed (a nak would
   burn a delivery).

Processing. Messages go to ``concurrency`` lanes by crc32(conversation), each lane
serving critical before normal before bulk. A lane runs one handler at a time, so the
messages of one conversation are handled in arrival order within a worker.

Acknowledgement. A handler gets 0.9 x ack_wait, then it is cancelled and retried (it
would be redelivered elsewhere anyway). ack only after the handler returned
(fire-and-forget publish: a lost ack means a redelivery, which the idempotent handler
absorbs); RetryableError or any other
exception -> nak with the priority's backoff; PoisonError, or a failure on the last
allowed delivery -> copy to the dead-letter subject (with the reason, deduplicated by
stream sequence) and term only once that copy is confirmed; if the copy fails the
message is nak'ed and comes back. The delivery budget (MaxDeliver) is counted here, not
by the server (the consumers have no server-side MaxDeliver, see provision): a message
delivered past its budget without ever being answered (a handler that hangs or crashes
the process) is dead-lettered on that delivery without running the handler again. No
message depends on the at-most-once MAX_DELIVERIES advisory.

Drain (SIGTERM). Stop issuing pull requests, wait for the open ones to end (at most
``expires``), finish everything already pulled, flush acks, exit. At the drain timeout
whatever is still buffered is nak'ed for immediate redelivery elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from surge_workers.contract import (
    DEFAULT_SHEDDABLE,
    PRIORITIES,
    DegradationLevel,
    DegradationState,
    Header,
    Priority,
    completion_subject,
    consumer_name,
    dead_letter_msg_id,
    dead_letter_subject,
)
from surge_workers.delivery import Delivery, Handler, HandlerContext
from surge_workers.errors import PoisonError
from surge_workers.failures import (
    Failure,
    InfraWatch,
    after_failure,
    before_handling,
    classify,
    election_advisories,
)
from surge_workers.metrics import WorkerMetrics
from surge_workers.pipeline import PriorityPolicy
from surge_workers.provision import META_BACKOFF, META_MAX_DELIVER, parse_backoff
from surge_workers.scheduling import ClassState, plan_pulls
from surge_workers.settings import WorkerSettings
from surge_workers.tasks import cancel_and_wait

_STATUS = "Status"
_DESCRIPTION = "Description"
_HEARTBEAT = "100"
_TERMINAL = ("404", "408", "409")
_REASON_MAX = 300


@dataclass
class _Pull:
    """The (single) open pull request of one priority."""

    open: bool = False
    remaining: int = 0
    received: int = 0
    batch: int = 0
    probe: bool = False
    no_wait: bool = False
    deadline: float = 0.0
    idle: bool = False  # the last no_wait request found the class drained


@dataclass
class _Lane:
    queues: tuple[deque[Msg], deque[Msg], deque[Msg]] = field(
        default_factory=lambda: (deque(), deque(), deque())
    )
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    current: Msg | None = None  # the message whose handler runs now


class Worker:
    def __init__(
        self,
        nc: Client,
        settings: WorkerSettings,
        handler: Handler,
        metrics: WorkerMetrics | None = None,
        *,
        log: Any,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.settings = settings
        self.handler = handler
        self.metrics = metrics or WorkerMetrics()
        pipeline = settings.pipeline
        self.stream = pipeline.stream
        self.log = log.bind(stream=self.stream, cluster=pipeline.cluster)
        self.level = DegradationLevel.NORMAL
        self.sheddable = DEFAULT_SHEDDABLE
        self.ctx = HandlerContext(
            nc=nc, js=self.js, settings=settings, log=self.log, level=lambda: self.level
        )
        self.capacity = settings.concurrency + settings.prefetch
        self._low_water = max(1, self.capacity // 2)
        # Holding at most this many, the planner would ask for more (room for a full batch
        # or low_water): a finished message wakes it then, not only once half is done.
        self._refill_at = max(
            self._low_water, self.capacity - min(self._low_water, settings.max_batch)
        )
        self.policies: dict[Priority, PriorityPolicy] = {}
        self._handler_timeout = dict.fromkeys(PRIORITIES, 30.0)
        self._pulls = {p: _Pull() for p in PRIORITIES}
        self._held = dict.fromkeys(PRIORITIES, 0)  # received and not finished, per priority
        self._subs: dict[Priority, Subscription] = {}
        self._advisories: list[Subscription] = []
        self._next_subject: dict[Priority, str] = {}
        self._inbox: dict[Priority, str] = {}
        self._lanes = [_Lane() for _ in range(settings.concurrency)]
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._lane_tasks: list[asyncio.Task[None]] = []
        self._done_ids: OrderedDict[str, None] = OrderedDict()
        self._pulling = False
        self._lanes_exit = False
        self.ready = False
        self.draining = False
        self._in_flight = 0
        # Read when scraped: two gauge updates (each takes a lock) per message saved.
        self.metrics.in_flight.set_function(lambda: self._in_flight)
        self._reconnects = 0
        self.infra = InfraWatch()  # when NATS last failed us: see surge_workers.failures

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the durable consumers (they must exist) and start pulling.

        Raises NotFoundError while a consumer is missing; calling it again resumes where
        it stopped (consumers already bound are kept).
        """
        for priority in self.settings.priorities:
            if priority in self._subs:
                continue
            name = consumer_name(priority)
            info = await self.js.consumer_info(self.stream, name)
            metadata = info.config.metadata or {}
            self.policies[priority] = PriorityPolicy(
                ack_wait=info.config.ack_wait or 30.0,
                max_deliver=_delivery_budget(metadata, info.config.max_deliver),
                backoff=parse_backoff(metadata.get(META_BACKOFF)) or PriorityPolicy().backoff,
            )
            self._handler_timeout[priority] = self.policies[priority].ack_wait * 0.9
            inbox = self.nc.new_inbox()
            self._inbox[priority] = inbox
            self._next_subject[priority] = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{name}"
            self._subs[priority] = await self.nc.subscribe(
                inbox,
                cb=self._callback(priority),
                pending_msgs_limit=self.capacity * 4 + 1024,
                pending_bytes_limit=-1,
            )
        if not self._advisories:
            await self._watch_elections()
        self._tasks.append(asyncio.create_task(self._keepalive(), name="surge-keepalive"))
        self._lane_tasks = [
            asyncio.create_task(self._lane_loop(lane), name=f"surge-lane-{i}")
            for i, lane in enumerate(self._lanes)
        ]
        self._pulling = True
        self._tasks.append(asyncio.create_task(self._pull_loop(), name="surge-pull"))
        self.ready = True
        self.log.info(
            "worker_started",
            priorities=[p.value for p in self.settings.priorities],
            concurrency=self.settings.concurrency,
            prefetch=self.settings.prefetch,
        )

    async def _watch_elections(self) -> None:
        """Mark NATS trouble when JetStream announces a leader election or lost quorum of
        one of the pipeline's streams, so that this worker, too, holds back from
        dead-lettering what the election pushed past its budget (surge_workers.failures)."""

        async def on_advisory(msg: Msg) -> None:
            self.infra.mark()
            self.log.info("nats_leadership_event", advisory=msg.subject)

        for subject in election_advisories(self.stream):
            self._advisories.append(await self.nc.subscribe(subject, cb=on_advisory))

    def on_degradation(self, state: DegradationState) -> None:
        self.level = state.level
        self.sheddable = state.sheddable
        self.metrics.degradation_level.set(int(state.level))
        self._changed.set()

    async def drain(self, grace: float | None = None) -> None:
        """Stop pulling, finish what was pulled, flush acks. Safe to call twice."""
        if self.draining:
            return
        self.draining = True
        self.ready = False
        grace = self.settings.drain_timeout if grace is None else grace
        deadline = time.monotonic() + grace
        self._pulling = False
        self._changed.set()
        self.log.info("worker_draining", held=sum(self._held.values()), grace=grace)
        # Open requests end at their expiry at the latest; their messages are processed.
        while time.monotonic() < deadline:
            open_requests = any(
                p.open and time.monotonic() < p.deadline for p in self._pulls.values()
            )
            if not open_requests and sum(self._held.values()) == 0:
                break
            await asyncio.sleep(0.02)
        self._lanes_exit = True
        for lane in self._lanes:
            lane.wake.set()
        left = await self._nak_buffered()
        if left:
            self.log.warning("drain_timeout_nak_buffered", messages=left)
        _, pending = await asyncio.wait(
            self._lane_tasks, timeout=max(0.1, deadline - time.monotonic())
        )
        # Handlers still running at the deadline are cancelled; their messages come back
        # after ack_wait.
        await cancel_and_wait(pending, grace=1.0)
        await self.stop_background()
        for sub in [*self._subs.values(), *self._advisories]:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await self.nc.flush(timeout=5)
        self.log.info("worker_drained", in_flight_cancelled=len(pending))

    async def stop_background(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    async def _nak_buffered(self) -> int:
        count = 0
        for lane in self._lanes:
            for queue, priority in zip(lane.queues, PRIORITIES, strict=True):
                while queue:
                    msg = queue.popleft()
                    self._held[priority] -= 1
                    with contextlib.suppress(nats.errors.Error):
                        await msg.nak()
                    count += 1
        return count

    # --- pulling --------------------------------------------------------------------------

    def _callback(self, priority: Priority) -> Any:
        pull = self._pulls[priority]
        rank = priority.rank
        lanes = self._lanes
        n_lanes = len(lanes)
        held = self._held
        changed = self._changed
        conversation_header = Header.CONVERSATION
        tenant_header = Header.TENANT

        async def on_message(msg: Msg) -> None:
            headers = msg.headers
            if not msg.data and headers and _STATUS in headers:
                self._on_status(priority, headers[_STATUS], headers.get(_DESCRIPTION, ""))
                return
            if pull.open:
                pull.received += 1
                pull.remaining -= 1
                if pull.remaining <= 0:
                    pull.open = False
                    changed.set()
            held[priority] += 1
            if n_lanes > 1:
                # The lane of a conversation within its tenant (two tenants' "c1" differ).
                key = (
                    ""
                    if not headers
                    else (
                        headers.get(tenant_header, "") + "\0" + headers.get(conversation_header, "")
                    )
                )
                lane = lanes[zlib.crc32(key.encode()) % n_lanes]
            else:
                lane = lanes[0]
            lane.queues[rank].append(msg)
            lane.wake.set()

        return on_message

    def _on_status(self, priority: Priority, status: str, description: str) -> None:
        if status == _HEARTBEAT:
            return
        pull = self._pulls[priority]
        if status in _TERMINAL:
            if status == "409" and "Leadership Change" in description:
                self.infra.mark()
            if status == "409" and "Exceeded MaxWaiting" not in description:
                self.log.warning(
                    "pull_request_ended", priority=priority.value, status=status, reason=description
                )
            if pull.open:
                pull.open = False
                self._changed.set()
            return
        if status == "503":  # no responders: the consumer has no leader (an election)
            self.infra.mark()
        self.log.warning("pull_status", priority=priority.value, status=status, reason=description)

    def _finish_request(self, priority: Priority) -> None:
        """Bookkeeping once a request of this priority is over (called by the pull loop)."""
        pull = self._pulls[priority]
        if pull.probe:
            pull.idle = pull.received == 0
        elif pull.no_wait:
            pull.idle = pull.received < pull.batch
        pull.probe = pull.no_wait = False

    async def _request(
        self, priority: Priority, batch: int, *, no_wait: bool, probe: bool = False
    ) -> None:
        pull = self._pulls[priority]
        expires = self.settings.pull_expires
        body: dict[str, Any] = {"batch": batch}
        if no_wait:
            body["no_wait"] = True
        else:
            body["expires"] = int(expires * 1e9)
        pull.open = True
        pull.remaining = pull.batch = batch
        pull.received = 0
        pull.no_wait = no_wait
        pull.probe = probe
        # Client-side safety net: a request lost in a reconnect never gets a status.
        pull.deadline = time.monotonic() + (expires if not no_wait else 0) + 3.0
        await self.nc.publish(
            self._next_subject[priority], json.dumps(body).encode(), reply=self._inbox[priority]
        )

    def _pool_held(self, priority: Priority) -> int:
        if priority is Priority.CRITICAL:
            return self._held[Priority.CRITICAL]
        return self._held[Priority.NORMAL] + self._held[Priority.BULK]

    async def _plan(self) -> None:
        """Issue the pull requests the current capacity and level allow (see scheduling)."""
        now = time.monotonic()
        # A reconnect loses the open pull requests (their server or our interest is gone):
        # ask again at once instead of waiting out their deadline.
        reconnects = int(getattr(self.nc, "stats", {}).get("reconnects", 0))
        lost = reconnects != self._reconnects
        self._reconnects = reconnects
        if lost:
            self.infra.mark()
        for priority, pull in self._pulls.items():
            if pull.open and (lost or now > pull.deadline):
                pull.open = False
            if not pull.open and (pull.probe or pull.no_wait):
                self._finish_request(priority)
        states = {
            p: ClassState(
                held=self._held[p],
                open_remaining=pull.remaining if pull.open else None,
                idle=pull.idle,
            )
            for p, pull in self._pulls.items()
        }
        for plan in plan_pulls(
            states,
            served=self.settings.priorities,
            level=self.level,
            capacity=self.capacity,
            low_water=self._low_water,
            max_batch=self.settings.max_batch,
            slots=self.settings.concurrency,
            sheddable=self.sheddable,
        ):
            await self._request(plan.priority, plan.batch, no_wait=plan.no_wait, probe=plan.probe)

    async def _pull_loop(self) -> None:
        while self._pulling:
            self._changed.clear()
            try:
                await self._plan()
            except Exception as err:  # pulling must survive any one failure
                self.log.warning("pull_request_failed", error=repr(err))
                await asyncio.sleep(0.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=0.5)

    # --- processing -----------------------------------------------------------------------

    async def _lane_loop(self, lane: _Lane) -> None:
        critical, normal, bulk = lane.queues
        process = self._process
        while True:
            if critical:
                msg, priority = critical.popleft(), Priority.CRITICAL
            elif normal:
                msg, priority = normal.popleft(), Priority.NORMAL
            elif bulk:
                msg, priority = bulk.popleft(), Priority.BULK
            elif self._lanes_exit:
                return
            else:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            lane.current = msg
            try:
                await process(msg, priority)
            except Exception as err:  # a lane must outlive any one message
                # Typically the ack/nak could not be sent (connection lost): the message
                # comes back after ack_wait and the idempotent handler absorbs the repeat.
                self.log.warning("message_settle_failed", priority=priority.value, error=repr(err))
            finally:
                lane.current = None

    async def _process(self, msg: Msg, priority: Priority) -> None:
        metrics = self.metrics
        started = time.time()
        self._in_flight += 1
        delivery = Delivery(msg, priority)
        outcome = "ok"
        try:
            headers = msg.headers
            # Idempotency within the tenant: another tenant may reuse the same client id.
            msg_id = delivery.scoped_id if headers and Header.MSG_ID in headers else None
            enqueued = headers.get(Header.ENQUEUED_AT) if headers else None
            if enqueued:
                with contextlib.suppress(ValueError):
                    metrics.queue_wait[priority].observe(max(0.0, started - float(enqueued)))
            if msg.metadata.num_delivered > 1:
                metrics.redeliveries[priority].inc()
            budget = self._budget(priority)
            if before_handling(delivery.num_delivered, budget, infra_recent=self._infra_recent()):
                # Past its budget: every earlier delivery ended unanswered (hung, crashed)
                # or its dead-letter copy failed. Park it now; never run it again.
                outcome = await self._dead_letter(
                    delivery,
                    f"no acknowledgement after {delivery.num_delivered - 1} deliveries "
                    f"(MaxDeliver {budget} reached: handler hung, crashed the worker, or "
                    "an earlier dead-letter copy failed)",
                    cause="max_deliver_timeout",
                )
            elif msg_id is not None and msg_id in self._done_ids:
                outcome = "duplicate"
                await msg.ack()
            else:
                # A handler outliving ack_wait would be redelivered while still running:
                # stop it first and retry (asyncio.timeout is a timer, not a task).
                deadline = asyncio.timeout(self._handler_timeout[priority])
                try:
                    async with deadline:
                        await self.handler(delivery, self.ctx)
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    outcome = await self._failed(delivery, err, timed_out=deadline.expired())
                else:
                    await msg.ack()
                    if msg_id is not None:
                        self._remember(msg_id)
            if self.settings.completions and outcome in ("ok", "duplicate"):
                await self.nc.publish(
                    completion_subject(self.stream),
                    f"{priority.value} {enqueued or ''} {time.time():.6f}".encode(),
                )
        finally:
            self._in_flight -= 1
            metrics.handling[priority].observe(time.time() - started)
            metrics.processed[(priority, outcome)].inc()
            self._held[priority] -= 1
            if not self._changed.is_set() and self._pool_held(priority) <= self._refill_at:
                self._changed.set()

    def _budget(self, priority: Priority) -> int:
        policy = self.policies.get(priority)
        return policy.max_deliver if policy is not None else -1

    def _remember(self, msg_id: str) -> None:
        done = self._done_ids
        done[msg_id] = None
        if len(done) > self.settings.cache_entries:  # absorbs redeliveries of lost acks
            done.popitem(last=False)

    def _infra_recent(self) -> bool:
        if not self.nc.is_connected:
            self.infra.mark()
        return self.infra.recent()

    async def _failed(self, delivery: Delivery, err: BaseException, *, timed_out: bool) -> str:
        """Dead-letter or retry a delivery whose handler raised (see surge_workers.failures)."""
        priority = delivery.priority
        policy = self.policies.get(priority) or PriorityPolicy()
        attempts = delivery.num_delivered
        failure = classify(err, handler_timed_out=timed_out, infra_recent=self._infra_recent())
        if failure is Failure.INFRA:
            self.infra.mark()
        reason = err.reason if isinstance(err, PoisonError) else f"{type(err).__name__}: {err}"
        if timed_out:
            reason = f"handler exceeded {self._handler_timeout[priority]:.1f}s (0.9 x ack_wait)"
        step = after_failure(failure, attempts, policy, infra_recent=self.infra.recent())
        if step.action == "dead_letter":
            if step.cause != "poison":
                reason = (
                    f"failed {attempts} deliveries (MaxDeliver {policy.max_deliver}, "
                    f"{failure.value} failure); last: {reason}"
                )
            return await self._dead_letter(delivery, reason, cause=step.cause)
        self.metrics.retries.labels(priority.value, failure.value).inc()
        self.log.warning(
            "message_retry",
            consumer=consumer_name(priority),
            priority=priority.value,
            seq=delivery.seq,
            msg_id=delivery.msg_id,
            attempt=attempts,
            failure=failure.value,
            delay=step.delay,
            error=reason[:_REASON_MAX],
        )
        await delivery.msg.nak(delay=step.delay)
        return "retry"

    async def _dead_letter(self, delivery: Delivery, reason: str, *, cause: str) -> str:
        """Copy to the dead-letter subject first, then term: never lose it in between."""
        msg = delivery.msg
        priority = delivery.priority
        reason = " ".join(reason.split())[:_REASON_MAX]
        seq = delivery.seq
        try:
            await publish_dead_letter(
                self.js,
                prefix=self.settings.pipeline.subject_prefix,
                stream=self.stream,
                priority=priority,
                subject=msg.subject,
                seq=seq,
                deliveries=delivery.num_delivered,
                data=msg.data,
                headers=dict(msg.headers or {}),
                reason=reason,
            )
        except (nats.errors.Error, TimeoutError) as err:
            # Could not park it: keep it in the stream and try again later.
            self.log.error("dead_letter_failed", seq=seq, error=str(err))
            await msg.nak(delay=self.policies.get(priority, PriorityPolicy()).nak_delay(99))
            return "retry"
        await self.nc.publish(msg.reply, b"+TERM " + reason.encode())
        self.metrics.dead_letters.labels(priority.value, cause).inc()
        self.log.warning(
            "message_dead_lettered",
            consumer=consumer_name(priority),
            priority=priority.value,
            seq=seq,
            msg_id=delivery.msg_id,
            reason=reason,
        )
        return "dead_letter"

    async def _keepalive(self) -> None:
        """Tell JetStream we still hold every buffered and running message (+WPI).

        Without it a message waiting behind slow handlers in a lane could pass ack_wait
        and be redelivered to another worker while this one still has it. Running
        handlers are bounded by the handler timeout instead; when this process dies the
        keepalives stop and ack_wait brings the messages back.
        """
        served = [self.policies[p].ack_wait for p in self.settings.priorities]
        interval = max(0.1, min(served, default=30.0) / 3)
        while True:
            await asyncio.sleep(interval)
            held = [m for lane in self._lanes for queue in lane.queues for m in queue]
            held += [lane.current for lane in self._lanes if lane.current is not None]
            for msg in held:
                if not msg.is_acked:
                    with contextlib.suppress(nats.errors.Error):
                        await msg.in_progress()


def _delivery_budget(metadata: dict[str, str], server_max_deliver: int | None) -> int:
    """The consumer's delivery budget: its metadata (current consumers), else the server's
    MaxDeliver (consumers provisioned before the budget moved to metadata); -1 = none."""
    try:
        return int(metadata[META_MAX_DELIVER])
    except (KeyError, ValueError):
        return server_max_deliver or -1


async def publish_dead_letter(
    js: Any,
    *,
    prefix: str,
    stream: str,
    priority: Priority,
    subject: str,
    seq: int,
    deliveries: int,
    data: bytes,
    headers: dict[str, str],
    reason: str,
) -> None:
    original_id = headers.pop(Header.MSG_ID, None)
    if original_id:
        headers["Surge-Original-Msg-Id"] = original_id
    headers[Header.MSG_ID] = dead_letter_msg_id(stream, seq)  # two sources -> one dead letter
    headers[Header.DEAD_REASON] = reason
    headers[Header.DEAD_SUBJECT] = subject
    headers[Header.DEAD_SEQ] = str(seq)
    headers[Header.DEAD_DELIVERIES] = str(deliveries)
    await js.publish(dead_letter_subject(prefix, priority), data, headers=headers)
