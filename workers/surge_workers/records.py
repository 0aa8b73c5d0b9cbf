"""Small JSON records kept in KV buckets: one compact, key-sorted encoding, and a decoder that
answers None for an absent or unreadable value (these records only ever save work)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Self


class JsonRecord:
    """Mixin for frozen dataclasses stored as one JSON object."""

    def encode(self) -> bytes:
        record: Any = self  # a dataclass instance: every subclass is one
        return json.dumps(asdict(record), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> Self | None:
        if not raw:
            return None
        try:
            doc = json.loads(raw)
            return cls(**doc) if isinstance(doc, dict) else None
        except (TypeError, ValueError):
            return None
