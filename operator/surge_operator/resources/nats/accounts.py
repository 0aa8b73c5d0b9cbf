"""Who may do what inside a managed NATS: one user per role, least privilege, pure data.

All Surge identities live in one account (`SURGE`, JetStream enabled); the operator's
administrative user also exists in the system account (`SYS`) to ask servers to reload
and to read cluster health. Permissions name subjects exactly (NATS wildcards only match
whole tokens, so each bucket's stream is named, never `KV_<stream>-*`):

    operator  everything in SURGE (it provisions streams, consumers and buckets)
    gateway   publish the ingest subjects, agents' replies and its offered counters, read
              the degradation level, read the replies stream through ordered consumers
              (Server-Sent Events), read (never write) its own cluster's transcripts for
              `GET /v1/conversations/{id}/transcript`; subscribe only to reply inboxes. It
              cannot write transcripts or touch routing.
    worker    pull, ack and dead-letter (the intake consumer too); publish replies; read and
              write the transcript and routing buckets; read the degradation level and the
              expected-wait forecast. It cannot publish to the ingest subjects.
    client    a user's own producer: publish to the ingest subjects, read its acks. Nothing else.
    backup    the backup and restore Jobs: snapshot and restore the cluster's streams and
              buckets, record runs in its own bucket. It cannot publish to the ingest
              subjects, pull from consumers or write transcripts.
    leaf      the leafnode link between regions (mirrors reach the primary's JetStream API)
    route     servers of one region authenticating their cluster routes to each other
    system    the system account (`$SYS.REQ.SERVER.<id>.RELOAD`, server and JetStream health)

`$JS.API.DIRECT.GET.<stream>.>` and `$JS.API.STREAM.MSG.GET.<stream>` are how KV reads
travel; `$JS.API.CONSUMER.CREATE.<stream>.>` is how a KV watcher starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from surge_workers.contract import (
    PRIORITIES,
    completion_subject,
    consumer_name,
    dead_letter_stream,
    degradation_bucket,
    priority_filter,
    routing_bucket,
    transcripts_bucket,
)
from surge_workers.failures import election_advisories
from surge_workers.intake import INTAKE_CONSUMER
from surge_workers.replies import replies_stream, replies_subjects

INBOX = "_INBOX.>"


class Role(StrEnum):
    OPERATOR = "operator"
    GATEWAY = "gateway"
    WORKER = "worker"
    CLIENT = "client"
    BACKUP = "backup"
    LEAF = "leaf"
    ROUTE = "route"
    SYSTEM = "system"


#: the roles that connect as Surge processes or users (not the leaf link, not SYS)
APP_ROLES: tuple[Role, ...] = (
    Role.OPERATOR,
    Role.GATEWAY,
    Role.WORKER,
    Role.CLIENT,
    Role.BACKUP,
)


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def to_config(self) -> dict[str, Any]:
        return {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }


def _kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def _kv_read(bucket: str) -> list[str]:
    kv = _kv_stream(bucket)
    return [
        f"$JS.API.STREAM.INFO.{kv}",
        f"$JS.API.DIRECT.GET.{kv}",
        f"$JS.API.DIRECT.GET.{kv}.>",
        f"$JS.API.STREAM.MSG.GET.{kv}",
    ]


def _kv_watch(bucket: str) -> list[str]:
    kv = _kv_stream(bucket)
    return [
        f"$JS.API.CONSUMER.CREATE.{kv}",
        f"$JS.API.CONSUMER.CREATE.{kv}.>",
        f"$JS.API.CONSUMER.DELETE.{kv}.*",
        f"$JS.API.CONSUMER.INFO.{kv}.*",
        f"$JS.FC.{kv}.>",
    ]


def _kv_write(bucket: str) -> list[str]:
    return [f"$KV.{bucket}.>"]


def ingest_subjects(prefix: str) -> list[str]:
    return [priority_filter(prefix, p) for p in PRIORITIES]


def gateway_permissions(stream: str, prefix: str) -> Permissions:
    level = degradation_bucket(stream)
    return Permissions(
        publish=(
            "$JS.API.INFO",
            f"$JS.API.STREAM.INFO.{stream}",
            *ingest_subjects(prefix),
            *_kv_read(level),
            *_kv_watch(level),
            f"$KV.{level}.offered.>",
            *replies_subjects(prefix),
            *_replies_read(stream),
            # the transcript route reads through a KV watcher; no $KV.<bucket>.> (no writes)
            *_kv_read(transcripts_bucket(stream)),
            *_kv_watch(transcripts_bucket(stream)),
        ),
        subscribe=(INBOX,),
    )


def _replies_read(stream: str) -> list[str]:
    """Ordered (ephemeral) consumers on the replies stream: what an SSE client reads."""
    replies = replies_stream(stream)
    return [
        f"$JS.API.STREAM.INFO.{replies}",
        f"$JS.API.CONSUMER.CREATE.{replies}",
        f"$JS.API.CONSUMER.CREATE.{replies}.>",
        f"$JS.API.CONSUMER.DELETE.{replies}.*",
        f"$JS.API.CONSUMER.INFO.{replies}.*",
        f"$JS.FC.{replies}.>",
    ]


def worker_permissions(stream: str, prefix: str) -> Permissions:
    dlq = dead_letter_stream(stream)
    level = degradation_bucket(stream)
    consumers = [*(consumer_name(p) for p in PRIORITIES), INTAKE_CONSUMER]
    return Permissions(
        publish=(
            "$JS.API.INFO",
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.STREAM.INFO.{dlq}",
            *(f"$JS.API.CONSUMER.INFO.{stream}.{c}" for c in consumers),
            *(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{c}" for c in consumers),
            f"$JS.ACK.{stream}.>",
            f"{prefix}.dlq.>",
            *replies_subjects(prefix),
            # after a restore: is a reply already among the restored ones (surge_workers.restored)
            f"$JS.API.STREAM.MSG.GET.{replies_stream(stream)}",
            completion_subject(stream),
            *_kv_read(level),
            *_kv_watch(level),
            *_kv_read(routing_bucket(stream)),
            *_kv_write(routing_bucket(stream)),
            *_kv_read(transcripts_bucket(stream)),
            *_kv_write(transcripts_bucket(stream)),
        ),
        # No MAX_DELIVERIES advisory: workers count the delivery budget themselves. Leader
        # elections of their own streams tell them NATS, not a message, is failing.
        subscribe=(INBOX, *election_advisories(stream)),
    )


def client_permissions(stream: str, prefix: str) -> Permissions:
    return Permissions(
        publish=("$JS.API.INFO", f"$JS.API.STREAM.INFO.{stream}", *ingest_subjects(prefix)),
        subscribe=(INBOX,),
    )


def backup_permissions(stream: str, prefix: str) -> Permissions:
    """JetStream's snapshot/restore API for exactly the streams a backup holds. Chunks of a
    snapshot are acknowledged on `$JS.SNAPSHOT.ACK.<stream>.>`; chunks of a restore are
    sent to `$JS.SNAPSHOT.RESTORE.<stream>.>`. A restore also stages a renamed bucket in
    `<kv stream>-restore` (backup/rename.py), deletes what it made when it fails, and
    leaves the restore marker in the routing bucket."""
    from surge_operator.backup.manifest import backup_order, kv_bucket
    from surge_operator.backup.records import records_bucket
    from surge_operator.backup.rename import temporary_name

    streams = [name for name, _ in backup_order(stream)]
    kv_streams = [s for s in streams if kv_bucket(s) is not None]
    staged = [temporary_name(s) for s in kv_streams]
    records = _kv_stream(records_bucket(stream))
    return Permissions(
        publish=(
            "$JS.API.INFO",
            *(f"$JS.API.STREAM.INFO.{s}" for s in (*streams, *staged)),
            *(f"$JS.API.STREAM.SNAPSHOT.{s}" for s in streams),
            *(f"$JS.SNAPSHOT.ACK.{s}.>" for s in streams),
            *(f"$JS.API.STREAM.RESTORE.{s}" for s in (*streams, *staged)),
            *(f"$JS.SNAPSHOT.RESTORE.{s}.>" for s in (*streams, *staged)),
            *(f"$JS.API.STREAM.DELETE.{s}" for s in (*streams, *staged)),
            *(f"$JS.API.STREAM.CREATE.{s}" for s in kv_streams),
            *(f"$JS.API.STREAM.UPDATE.{s}" for s in kv_streams),
            *_kv_write(routing_bucket(stream)),
            f"$JS.API.STREAM.CREATE.{records}",
            f"$JS.API.STREAM.INFO.{records}",
            *_kv_write(records_bucket(stream)),
        ),
        subscribe=(INBOX,),
    )


def role_permissions(role: Role, stream: str, prefix: str) -> Permissions | None:
    """Permissions of a role; None = unrestricted within its account (operator, leaf)."""
    if role is Role.GATEWAY:
        return gateway_permissions(stream, prefix)
    if role is Role.WORKER:
        return worker_permissions(stream, prefix)
    if role is Role.CLIENT:
        return client_permissions(stream, prefix)
    if role is Role.BACKUP:
        return backup_permissions(stream, prefix)
    return None
