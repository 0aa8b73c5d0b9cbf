"""Render a nats-server configuration from plain data.

nats-server reads a relaxed JSON ("key: value", unquoted keys, nested blocks). Rendering
our own dict keeps the builder a dict-comparison-testable value and the text exact:
strings are JSON-quoted (so nothing in a name or password can break out of its value),
numbers and booleans stay bare, and `Raw` marks the few tokens that must stay unquoted
(durations such as `30s`, sizes such as `10G`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Raw:
    """A token written without quotes."""

    text: str


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any, indent: int) -> str:
    pad = "  " * indent
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = "\n".join(f"{pad}  {_key(k)}: {_value(v, indent + 1)}" for k, v in value.items())
        return "{\n" + inner + f"\n{pad}}}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        inner = "\n".join(f"{pad}  {_value(v, indent + 1)}" for v in value)
        return "[\n" + inner + f"\n{pad}]"
    raise TypeError(f"cannot render {type(value).__name__} in a nats-server config")


def render(config: dict[str, Any]) -> str:
    """The top level is a sequence of `key: value` lines (no outer braces)."""
    return "".join(f"{_key(k)}: {_value(v, 0)}\n" for k, v in config.items())
