from __future__ import annotations

from typing import Any

from surge_operator.api import parse_spec
from surge_operator.resources import BuildContext

MINIMAL: dict[str, Any] = {
    "regions": [{"name": "east", "role": "primary", "nats": {"url": "nats://nats.east:4222"}}]
}


def make_ctx(spec: dict[str, Any] | None = None, **kw: Any) -> BuildContext:
    return BuildContext(
        name=kw.pop("name", "support"),
        namespace=kw.pop("namespace", "team-a"),
        uid=kw.pop("uid", "uid-1"),
        spec=parse_spec(spec or MINIMAL),
        **kw,
    )
