"""The restore marker and the look-up the intake makes for a message that was in a backup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nats.js.errors
import pytest

from surge_workers.restored import RestoreMarker, restored_reply

MARKER = RestoreMarker(backup="b1", source="team-a/old", messages_last_seq=10, replies_last_seq=6)


def test_the_marker_covers_only_messages_that_were_in_the_backup() -> None:
    assert MARKER.covers(1)
    assert MARKER.covers(10)
    assert not MARKER.covers(11), "accepted after the restore: new work"
    assert not MARKER.covers(0)
    nothing_answered = RestoreMarker("b1", "team-a/old", messages_last_seq=10, replies_last_seq=0)
    assert not nothing_answered.covers(5)


def test_the_marker_round_trips_and_a_bad_record_is_no_marker() -> None:
    assert RestoreMarker.decode(MARKER.encode()) == MARKER
    assert RestoreMarker.decode(None) is None
    assert RestoreMarker.decode(b"not json") is None
    assert RestoreMarker.decode(b'{"backup": "b1"}') is None
    assert RestoreMarker.decode(b"[1, 2]") is None


@dataclass
class Stored:
    seq: int
    subject: str
    headers: dict[str, str]


@dataclass
class FakeStream:
    """next-by-subject reads over a list of stored messages, as JetStream answers them."""

    messages: list[Stored]
    reads: list[int] = field(default_factory=list)

    async def get_msg(self, stream: str, *, seq: int, subject: str, next: bool) -> Any:
        assert next
        self.reads.append(seq)
        for msg in self.messages:
            if msg.seq >= seq and msg.subject == subject:
                return msg
        raise nats.js.errors.NotFoundError()


def _reply(seq: int, subject: str, msg_id: str) -> Stored:
    return Stored(seq, subject, {"Nats-Msg-Id": msg_id})


@pytest.mark.parametrize(
    ("msg_id", "found"),
    [("r-acme-m2-ack", True), ("r-acme-m9-ack", False), ("r-acme-m7-ack", False)],
)
async def test_a_reply_is_found_only_on_its_subject_and_within_the_restored_replies(
    msg_id: str, found: bool
) -> None:
    js = FakeStream(
        [
            _reply(1, "p.reply.acme.c1", "r-acme-m1-ack"),
            _reply(2, "p.reply.acme.c2", "r-acme-m9-ack"),  # another conversation
            _reply(4, "p.reply.acme.c1", "r-acme-m2-ack"),
            _reply(8, "p.reply.acme.c1", "r-acme-m7-ack"),  # stored after the restore
        ]
    )
    assert await restored_reply(js, "S-replies", "p.reply.acme.c1", msg_id, MARKER) is found
    assert all(seq <= MARKER.replies_last_seq for seq in js.reads)
