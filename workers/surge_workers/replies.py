"""Replies to customers: names, the wire format, and the one publish every reply goes through.

Pure apart from :func:`publish_reply`. The replies of a conversation are published to
``<prefix>.reply.<tenant>.<conversation>`` in their own stream ``<stream>-replies``
(limits retention: max age, max replies per conversation, a byte cap), so a client can
read them in order, resume from any stream sequence, and one tenant's subjects never
cover another's. Tenant and conversation become subject tokens through
:func:`~surge_workers.contract.key_token` (an id outside ``[A-Za-z0-9_-]`` becomes a
stable digest), so no id can add a token or a wildcard to the subject.

Kinds
    ``ack``     the composer's acknowledgement of a new conversation (position, expected wait)
    ``notice``  the composer's "high volume" notice while degradation is at level 2 or more
    ``agent``   an agent's answer, POSTed through the gateway

Idempotency. Every reply carries a deterministic ``Nats-Msg-Id`` built from the tenant,
the message it answers and its kind (:func:`reply_msg_id`), and the replies stream keeps
a long duplicate window: a redelivered message composes the same replies again and
JetStream stores none of them twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Final

from surge_workers.contract import Header, key_token
from surge_workers.records import JsonRecord

REPLY_TOKEN: Final = "reply"
PUBLISH_TIMEOUT_S: Final = 5.0


class ReplyKind(StrEnum):
    ACK = "ack"
    NOTICE = "notice"
    AGENT = "agent"


REPLY_KINDS: Final[tuple[ReplyKind, ...]] = (ReplyKind.ACK, ReplyKind.NOTICE, ReplyKind.AGENT)


class ReplyHeader:
    KIND: Final = "Surge-Reply-Kind"
    IN_REPLY_TO: Final = "Surge-In-Reply-To"


def replies_stream(stream: str) -> str:
    return f"{stream}-replies"


def replies_subjects(prefix: str) -> list[str]:
    return [f"{prefix}.{REPLY_TOKEN}.>"]


def reply_subject(prefix: str, tenant: str, conversation_id: str) -> str:
    """One subject per tenant and conversation: the unit of order and of access."""
    return f"{prefix}.{REPLY_TOKEN}.{key_token(tenant)}.{key_token(conversation_id)}"


def reply_msg_id(tenant: str, in_reply_to: str, kind: ReplyKind) -> str:
    """Dedup id of a reply: the same message answered twice yields one stored reply."""
    return f"r-{key_token(tenant)}-{key_token(in_reply_to)}-{kind.value}"


@dataclass(frozen=True)
class Reply:
    """One reply as stored in the replies stream (JSON) and sent as an SSE event."""

    kind: ReplyKind
    tenant: str
    conversation_id: str
    #: The customer message it answers (composer replies) or the agent's reply id.
    in_reply_to: str
    text: str
    created_at: float
    priority: str | None = None
    #: 1-based place in the order of service when the acknowledgement was composed.
    position: int | None = None
    #: Predicted seconds until the message is handled; None when the model cannot say.
    expected_wait_s: float | None = None
    #: When the customer's message entered the stream (unix seconds).
    enqueued_at: float | None = None
    degradation_level: int = 0
    author: str | None = None  # agent replies: who answered

    def encode(self) -> bytes:
        doc = asdict(self)
        doc["kind"] = self.kind.value
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Reply:
        """Raises ValueError for anything that is not a reply document."""
        try:
            doc: Any = json.loads(raw)
        except ValueError as err:
            raise ValueError(f"reply is not JSON: {err}") from err
        if not isinstance(doc, dict):
            raise ValueError("reply must be a JSON object")
        try:
            doc["kind"] = ReplyKind(doc["kind"])
            return cls(**doc)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a reply document: {err}") from err

    def headers(self) -> dict[str, str]:
        return {
            Header.MSG_ID: reply_msg_id(self.tenant, self.in_reply_to, self.kind),
            Header.CONVERSATION: self.conversation_id,
            Header.TENANT: self.tenant,
            ReplyHeader.KIND: self.kind.value,
            ReplyHeader.IN_REPLY_TO: self.in_reply_to,
        }


@dataclass(frozen=True)
class Published:
    seq: int
    duplicate: bool


async def publish_reply(js: Any, prefix: str, reply: Reply) -> Published:
    """Store the reply (once: a repeat within the duplicate window answers duplicate)."""
    ack = await js.publish(
        reply_subject(prefix, reply.tenant, reply.conversation_id),
        reply.encode(),
        headers=reply.headers(),
        timeout=PUBLISH_TIMEOUT_S,
    )
    return Published(seq=int(ack.seq), duplicate=bool(ack.duplicate))


# --- the first message of a conversation ----------------------------------------------------


def first_message_key(tenant: str, conversation_id: str) -> str:
    """Routing-bucket key naming a conversation's first message (create-only: the first
    writer wins, so every worker agrees which message opened the conversation)."""
    return f"f.{key_token(tenant)}.{key_token(conversation_id)}"


@dataclass(frozen=True)
class FirstMessage(JsonRecord):
    """What the intake stage recorded about a conversation's first message: the same
    acknowledgement is recomposed from it after a redelivery, and the worker that handles
    the message compares the prediction with the wait it really had."""

    msg_id: str
    priority: str
    position: int | None
    expected_wait_s: float | None
    enqueued_at: float | None
    level: int
    team: str | None = None
