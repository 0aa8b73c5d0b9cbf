"""Failover scenarios on real components: two regions of real nats-servers on loopback
(leafnode-linked, separate JetStream domains), the real `FailoverController` probing and
promoting, an at-least-once client and an idempotent worker. Faults are real: the primary's
nats-server gets SIGKILL, the standby is stopped and restarted (its link goes with it).

The client sends ids m0, m1, ... in conversations of 7, retrying a publish with the same
id (on whichever region is active) until it gets a PubAck: "accepted". The worker pulls
from the active region and makes an *effect* once per id, remembering done ids in the
transcripts KV bucket (mirrored across regions like in production); a delivery of a done
id is a duplicate absorbed. Every run ends with `checker.check`. The client and the
worker need only a `Flow` (control_plane_faults.py runs them against one server); here it
is a `Run`, whose active region is the in-process controller's (`operator_kill` has it
follow the status a failover process writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient

from surge_operator.chaos.checker import Effect, check
from surge_operator.chaos.regions import Regions, running_regions
from surge_operator.chaos.result import Result
from surge_operator.chaos.surge_profile import Ramp, peak_rate, rate_before
from surge_operator.failover import FailoverController
from surge_operator.policy.failover import FailoverConfig
from surge_workers import provision
from surge_workers.contract import (
    Header,
    Priority,
    consumer_name,
    message_subject,
    transcripts_bucket,
)
from surge_workers.pipeline import PipelineConfig

PIPELINE = PipelineConfig(
    stream="SURGE_CHAOS", subject_prefix="chaos", partitions=4, duplicate_window=120.0
)
CONFIG = FailoverConfig(probe_interval=0.25, failure_threshold=3)
CONVERSATIONS = 7
POSITION = "Surge-Chaos-Position"
CONVERSATION = "Surge-Chaos-Conversation"


class Flow(Protocol):
    """What the at-least-once client and the idempotent worker record, and where they go."""

    accepted: set[str]
    effects: list[Effect]
    absorbed: int
    fault_at: float | None
    recovered_at: float | None
    stop: asyncio.Event

    def url(self) -> str: ...


@dataclass
class Run:
    regions: Regions
    #: The region clients and workers use now.
    active: Callable[[], str]
    accepted: set[str] = field(default_factory=set)
    #: time.monotonic() of each id's first send, in send order.
    sent_at: list[float] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    absorbed: int = 0
    fault_at: float | None = None
    recovered_at: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self) -> str:
        return self.regions.servers[self.active()].url


async def connect(url: str) -> NatsClient:
    # nats-py's first connect retries a refused server up to max_reconnect_attempts times
    # (default 60, 2 s apart) even without allow_reconnect: 120 s stuck on a dead region
    # whenever the switch to the new one comes later than a client's retry.
    return await nats.connect(
        url,
        allow_reconnect=False,
        connect_timeout=1,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
    )


async def _ticker(run: Run, controller: FailoverController) -> None:
    while not run.stop.is_set():
        with contextlib.suppress(Exception):
            await controller.tick()
        await asyncio.sleep(CONFIG.probe_interval)


def scheduled(sent_at: list[float], due: list[float]) -> Callable[[int], Awaitable[None]]:
    """Pace: message i+1 no earlier than `due[i+1]` seconds after message 0 was sent (one
    held up by a retry is followed at once by the overdue ones, as queued arrivals are)."""

    async def pace(i: int) -> None:
        if i + 1 < len(due):
            delay = sent_at[0] + due[i + 1] - time.monotonic()
            await asyncio.sleep(max(delay, 0.0))

    return pace


async def at_least_once_client(
    run: Flow,
    count: int,
    rate: float,
    fault: Callable[[int], Awaitable[None]],
    until: asyncio.Event | None = None,
    *,
    pace: Callable[[int], Awaitable[None]] | None = None,
    sent_at: list[float] | None = None,
) -> None:
    """At-least-once: each id is retried (same id) until some region acknowledges it.
    Sends `count` ids, or fewer when `until` is set first. `fault(i)` runs before message
    i is first sent (its time appended to `sent_at`), then 1/rate s pass, or `pace(i)`."""
    client: NatsClient | None = None
    url = ""
    for i in range(count):
        if until is not None and until.is_set():
            break
        await fault(i)
        if sent_at is not None:
            sent_at.append(time.monotonic())
        msg_id, conversation = f"m{i}", f"c{i % CONVERSATIONS}"
        subject = message_subject(
            PIPELINE.subject_prefix, Priority.CRITICAL, conversation, PIPELINE.partitions, tenant=""
        )
        headers = {
            Header.MSG_ID: msg_id,
            CONVERSATION: conversation,
            POSITION: str(i // CONVERSATIONS),
        }
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if client is None or url != run.url():
                    if client is not None:
                        with contextlib.suppress(Exception):
                            await client.close()
                    url = run.url()
                    client = await connect(url)
                await client.jetstream(timeout=1.0).publish(subject, b"x", headers=headers)
                run.accepted.add(msg_id)
                if run.fault_at is not None and run.recovered_at is None:
                    run.recovered_at = time.monotonic()
                break
            except (nats.errors.Error, OSError, TimeoutError):
                client = None
                await asyncio.sleep(0.1)
        await (asyncio.sleep(1 / rate) if pace is None else pace(i))
    if client is not None:
        with contextlib.suppress(Exception):
            await client.close()


async def idempotent_worker(run: Flow) -> None:
    """Pull from the active region; one effect per id; done ids in the transcripts KV."""
    while not run.stop.is_set():
        url = run.url()
        try:
            client = await connect(url)
        except (nats.errors.Error, OSError, TimeoutError):
            await asyncio.sleep(0.2)
            continue
        try:
            js = client.jetstream(timeout=1.0)
            done = await js.key_value(transcripts_bucket(PIPELINE.stream))
            sub = await js.pull_subscribe_bind(
                consumer_name(Priority.CRITICAL), stream=PIPELINE.stream
            )
            while not run.stop.is_set() and url == run.url():
                try:
                    batch = await sub.fetch(50, timeout=0.5)
                except nats.errors.TimeoutError:
                    continue
                for msg in batch:
                    msg_id = (msg.headers or {}).get(Header.MSG_ID, "")
                    key = f"d.{msg_id}"
                    # The effect *is* the idempotency record (as the default handler's
                    # transcript write is): one atomic create; an existing key means done.
                    try:
                        await done.create(key, b"1")
                    except nats.js.errors.KeyWrongLastSequenceError:
                        run.absorbed += 1
                    else:
                        conversation = (msg.headers or {}).get(CONVERSATION, "")
                        position = int((msg.headers or {}).get(POSITION, "0"))
                        run.effects.append(Effect(msg_id, conversation, position))
                    await msg.ack_sync()
        except (nats.errors.Error, OSError, TimeoutError, nats.js.errors.Error):
            await asyncio.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                await client.close()


async def settle(run: Flow, within: float) -> None:
    """Until every accepted id took effect (bounded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if run.accepted and run.accepted <= {e.msg_id for e in run.effects}:
            return
        await asyncio.sleep(0.2)


def recovery_s(run: Flow) -> float | None:
    """From the fault to the first write acknowledged after it."""
    if run.fault_at is None or run.recovered_at is None:
        return None
    return run.recovered_at - run.fault_at


async def _scenario(
    name: str,
    count: int,
    rate: float,
    fault: Callable[[Run, int], Awaitable[None]],
    heal: Callable[[Run], Awaitable[None]],
    *,
    due: list[float] | None = None,
    extra: Callable[[Run], Mapping[str, object]] = lambda run: {},
) -> Result:
    """`count` ids at `rate` (or as `due`: seconds after the first) around the
    in-process controller; `fault(run, i)` before id i, `heal(run)` after the last."""
    with (
        tempfile.TemporaryDirectory(prefix="surge-chaos-") as tmp,
        running_regions(["east", "west"], Path(tmp)) as regions,
    ):
        client = await connect(regions.servers["east"].url)
        await provision.provision_pipeline(client.jetstream(timeout=2.0), PIPELINE)
        await client.close()
        controller = FailoverController(
            cluster=f"chaos/{name}",
            endpoints=regions.endpoints(),
            primary="east",
            pipeline=PIPELINE,
            config=CONFIG,
            probe_timeout=0.2,
        )
        run = Run(regions, lambda: controller.state.active)
        await controller.tick()
        tasks = [
            asyncio.create_task(_ticker(run, controller)),
            asyncio.create_task(idempotent_worker(run)),
        ]

        async def at(i: int) -> None:
            await fault(run, i)

        rpo: int | None = None
        try:
            pace = None if due is None else scheduled(run.sent_at, due)
            await at_least_once_client(run, count, rate, at, pace=pace, sent_at=run.sent_at)
            await heal(run)
            await settle(run, within=30.0)
            rpo = controller.last_rpo
        finally:
            run.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    verdict = check(run.accepted, run.effects, run.absorbed)
    return Result(name, verdict, recovery_s(run), rpo, extra=extra(run))


async def primary_kill(count: int) -> Result:
    """SIGKILL of the primary's nats-server a third of the way in; it comes back later."""

    async def fault(run: Run, i: int) -> None:
        if i == count // 3:
            run.regions.servers["east"].kill()
            run.fault_at = time.monotonic()

    async def heal(run: Run) -> None:
        run.regions.servers["east"].start()
        await wait_mirror(run, "east")

    return await _scenario("primary-kill-9", count, 200.0, fault, heal)


async def split_brain(count: int) -> Result:
    """The standby goes away (and its link with it) while the primary keeps acknowledging
    writes; then the primary dies and the standby returns and is promoted without them;
    finally the old primary heals and its unmirrored tail is merged by id."""

    async def fault(run: Run, i: int) -> None:
        if i == count // 4:
            run.regions.servers["west"].stop()
        if i == count // 2:
            run.regions.servers["east"].kill()
            run.fault_at = time.monotonic()
            run.regions.servers["west"].start()

    async def heal(run: Run) -> None:
        run.regions.servers["east"].start()
        await wait_mirror(run, "east")

    return await _scenario("split-brain-heal", count, 200.0, fault, heal)


#: The surge of primary-loss-during-surge: 60 msg/s for 1.5 s, ramping to 5x over 3 s.
SURGE = Ramp(base=60.0, factor=5.0, steady_s=1.5, ramp_s=3.0)


async def primary_loss_during_surge(count: int) -> Result:
    """primary-kill-9 at the peak of a surge: the offered rate ramps from `SURGE.base` to
    five times that, and the primary's nats-server gets SIGKILL with the first message due
    at the peak; it comes back later. The client retries the id it holds meanwhile, and
    the arrivals queued behind it follow at once."""
    kill_at = SURGE.peak_index(count)

    async def fault(run: Run, i: int) -> None:
        if i == kill_at:
            run.regions.servers["east"].kill()
            run.fault_at = time.monotonic()

    async def heal(run: Run) -> None:
        run.regions.servers["east"].start()
        await wait_mirror(run, "east")

    def extra(run: Run) -> dict[str, object]:
        at = run.fault_at if run.fault_at is not None else time.monotonic()
        return {
            "killed_at_message": kill_at,
            "rate_base": SURGE.base,
            "rate_peak_planned": SURGE.peak,
            # measured from the client's first sends, over the second before the kill
            "offered_rate_at_kill": round(rate_before(run.sent_at, at), 1),
            "offered_rate_peak": round(peak_rate(run.sent_at, at), 1),
        }

    return await _scenario(
        "primary-loss-during-surge",
        count,
        SURGE.base,
        fault,
        heal,
        due=SURGE.schedule(count),
        extra=extra,
    )


async def wait_mirror(run: Run, region: str, within: float = 20.0) -> None:
    """Until the healed region has been merged and rebuilt as a mirror of the active one."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if run.active() != region:
            with contextlib.suppress(Exception):
                client = await connect(run.regions.servers[region].url)
                try:
                    info = await client.jetstream(timeout=1.0).stream_info(PIPELINE.stream)
                    if info.config.mirror is not None:
                        return
                finally:
                    await client.close()
        await asyncio.sleep(0.25)
