"""The intake stage never sends a second reply for a message: not when it is delivered
twice to one worker, nor when a fresh worker (the old one killed before its ack) gets it
again. JetStream is replaced by a small in-memory fake with its dedup and create-only
semantics; the real-server version of this is tests/integration/test_composer_pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import nats.js.errors
from nats.aio.msg import Msg

from surge_workers.composer import acknowledge
from surge_workers.contract import (
    DegradationLevel,
    DegradationState,
    Header,
    Priority,
    message_subject,
)
from surge_workers.intake import IntakeStage
from surge_workers.logs import get_logger
from surge_workers.replies import Reply, ReplyKind
from surge_workers.settings import PipelineSettings, WorkerSettings
from surge_workers.templates import TemplateStore

PREFIX = "t"


@dataclass
class FakeKV:
    values: dict[str, bytes] = field(default_factory=dict)

    async def get(self, key: str) -> Any:
        if key not in self.values:
            raise nats.js.errors.KeyNotFoundError
        return SimpleNamespace(value=self.values[key])

    async def create(self, key: str, value: bytes) -> int:
        if key in self.values:
            raise nats.js.errors.KeyWrongLastSequenceError
        self.values[key] = value
        return len(self.values)


@dataclass
class FakeJetStream:
    kv: FakeKV = field(default_factory=FakeKV)
    stored: list[tuple[str, bytes]] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)
    pending: int = 7

    async def key_value(self, bucket: str) -> FakeKV:
        if bucket.endswith("-degradation"):
            raise nats.js.errors.BucketNotFoundError
        return self.kv

    async def consumer_info(self, stream: str, name: str) -> Any:
        return SimpleNamespace(num_pending=self.pending, num_ack_pending=0)

    async def publish(self, subject: str, data: bytes, headers: dict[str, str], **_: float) -> Any:
        msg_id = headers[Header.MSG_ID]
        if msg_id in self.ids:  # JetStream's duplicate window
            return SimpleNamespace(seq=self.ids[msg_id], duplicate=True)
        self.stored.append((subject, data))
        self.ids[msg_id] = len(self.stored)
        return SimpleNamespace(seq=len(self.stored), duplicate=False)


def stage(js: FakeJetStream, level: DegradationLevel = DegradationLevel.NORMAL) -> IntakeStage:
    nc = SimpleNamespace(jetstream=lambda: js)
    settings = WorkerSettings(pipeline=PipelineSettings(stream="S", subject_prefix=PREFIX))
    return IntakeStage(
        nc,  # type: ignore[arg-type]
        settings,
        acknowledge,
        TemplateStore(),
        log=get_logger("test"),
        state=lambda: DegradationState(level=level),
        service_time=lambda _: 0.0,
    )


def message(msg_id: str, conversation: str = "c-1", delivered: int = 1) -> Msg:
    subject = message_subject(PREFIX, Priority.NORMAL, conversation, 16, tenant="acme")
    return Msg(
        _client=None,  # type: ignore[arg-type]
        subject=subject,
        reply=f"$JS.ACK.S.surge-intake.{delivered}.11.{delivered}.1700000000000000000.0",
        data=b'{"text": "help"}',
        headers={
            Header.MSG_ID: msg_id,
            Header.CONVERSATION: conversation,
            Header.TENANT: "acme",
            Header.ENQUEUED_AT: "1700000000.0",
        },
    )


async def test_a_message_delivered_twice_to_one_worker_is_answered_once() -> None:
    js = FakeJetStream()
    intake = stage(js)
    first = await intake.process(message("m1"))
    again = await intake.process(message("m1", delivered=2))
    assert [r.kind for r in first] == [ReplyKind.ACK]
    assert again == []
    assert len(js.stored) == 1


async def test_a_fresh_worker_after_a_crash_recomposes_the_same_reply_and_stores_none() -> None:
    js = FakeJetStream()
    await stage(js).process(message("m1"))
    js.pending = 500  # the queue changed meanwhile: the redelivery must not tell a new story
    survivor = stage(js)  # no memory of what the dead worker did
    assert await survivor.process(message("m1", delivered=2)) == []
    assert len(js.stored) == 1
    reply = Reply.decode(js.stored[0][1])
    assert reply.position == 14  # critical 7 + normal 7 ahead, as first composed


async def test_only_the_first_message_of_a_conversation_is_acknowledged() -> None:
    js = FakeJetStream()
    intake = stage(js)
    await intake.process(message("m1"))
    assert await intake.process(message("m2")) == []
    assert await stage(js).process(message("m3")) == []  # another worker agrees
    assert len(js.stored) == 1


async def test_at_level_2_the_ack_and_the_notice_are_each_stored_once() -> None:
    js = FakeJetStream()
    await stage(js, DegradationLevel.SHED_BULK).process(message("m1"))
    await stage(js, DegradationLevel.SHED_BULK).process(message("m1", delivered=2))
    kinds = sorted(Reply.decode(data).kind.value for _, data in js.stored)
    assert kinds == ["ack", "notice"]
