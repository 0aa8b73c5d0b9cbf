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
    BatchAccepted,
    BatchIn,
    Health,
    MessageIn,
    Problem,
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


def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (m, "validation" if m in (MessageIn, BatchIn) else "serialization")
            for m in (MessageIn, BatchIn, Accepted, BatchAccepted, Transcript, Problem, Health)
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
                        "503": _problem("NATS unavailable.", retry_after=True),
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
