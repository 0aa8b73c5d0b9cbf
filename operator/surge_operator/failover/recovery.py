"""Recover an old primary's tail: the messages it stored that never reached the mirror."""

from __future__ import annotations

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg

#: How far back `recover_tail` walks before giving up on finding the common prefix.
MAX_TAIL = 100_000


async def recover_tail(
    old: JetStreamContext, active: JetStreamContext, stream: str, *, max_tail: int = MAX_TAIL
) -> int:
    """Re-publish the messages `old` holds that the active region's stream lacks.

    Mirrors keep sequence numbers, so the streams share a prefix: walking back from the
    end of `old`, the first sequence whose message (subject, Nats-Msg-Id, payload) is the
    same in both streams ends the tail. Re-publishing keeps headers, so JetStream's
    duplicate window drops anything the active region already has (KV entries keep their
    operation headers, so deletes stay deletes).
    """
    info = await old.stream_info(stream)
    if info.state.messages == 0:
        return 0
    tail: list[RawStreamMsg] = []
    seq = info.state.last_seq
    while seq >= info.state.first_seq and len(tail) < max_tail:
        try:
            mine = await old.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            seq -= 1  # deleted or expired here: nothing to recover at this sequence
            continue
        if await _same_message(active, stream, seq, mine):
            break
        tail.append(mine)
        seq -= 1
    for msg in reversed(tail):  # original order, so per-conversation order holds
        headers = {
            k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-Expected")
        }
        await active.publish(msg.subject or "", msg.data or b"", headers=headers or None)
    return len(tail)


async def _same_message(js: JetStreamContext, stream: str, seq: int, msg: RawStreamMsg) -> bool:
    try:
        theirs = await js.get_msg(stream, seq)
    except nats.js.errors.NotFoundError:
        return False
    mine_id = (msg.headers or {}).get("Nats-Msg-Id")
    theirs_id = (theirs.headers or {}).get("Nats-Msg-Id")
    return bool(theirs.subject == msg.subject and mine_id == theirs_id and theirs.data == msg.data)
