"""The JetStream side of a MessagingCluster, as pure data: spec -> `PipelineConfig`.

NATS objects are owned resources too; this is their builder. `surge_operator.jetstream`
provisions what it returns, and the credentials rule below is shared by the pod builders
(how pods receive credentials) and the operator's own connection (how it reads them).
"""

from __future__ import annotations

from dataclasses import replace

from surge_operator.api import MessagingClusterSpec, Region, SecretKeyRef
from surge_workers.contract import Priority as WirePriority
from surge_workers.pipeline import PipelineConfig, PriorityPolicy

#: Secret key names that mean "this is not a .creds file" (see `credentials_kind`).
TOKEN_KEY = "token"
PASSWORD_KEY = "password"
USER_KEY = "user"


def credentials_kind(ref: SecretKeyRef) -> str:
    """How a credentials Secret is used, decided by the key the spec points at:
    `token` -> bearer token, `password` -> user (key `user`) + password, anything else
    -> a NATS .creds file (JWT + nkey seed)."""
    if ref.key == TOKEN_KEY:
        return "token"
    if ref.key == PASSWORD_KEY:
        return "userpass"
    return "creds"


def pipeline_config(
    stream: str, spec: MessagingClusterSpec, region: Region | None = None
) -> PipelineConfig:
    """The pipeline in `region` (default: the primary); only the replica count differs
    between regions (managed regions default to R3)."""
    s = spec.stream
    base = PipelineConfig(stream=stream, subject_prefix=s.subject_prefix)
    # The spec's ack wait and max deliver apply to every priority; the per-priority nak
    # back-off keeps the data plane's defaults (critical retries faster than bulk).
    policies = {
        WirePriority(p.value): replace(
            base.policy(WirePriority(p.value)),
            ack_wait=float(s.ack_wait_seconds),
            max_deliver=s.max_deliver,
        )
        for p in WirePriority
    }
    return PipelineConfig(
        stream=stream,
        subject_prefix=s.subject_prefix,
        partitions=s.partitions,
        replicas=spec.stream_replicas(region),
        storage=s.storage.value,
        max_age=float(s.max_age_seconds),
        duplicate_window=float(min(s.duplicate_window_seconds, s.max_age_seconds)),
        max_msg_size=s.max_msg_size,
        max_bytes=s.max_bytes if s.max_bytes is not None else -1,
        policies=policies,
    )


__all__ = ["PipelineConfig", "PriorityPolicy", "credentials_kind", "pipeline_config"]
