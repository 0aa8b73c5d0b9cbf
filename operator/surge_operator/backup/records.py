"""The outcome of the last backup runs, kept in NATS where the operator already looks.

A backup Job cannot patch the MessagingCluster (its pod has no Kubernetes credentials at
all), so it records each run in a small KV bucket next to the cluster's stream; the
operator reads it each reconcile to fill status, Events and metrics. Keys: ``last`` (the
latest run, success or failure) and ``last-success``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

KEY_LAST = "last"
KEY_LAST_SUCCESS = "last-success"


def records_bucket(stream: str) -> str:
    return f"{stream}-backups"


class RunRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: Literal["succeeded", "failed"]
    finished_at: str
    backup: str | None = None
    size_bytes: int | None = Field(default=None, ge=0)
    duration_seconds: float | None = Field(default=None, ge=0)
    target: str = Field(description="Where it went (store description, no credentials).")
    reason: str | None = Field(default=None, description="CamelCase reason of a failure.")
    message: str | None = None
    pruned: list[str] = Field(default_factory=list)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes) -> RunRecord:
        return cls.model_validate_json(raw)


async def read_records(js: Any, stream: str) -> tuple[RunRecord | None, RunRecord | None]:
    """(last run, last successful run); (None, None) before the first run wrote anything."""
    import nats.js.errors

    try:
        kv = await js.key_value(records_bucket(stream))
    except nats.js.errors.BucketNotFoundError:
        return None, None
    found: list[RunRecord | None] = []
    for key in (KEY_LAST, KEY_LAST_SUCCESS):
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            found.append(None)
            continue
        found.append(RunRecord.decode(entry.value) if entry.value else None)
    return found[0], found[1]
