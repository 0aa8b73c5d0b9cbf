"""Request and response models of the gateway API (pydantic); the OpenAPI document is
generated from them (see openapi.py) and committed as openapi.json."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from surge_workers.contract import ID_PATTERN, Priority

Id = Annotated[str, Field(pattern=ID_PATTERN, examples=["c-1042"])]


#: Request bodies: cache only the keys' strings while parsing JSON. pydantic caches every
#: short string by default, and each message's id and text are new ones: a soak showed
#: the cache filling with them (the gateway's resident memory grew until it was full).
_REQUEST = ConfigDict(extra="forbid", cache_strings="keys")


class MessageIn(BaseModel):
    """One support message. ``id`` is the client's idempotency key: a retry with the same
    id within the stream's duplicate window is stored once."""

    model_config = _REQUEST

    id: Id = Field(description="Client message id (idempotency key), globally unique.")
    conversation_id: Id
    tenant: Id | None = Field(
        default=None, description="Must equal the tenant of the bearer token when given."
    )
    priority: Priority = Priority.NORMAL
    text: str = Field(
        min_length=1,
        description="Message text; above SURGE_MAX_TEXT_BYTES (UTF-8 bytes) the answer is 413.",
    )
    language: str | None = Field(
        default=None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$", examples=["en", "de-AT"]
    )
    channel: str | None = Field(default=None, max_length=32, pattern=r"^[a-z0-9_-]+$")


class BatchIn(BaseModel):
    """All or nothing: one invalid or refused message refuses the whole batch."""

    model_config = _REQUEST

    messages: list[MessageIn] = Field(min_length=1, max_length=500)


class Accepted(BaseModel):
    id: str
    stream: str
    seq: int = Field(description="Stream sequence of the stored message.")
    duplicate: bool = Field(description="True when this id was already stored (a retry).")


class BatchAccepted(BaseModel):
    results: list[Accepted]


class AcceptedDict(TypedDict):
    """Same shape and JSON as :class:`Accepted` (the documented model): the gateway answers
    from plain dicts, cheaper per message than a model instance each."""

    id: str
    stream: str
    seq: int
    duplicate: bool


class BatchAcceptedDict(TypedDict):
    """Same shape and JSON as :class:`BatchAccepted`."""

    results: list[AcceptedDict]


class TranscriptMessage(BaseModel):
    id: str
    seq: int
    priority: Priority
    team: str
    text: str
    language: str | None
    enqueued_at: float | None
    stored_at: float


TRANSCRIPT_PAGE = 100  # messages per transcript page unless ?limit= says otherwise
TRANSCRIPT_PAGE_MAX = 500


class Transcript(BaseModel):
    """One page of a conversation's stored messages, in stream order."""

    conversation_id: str
    team: str | None
    messages: list[TranscriptMessage]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as ?cursor= for the next page; null on the last page.",
    )


class Problem(BaseModel):
    """Error body of every 4xx/5xx answer."""

    error: str = Field(description="Machine-readable code, e.g. rate_limited.")
    detail: str = ""


class Health(BaseModel):
    status: str


class AgentReplyIn(BaseModel):
    """An agent's answer in a conversation. ``id`` is the idempotency key (per tenant): a
    retry with the same id is stored once."""

    model_config = _REQUEST

    id: Id = Field(description="Reply id (idempotency key), unique within the tenant.")
    text: str = Field(
        min_length=1,
        description="Reply text; above SURGE_MAX_TEXT_BYTES (UTF-8 bytes) the answer is 413.",
    )
    author: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.@ -]+$")


class ReplyAccepted(BaseModel):
    id: str
    seq: int = Field(description="Sequence in the replies stream (the SSE event id).")
    duplicate: bool = Field(description="True when this reply id was already stored (a retry).")


class ReplyEventData(BaseModel):
    """The ``data`` of one Server-Sent Event: a reply in the conversation. The event's
    ``id`` is its sequence in the replies stream and its ``event`` the kind."""

    kind: str = Field(description="ack | notice | agent")
    conversation_id: str
    in_reply_to: str = Field(description="The message answered (ack, notice) or the reply id.")
    text: str
    created_at: float
    priority: str | None = None
    position: int | None = Field(default=None, description="Place in line when acknowledged.")
    expected_wait_s: float | None = Field(
        default=None, description="Predicted seconds until the message is handled."
    )
    enqueued_at: float | None = None
    degradation_level: int = 0
    author: str | None = None
