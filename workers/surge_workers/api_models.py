"""Request and response models of the gateway API (pydantic); the OpenAPI document is
generated from them (see openapi.py) and committed as openapi.json."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from surge_workers.contract import ID_PATTERN, Priority

Id = Annotated[str, Field(pattern=ID_PATTERN, examples=["c-1042"])]


class MessageIn(BaseModel):
    """One support message. ``id`` is the client's idempotency key: a retry with the same
    id within the stream's duplicate window is stored once."""

    model_config = ConfigDict(extra="forbid")

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

    model_config = ConfigDict(extra="forbid")

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
