"""The gateway's OpenAPI 3.1 document, generated from the pydantic models.

The generated document is committed as ``openapi.json`` (package data) and served at
``/openapi.json``; a test fails when the two drift. Regenerate with
``python -m surge_workers.openapi > workers/surge_workers/openapi.json``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from pydantic.json_schema import models_json_schema

from surge_workers import __version__
from surge_workers.api_models import (
    TRANSCRIPT_PAGE,
    TRANSCRIPT_PAGE_MAX,
    Accepted,
    AgentReplyIn,
    BatchAccepted,
    BatchIn,
    Health,
    MessageIn,
    Problem,
    ReplyAccepted,
    ReplyEventData,
    Transcript,
)
from surge_workers.contract import ID_PATTERN

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _problem(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json("Problem")}
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


_WRITE_ERRORS = {
    "400": _problem("Malformed JSON."),
    "401": _problem("Missing or unknown bearer token."),
    "403": _problem("The token's tenant differs from the message's tenant."),
    "413": _problem("Body, batch or message text too large."),
    "422": _problem("Schema validation failed (unknown priority, bad id, ...)."),
    "429": _problem(
        "Rate limited, or the priority is throttled/shed at the current degradation level.",
        retry_after=True,
    ),
    "503": _problem("The stream did not confirm the write; nothing to assume.", retry_after=True),
    "507": _problem(
        "The stream is full (its byte or message limit): new writes are refused, nothing "
        "queued was dropped.",
        retry_after=True,
    ),
}


#: One Server-Sent Event (OpenAPI before 3.2: the schema of an event stream describes each
#: event); ``data`` is a ReplyEventData JSON document.
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data", "event", "id"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "Replies-stream sequence."},
        "event": {"type": "string", "enum": ["ack", "notice", "agent"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": _ref("ReplyEventData"),
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}


def _conversation_parameter() -> dict[str, Any]:
    return {
        "name": "conversation_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": ID_PATTERN},
    }


def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (m, "validation" if m in (MessageIn, BatchIn, AgentReplyIn) else "serialization")
            for m in (
                MessageIn,
                BatchIn,
                Accepted,
                BatchAccepted,
                Transcript,
                Problem,
                Health,
                AgentReplyIn,
                ReplyAccepted,
                ReplyEventData,
            )
        ],
        ref_template=_REF,
    )
    components = schemas.get("$defs", {})
    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "surge-gateway",
            "version": __version__,
            "description": "Ingest API of a Surge messaging pipeline (NATS JetStream).",
        },
        "paths": {
            "/v1/messages": {
                "post": {
                    "operationId": "postMessage",
                    "summary": "Enqueue one message.",
                    "security": secured,
                    "requestBody": {"required": True, "content": _json("MessageIn")},
                    "responses": {
                        "202": {
                            "description": "Stored in the stream.",
                            "content": _json("Accepted"),
                        },
                        **_WRITE_ERRORS,
                    },
                }
            },
            "/v1/messages/batch": {
                "post": {
                    "operationId": "postBatch",
                    "summary": "Enqueue messages, all or nothing.",
                    "security": secured,
                    "requestBody": {"required": True, "content": _json("BatchIn")},
                    "responses": {
                        "202": {
                            "description": "All stored in the stream.",
                            "content": _json("BatchAccepted"),
                        },
                        **_WRITE_ERRORS,
                    },
                }
            },
            "/v1/conversations/{conversation_id}/transcript": {
                "get": {
                    "operationId": "getTranscript",
                    "summary": "The stored messages of a conversation, in stream order.",
                    "security": secured,
                    "parameters": [
                        {
                            "name": "conversation_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": ID_PATTERN},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": "Messages per page.",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": TRANSCRIPT_PAGE_MAX,
                                "default": TRANSCRIPT_PAGE,
                            },
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "required": False,
                            "description": "next_cursor of the previous page.",
                            "schema": {"type": "string", "pattern": "^[0-9]{1,20}$"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "One page of the transcript.",
                            "content": _json("Transcript"),
                        },
                        "401": _problem("Missing or unknown bearer token."),
                        "404": _problem("No such conversation for this tenant."),
                        "422": _problem("Invalid limit or cursor."),
                        "429": _problem(
                            "Too many requests without a valid token from this address.",
                            retry_after=True,
                        ),
                        "503": _problem("NATS unavailable.", retry_after=True),
                    },
                }
            },
            "/v1/conversations/{conversation_id}/events": {
                "get": {
                    "operationId": "getConversationEvents",
                    "summary": "The conversation's replies as Server-Sent Events, in order.",
                    "description": (
                        "Each event: `id` = sequence in the replies stream, `event` = kind "
                        "(ack, notice, agent), `data` = a ReplyEventData JSON object. Resume "
                        "after a disconnect with `Last-Event-ID`: no event is skipped or "
                        "repeated. Only the token's own tenant's conversation is ever read. "
                        "With follow=false the stored events are sent and the stream ends."
                    ),
                    "security": secured,
                    "parameters": [
                        _conversation_parameter(),
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                            "description": "Resume after this event id (stream sequence).",
                        },
                        {
                            "name": "follow",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean", "default": True},
                            "description": "Keep the stream open for new replies.",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "An event stream (text/event-stream).",
                            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
                        },
                        "400": _problem("Last-Event-ID is not a stream sequence."),
                        "401": _problem("Missing or unknown bearer token."),
                        "422": _problem("Invalid conversation id or follow flag."),
                        "503": _problem("NATS unavailable.", retry_after=True),
                    },
                }
            },
            "/v1/conversations/{conversation_id}/replies": {
                "post": {
                    "operationId": "postReply",
                    "summary": "An agent's reply; delivered to the conversation's event stream.",
                    "security": secured,
                    "parameters": [_conversation_parameter()],
                    "requestBody": {"required": True, "content": _json("AgentReplyIn")},
                    "responses": {
                        "202": {
                            "description": "Stored in the replies stream.",
                            "content": _json("ReplyAccepted"),
                        },
                        "400": _problem("Malformed JSON."),
                        "401": _problem("Missing or unknown bearer token."),
                        "413": _problem("Body or reply text too large."),
                        "422": _problem("Schema validation failed."),
                        "503": _problem(
                            "The replies stream did not confirm the write.", retry_after=True
                        ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness.",
                    "responses": {"200": {"description": "Alive.", "content": _json("Health")}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: connected to NATS.",
                    "responses": {
                        "200": {"description": "Ready.", "content": _json("Health")},
                        "503": {"description": "Not ready.", "content": _json("Health")},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics.",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def committed_document() -> dict[str, Any]:
    text = resources.files("surge_workers").joinpath("openapi.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


if __name__ == "__main__":
    print(render(), end="")
