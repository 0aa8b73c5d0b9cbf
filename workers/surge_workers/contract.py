"""The wire contract shared by the operator, the workers, the gateway and the load generator.

Everything here is pure (no nats, no I/O, no clock reads) so the operator and the
autoscaler can import it without pulling in the data plane.

Subjects
    ``<prefix>.<priority>.<partition>`` where priority is ``critical | normal | bulk`` and
    partition = crc32(tenant-scoped conversation id) mod N. One conversation therefore
    always lands on one subject, which is what keeps it ordered in the stream.
Tenant scoping
    Every identity a client chooses (message id, conversation id) is only unique within
    its tenant, so each is scoped before it names anything shared: :func:`scoped_id` joins
    ``key_token(tenant)`` and ``key_token(value)`` with a dot. A token never contains a
    dot and a hashed token starts with ``=``, which the id alphabet lacks, so no tenant
    can spell another tenant's scoped id. ``Nats-Msg-Id`` (JetStream dedup) is the scoped
    message id, ``Surge-Msg-Id`` the client's own; the worker's done-id cache, the KV keys
    and the partition hash all use the scoped forms.
Dead letters
    ``<prefix>.dlq.<priority>`` in their own stream ``<stream>-dlq`` (the token ``dlq`` can
    never be a priority, so the two streams' subjects never overlap).
Consumers
    one durable pull consumer per priority, ``surge-<priority>``, filtering
    ``<prefix>.<priority>.>``.
KV buckets
    ``<stream>-degradation`` (key ``level``; keys ``offered.<instance>``: each gateway's
    cumulative offered-write counters; key ``failover.epoch``: the failover epoch, the
    region that is the writer in it and the consumers' last ack floors there),
    ``<stream>-routing`` (sticky team per conversation) and ``<stream>-transcripts`` (one
    key per stored message).
Degradation levels
    0 normal · 1 throttle bulk · 2 shed bulk and non-essential features · 3 critical first.
    "Bulk" stands for the *sheddable* classes of the MessagingCluster (``priorities[].
    sheddable``; only bulk by default), published with the level. :func:`admission` says
    what the gateway does with a write, :func:`worker_share` how much of a worker's slots a
    priority may hold, :func:`features` what stays enabled. Critical is never throttled,
    shed or capped; a non-sheddable class is never refused outright (at most throttled)
    and never starved (at most held to a bounded share).
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final


class Priority(StrEnum):
    """Message classes, declared from most to least urgent (iteration order is pull order)."""

    CRITICAL = "critical"
    NORMAL = "normal"
    BULK = "bulk"

    @property
    def rank(self) -> int:
        """0 for the most urgent class; lower ranks are always served first."""
        return _RANK[self]


PRIORITIES: Final[tuple[Priority, ...]] = (Priority.CRITICAL, Priority.NORMAL, Priority.BULK)
_RANK: Final[dict[Priority, int]] = {p: i for i, p in enumerate(PRIORITIES)}


class Header:
    """Header names carried by every message (and by dead letters)."""

    MSG_ID: Final = "Nats-Msg-Id"  # JetStream de-duplicates on it within the duplicate window
    CLIENT_ID: Final = "Surge-Msg-Id"  # the client's id; Nats-Msg-Id is it scoped by tenant
    CONVERSATION: Final = "Surge-Conversation"
    TENANT: Final = "Surge-Tenant"
    PRIORITY: Final = "Surge-Priority"
    ENQUEUED_AT: Final = "Surge-Enqueued-At"  # unix seconds, set once by the first publisher
    # Dead-letter envelope: why and where the message died.
    DEAD_REASON: Final = "Surge-Dead-Reason"
    DEAD_SUBJECT: Final = "Surge-Dead-Subject"
    DEAD_SEQ: Final = "Surge-Dead-Seq"
    DEAD_DELIVERIES: Final = "Surge-Dead-Deliveries"


class Env:
    """The environment variables `surge-worker` and `surge-gateway` read (the meaning and
    defaults of each are in `surge_workers.settings`). The operator's builders, `surge
    demo` and the benchmarks set them through these names, so a rename is one edit."""

    # Connection (both)
    NATS_URL: Final = "SURGE_NATS_URL"
    NATS_CREDS_FILE: Final = "SURGE_NATS_CREDS_FILE"
    NATS_NKEY_FILE: Final = "SURGE_NATS_NKEY_FILE"
    NATS_USER: Final = "SURGE_NATS_USER"
    NATS_PASSWORD: Final = "SURGE_NATS_PASSWORD"
    NATS_TOKEN: Final = "SURGE_NATS_TOKEN"
    NATS_CA_FILE: Final = "SURGE_NATS_CA_FILE"
    CLUSTER: Final = "SURGE_CLUSTER"
    NAMESPACE: Final = "SURGE_NAMESPACE"
    REGION: Final = "SURGE_REGION"
    # Pipeline (both)
    STREAM: Final = "SURGE_STREAM"
    SUBJECT_PREFIX: Final = "SURGE_SUBJECT_PREFIX"
    PARTITIONS: Final = "SURGE_PARTITIONS"
    # Worker
    HANDLER: Final = "SURGE_HANDLER"
    COMPOSER: Final = "SURGE_COMPOSER"
    TEMPLATES_DIR: Final = "SURGE_TEMPLATES_DIR"
    CONCURRENCY: Final = "SURGE_CONCURRENCY"
    PREFETCH: Final = "SURGE_PREFETCH"
    MAX_BATCH: Final = "SURGE_MAX_BATCH"
    PULL_EXPIRES: Final = "SURGE_PULL_EXPIRES"
    PRIORITIES: Final = "SURGE_PRIORITIES"
    METRICS_PORT: Final = "SURGE_METRICS_PORT"
    METRICS_HOST: Final = "SURGE_METRICS_HOST"
    DRAIN_TIMEOUT: Final = "SURGE_DRAIN_TIMEOUT"
    COMPLETIONS: Final = "SURGE_COMPLETIONS"
    PROVISION: Final = "SURGE_PROVISION"
    ROUTING_RULES_FILE: Final = "SURGE_ROUTING_RULES_FILE"
    TRANSCRIPT_TTL: Final = "SURGE_TRANSCRIPT_TTL"
    WORK_MS: Final = "SURGE_WORK_MS"
    CACHE_ENTRIES: Final = "SURGE_CACHE_ENTRIES"
    # Gateway
    HTTP_HOST: Final = "SURGE_HTTP_HOST"
    HTTP_PORT: Final = "SURGE_HTTP_PORT"
    TOKENS_FILE: Final = "SURGE_TOKENS_FILE"
    MAX_BODY_BYTES: Final = "SURGE_MAX_BODY_BYTES"
    MAX_TEXT_BYTES: Final = "SURGE_MAX_TEXT_BYTES"
    MAX_BATCH_MESSAGES: Final = "SURGE_MAX_BATCH_MESSAGES"
    MAX_MSG_SIZE: Final = "SURGE_MAX_MSG_SIZE"
    RATE_LIMIT: Final = "SURGE_RATE_LIMIT"
    RATE_BURST: Final = "SURGE_RATE_BURST"
    UNAUTHENTICATED_RATE: Final = "SURGE_UNAUTHENTICATED_RATE"
    UNAUTHENTICATED_BURST: Final = "SURGE_UNAUTHENTICATED_BURST"
    #: The gateway's instance name for its offered counters (the pod name in Kubernetes).
    INSTANCE: Final = "SURGE_INSTANCE"
    POD_NAME: Final = "POD_NAME"
    # Logging (both)
    LOG_LEVEL: Final = "SURGE_LOG_LEVEL"
    LOG_FORMAT: Final = "SURGE_LOG_FORMAT"

    @classmethod
    def names(cls) -> frozenset[str]:
        """Every name above (for tests and for checking a builder's output)."""
        return frozenset(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))


# Ids become KV key tokens and subject tokens, so the gateway only accepts this alphabet.
ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,128}$"
_ID_RE: Final = re.compile(ID_PATTERN)
_PREFIX_RE: Final = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_STREAM_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,200}$")

DLQ_TOKEN: Final = "dlq"
DEGRADATION_KEY: Final = "level"
OFFERED_KEY_PREFIX: Final = "offered"


# --- naming -------------------------------------------------------------------------------


def is_valid_id(value: str) -> bool:
    return _ID_RE.match(value) is not None


def is_valid_prefix(prefix: str) -> bool:
    return _PREFIX_RE.match(prefix) is not None


def is_valid_stream_name(name: str) -> bool:
    return _STREAM_RE.match(name) is not None


def partition_for(conversation_id: str, partitions: int, *, tenant: str) -> int:
    """Stable partition of a tenant's conversation: crc32 is the same in every process and
    language."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    return zlib.crc32(scoped_id(tenant, conversation_id).encode()) % partitions


def subject_for(prefix: str, priority: Priority, partition: int) -> str:
    return f"{prefix}.{priority.value}.{partition}"


def message_subject(
    prefix: str, priority: Priority, conversation_id: str, partitions: int, *, tenant: str
) -> str:
    return subject_for(prefix, priority, partition_for(conversation_id, partitions, tenant=tenant))


def message_headers(
    *, tenant: str, msg_id: str, conversation_id: str, priority: Priority, enqueued_at: str
) -> dict[str, str]:
    """The headers every publisher sets (gateway, load generator, benchmarks)."""
    return {
        Header.MSG_ID: scoped_id(tenant, msg_id),
        Header.CLIENT_ID: msg_id,
        Header.CONVERSATION: conversation_id,
        Header.TENANT: tenant,
        Header.PRIORITY: priority.value,
        Header.ENQUEUED_AT: enqueued_at,
    }


def priority_filter(prefix: str, priority: Priority) -> str:
    """The filter subject of the durable consumer for one priority."""
    return f"{prefix}.{priority.value}.>"


def stream_subjects(prefix: str) -> list[str]:
    return [priority_filter(prefix, p) for p in PRIORITIES]


def parse_subject(prefix: str, subject: str) -> tuple[Priority, int]:
    """Inverse of :func:`subject_for`; raises ValueError on anything else."""
    head = prefix + "."
    if not subject.startswith(head):
        raise ValueError(f"subject {subject!r} is not under prefix {prefix!r}")
    parts = subject[len(head) :].split(".")
    if len(parts) != 2 or not parts[1].isdigit():
        raise ValueError(f"subject {subject!r} is not <prefix>.<priority>.<partition>")
    return Priority(parts[0]), int(parts[1])


def consumer_name(priority: Priority) -> str:
    """Durable consumer name; consumer names are scoped per stream so no stream in it."""
    return f"surge-{priority.value}"


def dead_letter_stream(stream: str) -> str:
    return f"{stream}-dlq"


def dead_letter_subject(prefix: str, priority: Priority) -> str:
    return f"{prefix}.{DLQ_TOKEN}.{priority.value}"


def dead_letter_msg_id(stream: str, seq: int) -> str:
    """Dedup id of a dead letter: two deliveries of the same stream message (a term lost
    after its dead-letter copy was confirmed) produce one dead letter."""
    return f"dlq-{stream}-{seq}"


def degradation_bucket(stream: str) -> str:
    return f"{stream}-degradation"


def routing_bucket(stream: str) -> str:
    return f"{stream}-routing"


def transcripts_bucket(stream: str) -> str:
    return f"{stream}-transcripts"


def kv_buckets(stream: str) -> tuple[str, str, str]:
    return degradation_bucket(stream), routing_bucket(stream), transcripts_bucket(stream)


def key_token(value: str) -> str:
    """A KV-key-safe token for an id: the id itself when it is in the id alphabet, otherwise
    ``=`` and a stable digest (ids published straight to NATS may contain anything). ``=``
    is not in the id alphabet, so a digest never equals an id: the mapping is one-to-one."""
    if _ID_RE.match(value):
        return value
    return "=" + hashlib.sha256(value.encode()).hexdigest()[:48]


def scoped_id(tenant: str, value: str) -> str:
    """``value`` (a message or conversation id) within ``tenant``: one-to-one, because
    neither token can hold the dot between them."""
    return f"{key_token(tenant)}.{key_token(value)}"


def transcript_key(tenant: str, conversation_id: str, msg_id: str) -> str:
    """One key per stored message: creating it is the idempotent effect of processing."""
    return f"t.{scoped_id(tenant, conversation_id)}.{key_token(msg_id)}"


def transcript_filter(tenant: str, conversation_id: str) -> str:
    return f"t.{scoped_id(tenant, conversation_id)}.*"


def sticky_key(tenant: str, conversation_id: str) -> str:
    return f"c.{scoped_id(tenant, conversation_id)}"


def completion_subject(stream: str) -> str:
    """Core-NATS subject on which workers (optionally) announce finished messages so an
    open-loop load generator can measure end-to-end latency without polling."""
    return f"_SURGE.done.{stream}"


# --- timestamps ---------------------------------------------------------------------------


def format_enqueued_at(unix_seconds: float) -> str:
    return f"{unix_seconds:.6f}"


def parse_enqueued_at(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


# --- degradation --------------------------------------------------------------------------


class DegradationLevel(IntEnum):
    NORMAL = 0
    THROTTLE_BULK = 1
    SHED_BULK = 2
    CRITICAL_ONLY = 3


class Admission(StrEnum):
    """What happens to a new write of one priority at one level."""

    ADMIT = "admit"
    THROTTLE = "throttle"  # admitted at a reduced per-tenant rate; over it -> 429
    SHED = "shed"  # refused with 429 + Retry-After; never queued


class Feature(StrEnum):
    """Non-essential work a handler may skip when degraded."""

    TOPIC_ROUTING = "topic_routing"  # keyword analysis of the text to pick a team


class _Role(StrEnum):
    """How a priority is treated when degraded: its row in the tables below."""

    CRITICAL = "critical"  # what degradation protects: never throttled, shed or capped
    PROTECTED = "protected"  # not sheddable: throttled and bounded at level 3, never shed
    SHEDDABLE = "sheddable"  # may be throttled and shed (bulk by default)


#: The classes that may be shed when the MessagingCluster does not say otherwise
#: (``priorities[].sheddable`` defaults to true for bulk only).
DEFAULT_SHEDDABLE: Final[frozenset[Priority]] = frozenset({Priority.BULK})


def _role(priority: Priority, sheddable: frozenset[Priority]) -> _Role:
    # Critical stays critical even if a spec marks it sheddable: shedding the one class
    # the levels exist to protect would turn "degrade gracefully" into an outage.
    if priority is Priority.CRITICAL:
        return _Role.CRITICAL
    return _Role.SHEDDABLE if priority in sheddable else _Role.PROTECTED


_ADMISSION: Final[dict[DegradationLevel, dict[_Role, Admission]]] = {
    DegradationLevel.NORMAL: {
        _Role.CRITICAL: Admission.ADMIT,
        _Role.PROTECTED: Admission.ADMIT,
        _Role.SHEDDABLE: Admission.ADMIT,
    },
    DegradationLevel.THROTTLE_BULK: {
        _Role.CRITICAL: Admission.ADMIT,
        _Role.PROTECTED: Admission.ADMIT,
        _Role.SHEDDABLE: Admission.THROTTLE,
    },
    DegradationLevel.SHED_BULK: {
        _Role.CRITICAL: Admission.ADMIT,
        _Role.PROTECTED: Admission.ADMIT,
        _Role.SHEDDABLE: Admission.SHED,
    },
    DegradationLevel.CRITICAL_ONLY: {
        _Role.CRITICAL: Admission.ADMIT,
        _Role.PROTECTED: Admission.THROTTLE,
        _Role.SHEDDABLE: Admission.SHED,
    },
}

#: Share of a worker's slots a throttled class may hold (bulk at level 1, the protected
#: classes at level 3): the rest stays reserved for the classes above it.
THROTTLED_SHARE: Final = 0.25

# Fraction of a worker's slots (its concurrent handlers) a priority may hold. Workers pull
# in strict priority, so critical always comes first; a class with a share below 1 is
# still served whenever there is room, but never holds more than its share, which keeps
# the rest free for the classes above it. Shed classes get 0: their queued messages stay
# in the stream (nothing is dropped) until the level falls again.
_WORKER_SHARE: Final[dict[DegradationLevel, dict[_Role, float]]] = {
    DegradationLevel.NORMAL: {_Role.CRITICAL: 1.0, _Role.PROTECTED: 1.0, _Role.SHEDDABLE: 1.0},
    DegradationLevel.THROTTLE_BULK: {
        _Role.CRITICAL: 1.0,
        _Role.PROTECTED: 1.0,
        _Role.SHEDDABLE: THROTTLED_SHARE,
    },
    DegradationLevel.SHED_BULK: {_Role.CRITICAL: 1.0, _Role.PROTECTED: 1.0, _Role.SHEDDABLE: 0.0},
    DegradationLevel.CRITICAL_ONLY: {
        _Role.CRITICAL: 1.0,
        _Role.PROTECTED: THROTTLED_SHARE,
        _Role.SHEDDABLE: 0.0,
    },
}

THROTTLED_RATE_FRACTION: Final = 0.1  # of the tenant's normal rate, while THROTTLE applies


def admission(
    level: DegradationLevel,
    priority: Priority,
    sheddable: frozenset[Priority] = DEFAULT_SHEDDABLE,
) -> Admission:
    """What the gateway does with a new write of `priority` at `level`, given which
    classes the MessagingCluster allows to be shed."""
    return _ADMISSION[level][_role(priority, sheddable)]


def worker_share(
    level: DegradationLevel,
    priority: Priority,
    sheddable: frozenset[Priority] = DEFAULT_SHEDDABLE,
) -> float:
    """Largest fraction of a worker's slots `priority` may hold at `level` (0: not pulled)."""
    return _WORKER_SHARE[level][_role(priority, sheddable)]


def retry_after_seconds(
    level: DegradationLevel,
    priority: Priority,
    sheddable: frozenset[Priority] = DEFAULT_SHEDDABLE,
) -> int:
    """Retry-After for a refused write: short while throttled, longer when shed, so
    clients back off harder the deeper the degradation."""
    decision = admission(level, priority, sheddable)
    if decision is Admission.ADMIT:
        return 0
    if decision is Admission.THROTTLE:
        return 1
    return 5 * int(level)


def features(level: DegradationLevel) -> frozenset[Feature]:
    if level >= DegradationLevel.SHED_BULK:
        return frozenset()
    return frozenset({Feature.TOPIC_ROUTING})


@dataclass(frozen=True)
class DegradationState:
    """The value stored under ``level`` in the degradation bucket (JSON)."""

    level: DegradationLevel = DegradationLevel.NORMAL
    reason: str = ""
    at: float = 0.0
    #: The classes the MessagingCluster allows to be shed (``priorities[].sheddable``).
    sheddable: frozenset[Priority] = DEFAULT_SHEDDABLE


def encode_degradation(state: DegradationState) -> bytes:
    return json.dumps(
        {
            "level": int(state.level),
            "reason": state.reason,
            "at": state.at,
            "sheddable": [p.value for p in PRIORITIES if p in state.sheddable],
        },
        sort_keys=True,
    ).encode()


def _decode_sheddable(value: object) -> frozenset[Priority]:
    """A list of priority names; anything else (absent: a publisher from before the field
    existed) means the default. Unknown names are ignored."""
    if not isinstance(value, list):
        return DEFAULT_SHEDDABLE
    known = {p.value: p for p in PRIORITIES}
    return frozenset(known[v] for v in value if isinstance(v, str) and v in known)


def decode_degradation(raw: bytes | None) -> DegradationState:
    """Lenient on purpose: a bare ``2`` is accepted, and garbage means level 0 rather than
    an outage of the data plane."""
    if not raw:
        return DegradationState()
    try:
        doc = json.loads(raw)
    except ValueError:
        return DegradationState()
    if isinstance(doc, int):
        doc = {"level": doc}
    if not isinstance(doc, dict):
        return DegradationState()
    try:
        level = DegradationLevel(int(doc.get("level", 0)))
    except (TypeError, ValueError):
        return DegradationState()
    reason = doc.get("reason", "")
    at = doc.get("at", 0.0)
    return DegradationState(
        level=level,
        reason=reason if isinstance(reason, str) else "",
        at=float(at) if isinstance(at, int | float) else 0.0,
        sheddable=_decode_sheddable(doc.get("sheddable")),
    )


# --- offered demand -----------------------------------------------------------------------


def offered_key(instance: str) -> str:
    """Key of one gateway instance's offered counters in the degradation bucket."""
    return f"{OFFERED_KEY_PREFIX}.{key_token(instance)}"


#: Per-message TTL of an ``offered.<instance>`` key: a gateway that is gone leaves no
#: key behind for long (readers already ignore counts older than a few seconds).
OFFERED_TTL: Final = 300.0


def offered_filter() -> str:
    return f"{OFFERED_KEY_PREFIX}.*"


@dataclass(frozen=True)
class OfferedCounts:
    """What one gateway instance was offered since it started: every write a valid,
    authenticated client tried, accepted or refused by degradation or rate limit.
    Totals only grow (a restart starts again from 0); ``at`` is unix seconds."""

    at: float
    counts: dict[Priority, int]


def encode_offered(offered: OfferedCounts) -> bytes:
    return json.dumps(
        {"at": offered.at, "counts": {p.value: offered.counts.get(p, 0) for p in PRIORITIES}},
        sort_keys=True,
    ).encode()


def decode_offered(raw: bytes | None) -> OfferedCounts | None:
    """None for anything that is not a well-formed counters document."""
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    at, counts = doc.get("at"), doc.get("counts")
    if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(counts, dict):
        return None
    known = {p.value: p for p in PRIORITIES}
    parsed: dict[Priority, int] = {}
    for name, value in counts.items():
        if name in known and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            parsed[known[name]] = value
    return OfferedCounts(at=float(at), counts=parsed)


# --- failover epoch -----------------------------------------------------------------------

#: Key in the degradation bucket: which region is the writer, in which failover epoch.
FAILOVER_KEY: Final = "failover.epoch"


@dataclass(frozen=True)
class FailoverRecord:
    """Written by the operator's leader into the active region's degradation bucket (and
    so mirrored into every standby). The data plane can fence on ``epoch``: a region whose
    record names another region, or an older epoch, is not the writer. ``floors`` are the
    per-priority consumer ack floors last seen in ``region``: after an operator restart
    mid-outage, promotion resumes from them instead of replaying the whole stream."""

    epoch: int
    region: str
    at: float
    floors: dict[Priority, int]
    #: The writer's message-stream last sequence when written: after an operator restart
    #: it still tells how far a standby is behind (the estimated RPO).
    last_seq: int = 0


def encode_failover(record: FailoverRecord) -> bytes:
    return json.dumps(
        {
            "epoch": record.epoch,
            "region": record.region,
            "at": record.at,
            "floors": {p.value: s for p, s in record.floors.items()},
            "last_seq": record.last_seq,
        },
        sort_keys=True,
    ).encode()


def decode_failover(raw: bytes | None) -> FailoverRecord | None:
    """None for anything that is not a well-formed record."""
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    epoch, region, at, floors = (
        doc.get("epoch"),
        doc.get("region"),
        doc.get("at"),
        doc.get("floors"),
    )
    if (
        isinstance(epoch, bool)
        or not isinstance(epoch, int)
        or epoch < 0
        or not isinstance(region, str)
        or isinstance(at, bool)
        or not isinstance(at, int | float)
        or not isinstance(floors, dict)
    ):
        return None
    known = {p.value: p for p in PRIORITIES}
    parsed = {
        known[name]: seq
        for name, seq in floors.items()
        if name in known and isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0
    }
    last_seq = doc.get("last_seq", 0)
    if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0:
        last_seq = 0
    return FailoverRecord(
        epoch=epoch, region=region, at=float(at), floors=parsed, last_seq=last_seq
    )
