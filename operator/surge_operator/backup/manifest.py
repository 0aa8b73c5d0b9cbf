"""The backup manifest and the pure rules around it (ids, object keys, retention).

Pure: no I/O, no clock reads; times come in as arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from surge_workers.contract import dead_letter_stream, routing_bucket, transcripts_bucket
from surge_workers.replies import replies_stream

MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"
_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


class PartRole(StrEnum):
    MESSAGES = "messages"
    DEAD_LETTER = "dead-letter"
    REPLIES = "replies"
    KV = "kv"


class StreamPart(BaseModel):
    """One stream's snapshot inside a backup."""

    model_config = ConfigDict(frozen=True)

    stream: str
    role: PartRole
    object: str = Field(description="Object name, relative to the backup's folder.")
    last_seq: int = Field(ge=0, description="The stream's last sequence when it was snapshotted.")
    messages: int = Field(ge=0)
    bytes: int = Field(ge=0, description="Size of the snapshot object.")
    sha256: str
    config: dict[str, Any]
    state: dict[str, Any]


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: int = MANIFEST_FORMAT
    id: str
    cluster: str = Field(description="<namespace>/<name> of the MessagingCluster.")
    stream: str = Field(description="The cluster's message stream.")
    subject_prefix: str
    started_at: str
    finished_at: str
    duration_seconds: float = Field(ge=0)
    parts: tuple[StreamPart, ...]

    @property
    def total_bytes(self) -> int:
        return sum(p.bytes for p in self.parts)

    def part(self, role: PartRole) -> StreamPart | None:
        return next((p for p in self.parts if p.role is role), None)

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        return cls.model_validate_json(raw)


def backup_order(stream: str) -> list[tuple[str, PartRole]]:
    """Streams in snapshot order (why: surge_operator.backup.runner). The degradation bucket is left
    out on purpose: it is live control state, and a restored stale level would throttle a
    healthy new cluster until the operator's next tick."""
    return [
        (stream, PartRole.MESSAGES),
        (dead_letter_stream(stream), PartRole.DEAD_LETTER),
        (replies_stream(stream), PartRole.REPLIES),
        (f"KV_{routing_bucket(stream)}", PartRole.KV),
        (f"KV_{transcripts_bucket(stream)}", PartRole.KV),
    ]


def restored_names(backed_up: str, into: str) -> dict[str, str]:
    """Each backed-up stream's name in the cluster restored into (same roles, same order)."""
    return {
        old: new
        for (old, _), (new, _) in zip(backup_order(backed_up), backup_order(into), strict=True)
    }


def kv_bucket(stream: str) -> str | None:
    """The bucket a KV stream holds (`KV_<bucket>`); None for any other stream."""
    return stream.removeprefix("KV_") if stream.startswith("KV_") else None


def backup_id(at: datetime, nonce: str) -> str:
    """Sortable, unique id: UTC start time plus 6 hex digits of the caller's nonce."""
    if len(nonce) < 6 or any(c not in "0123456789abcdef" for c in nonce[:6]):
        raise ValueError("nonce must start with 6 lowercase hex digits")
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + nonce[:6]


def is_backup_id(value: str) -> bool:
    return _ID_RE.match(value) is not None


def cluster_folder(namespace: str, name: str) -> str:
    """Where one cluster's backups live inside a target (below the target's own prefix)."""
    return f"{namespace}/{name}"


def snapshot_object(stream: str) -> str:
    return f"{stream}.snapshot"


def retention_plan(complete: Iterable[str], incomplete: Iterable[str], keep: int) -> list[str]:
    """Backup ids to delete so that only the newest `keep` complete backups remain.

    An incomplete backup (no manifest) is deleted only when it is older than the newest
    complete one: a younger one may be a backup still being written.
    """
    if keep < 1:
        raise ValueError("keep must be >= 1")
    done = sorted(complete)
    doomed = done[:-keep] if len(done) > keep else []
    newest = done[-1] if done else None
    stale = sorted(i for i in incomplete if newest is not None and i < newest)
    return sorted(doomed + stale)


def latest(ids: Sequence[str]) -> str | None:
    return max(ids) if ids else None
