"""Dead letters: list them, and replay them into the pipeline (`surge dlq list|replay`).

A dead letter (see :func:`surge_workers.consumer.publish_dead_letter`) keeps the original
payload and headers plus why and where it died. Reading uses direct "next by subject" gets
on the dead-letter stream: no consumer is created, nothing is acknowledged or removed.

Replay re-publishes a dead letter to its original subject with

* a fresh, tenant-scoped ``Nats-Msg-Id``: ``<tenant>.<client id>.r<dead-letter seq>`` (the
  original id may still sit in the duplicate window, and replaying the same dead letter
  twice within it stays one message);
* the client's own id (``Surge-Msg-Id``), tenant, conversation and priority unchanged, so
  idempotent handlers still recognise the message;
* provenance: ``Surge-Replay-Of`` (``<dlq stream>/<seq>``), ``Surge-Replay-Reason`` (why
  it had died) and ``Surge-Replayed-At``; a replay that dies again carries them into its
  new dead letter.

Only after the stream confirmed the re-publish is the dead letter removed (unless
``keep``): a failed replay leaves it where it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from surge_workers.contract import (
    DLQ_TOKEN,
    Header,
    dead_letter_stream,
    parse_subject,
    scoped_id,
)
from surge_workers.errors import SurgeWorkersError

REPLAY_OF = "Surge-Replay-Of"
REPLAY_REASON = "Surge-Replay-Reason"
REPLAYED_AT = "Surge-Replayed-At"
ORIGINAL_MSG_ID = "Surge-Original-Msg-Id"
_DEAD_HEADERS = (
    Header.DEAD_REASON,
    Header.DEAD_SUBJECT,
    Header.DEAD_SEQ,
    Header.DEAD_DELIVERIES,
    ORIGINAL_MSG_ID,
)


class DeadLetterError(SurgeWorkersError):
    """A dead letter cannot be read or replayed (missing, or not a Surge dead letter)."""


@dataclass(frozen=True)
class DeadLetter:
    seq: int  # in the dead-letter stream
    priority: str
    tenant: str
    conversation_id: str
    msg_id: str  # the client's id
    reason: str
    subject: str  # where it came from, and where a replay goes
    original_seq: int
    deliveries: int
    replay_of: str | None  # set when this message had itself been replayed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Replayed:
    dead_letter_seq: int
    subject: str
    msg_id: str  # the fresh Nats-Msg-Id
    stream_seq: int
    duplicate: bool
    removed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def dead_letter_of(seq: int, subject: str, headers: dict[str, str]) -> DeadLetter:
    return DeadLetter(
        seq=seq,
        priority=subject.rsplit(".", 1)[-1],
        tenant=headers.get(Header.TENANT, ""),
        conversation_id=headers.get(Header.CONVERSATION, ""),
        msg_id=headers.get(Header.CLIENT_ID) or headers.get(ORIGINAL_MSG_ID, ""),
        reason=headers.get(Header.DEAD_REASON, ""),
        subject=headers.get(Header.DEAD_SUBJECT, ""),
        original_seq=_int(headers.get(Header.DEAD_SEQ)),
        deliveries=_int(headers.get(Header.DEAD_DELIVERIES)),
        replay_of=headers.get(REPLAY_OF),
    )


async def list_dead_letters(
    js: JetStreamContext,
    stream: str,
    prefix: str,
    *,
    tenant: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[DeadLetter]:
    """Up to ``limit`` dead letters after dead-letter sequence ``after``, oldest first."""
    name = dead_letter_stream(stream)
    subject = f"{prefix}.{DLQ_TOKEN}.>"
    found: list[DeadLetter] = []
    seq = after + 1
    while len(found) < limit:
        try:
            raw = await js.get_msg(name, seq=seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            break
        letter = dead_letter_of(int(raw.seq or 0), raw.subject or "", dict(raw.headers or {}))
        if tenant is None or letter.tenant == tenant:
            found.append(letter)
        seq = letter.seq + 1
    return found


def replay_headers(letter: DeadLetter, headers: dict[str, str], dlq: str) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k not in _DEAD_HEADERS}
    out[Header.MSG_ID] = f"{scoped_id(letter.tenant, letter.msg_id)}.r{letter.seq}"
    out[Header.CLIENT_ID] = letter.msg_id
    out[REPLAY_OF] = f"{dlq}/{letter.seq}"
    out[REPLAY_REASON] = letter.reason[:300]
    out[REPLAYED_AT] = f"{time.time():.6f}"
    return out


async def replay_dead_letters(
    js: JetStreamContext,
    stream: str,
    prefix: str,
    seqs: Iterable[int],
    *,
    keep: bool = False,
) -> list[Replayed]:
    """Replay the given dead letters, in order; raises DeadLetterError on the first one
    that is missing or malformed (those before it stay replayed)."""
    name = dead_letter_stream(stream)
    done: list[Replayed] = []
    for seq in seqs:
        try:
            raw = await js.get_msg(name, seq=seq)
        except nats.js.errors.NotFoundError as err:
            raise DeadLetterError(f"{name}: no dead letter {seq}") from err
        headers = dict(raw.headers or {})
        letter = dead_letter_of(seq, raw.subject or "", headers)
        try:
            parse_subject(prefix, letter.subject)
        except ValueError as err:
            raise DeadLetterError(
                f"{name}/{seq}: origin subject {letter.subject!r} is not in the pipeline"
            ) from err
        if not letter.msg_id:
            raise DeadLetterError(f"{name}/{seq}: no message id to replay under")
        fresh = replay_headers(letter, headers, name)
        ack = await js.publish(letter.subject, raw.data or b"", headers=fresh)
        removed = False
        if not keep:
            # Only now: the stream has confirmed the copy back in the pipeline.
            removed = bool(await js.delete_msg(name, seq))
        done.append(
            Replayed(
                dead_letter_seq=seq,
                subject=letter.subject,
                msg_id=fresh[Header.MSG_ID],
                stream_seq=int(ack.seq),
                duplicate=bool(ack.duplicate),
                removed=removed,
            )
        )
    return done


NatsFailure = (nats.errors.Error, TimeoutError, OSError)
