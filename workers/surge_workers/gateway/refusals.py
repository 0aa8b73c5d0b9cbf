"""A refused request: the exception the refusal steps raise and the Problem body it becomes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from surge_workers.api_models import Problem


class Refused(Exception):  # noqa: N818 - control flow, turned into an HTTP answer
    def __init__(
        self, status: int, error: str, detail: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail or error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def problem(
    status: int, error: str, detail: str = "", headers: dict[str, str] | None = None
) -> web.Response:
    body = Problem(error=error, detail=detail).model_dump_json()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def validation_detail(err: ValidationError) -> str:
    parts = []
    for item in err.errors()[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()))
        parts.append(f"{where or 'body'}: {item.get('msg', '')}")
    return "; ".join(parts)


def parse_body(model: Any, body: bytes) -> Any:
    """``model`` validated from JSON ``body``: 400 when it is not JSON, 422 when it does not
    fit the schema (the detail names the fields)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        if any(e.get("type") == "json_invalid" for e in err.errors()):
            raise Refused(400, "malformed_json", validation_detail(err)) from err
        raise Refused(422, "invalid", validation_detail(err)) from err
