"""Pod template overrides for the pods a MessagingCluster owns (part of the CRD model).

Like Strimzi's `template` and the RabbitMQ cluster-operator's `override`, but a typed,
validated subset instead of a free-form patch: the fields an SRE sets to place, size and
decorate pods, and nothing that could undo the hardening (no securityContext, no
hostPath, no host namespaces, no command). `api.py` puts one `PodTemplate` on each managed
component (`spec.workers.template`, `spec.gateway.template`); the chart's
`dataPlane.podTemplate` is the operator-wide default underneath them.

Env vars may not read Secrets (`secretKeyRef`): a MessagingCluster's pods only ever see
the NATS credentials and tenant tokens the spec names; anything else a handler needs
comes from a mounted Secret volume the template names explicitly.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: volumes the operator itself mounts (pods.py); a template may not shadow them
RESERVED_VOLUMES = frozenset({"tmp", "nats-creds", "tenant-tokens"})
_ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
Quantity = int | str


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class PodMetadata(_Model):
    labels: dict[str, str] = Field(default_factory=dict, description="Extra pod labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra pod annotations.")


class Toleration(_Model):
    key: str | None = Field(default=None, max_length=316, description="Taint key.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Match rule.")
    value: str | None = Field(default=None, max_length=63, description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="How long a NoExecute taint is tolerated."
    )


class LabelSelector(_Model):
    match_labels: dict[str, str] | None = Field(default=None, description="Exact labels.")
    match_expressions: list[dict[str, Any]] | None = Field(
        default=None, description="Set-based requirements (key, operator, values)."
    )


class TopologySpreadConstraint(_Model):
    max_skew: int = Field(ge=1, description="Largest allowed difference between domains.")
    topology_key: str = Field(min_length=1, max_length=316, description="Node label key.")
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        default="ScheduleAnyway", description="What to do when the skew cannot be kept."
    )
    label_selector: LabelSelector | None = Field(
        default=None, description="Pods counted; defaults to this component's pods."
    )
    min_domains: int | None = Field(default=None, ge=1, description="Domains to spread over.")


class Resources(_Model):
    requests: dict[str, Quantity] | None = Field(default=None, description="e.g. cpu: 100m.")
    limits: dict[str, Quantity] | None = Field(default=None, description="e.g. memory: 256Mi.")


class KeyToPath(_Model):
    key: str = Field(min_length=1, description="Key in the source.")
    path: str = Field(min_length=1, pattern=r"^[^/].*$", description="Relative file path.")


class ConfigMapVolume(_Model):
    name: str = Field(min_length=1, max_length=253, description="ConfigMap name.")
    items: list[KeyToPath] | None = Field(default=None, description="Keys to project.")
    optional: bool | None = Field(default=None, description="Start even if it is missing.")


class SecretVolume(_Model):
    secret_name: str = Field(min_length=1, max_length=253, description="Secret name.")
    items: list[KeyToPath] | None = Field(default=None, description="Keys to project.")
    optional: bool | None = Field(default=None, description="Start even if it is missing.")


class EmptyDirVolume(_Model):
    medium: Literal["", "Memory"] | None = Field(default=None, description="'' or Memory.")
    size_limit: Quantity | None = Field(default=None, description="e.g. 1Gi.")


class PvcVolume(_Model):
    claim_name: str = Field(min_length=1, max_length=253, description="PVC name.")
    read_only: bool | None = Field(default=None, description="Mount read-only.")


class Volume(_Model):
    """One extra volume: exactly one source (no hostPath: pods never touch the node)."""

    name: str = Field(min_length=1, max_length=63, pattern=_NAME, description="Volume name.")
    config_map: ConfigMapVolume | None = Field(default=None, description="From a ConfigMap.")
    secret: SecretVolume | None = Field(default=None, description="From a Secret.")
    empty_dir: EmptyDirVolume | None = Field(default=None, description="Scratch space.")
    persistent_volume_claim: PvcVolume | None = Field(default=None, description="A PVC.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Self:
        sources = [self.config_map, self.secret, self.empty_dir, self.persistent_volume_claim]
        if sum(s is not None for s in sources) != 1:
            raise ValueError(
                f"volume {self.name}: set exactly one of configMap, secret, emptyDir, "
                "persistentVolumeClaim"
            )
        return self


class VolumeMount(_Model):
    name: str = Field(min_length=1, max_length=63, description="Volume name.")
    mount_path: str = Field(min_length=1, pattern=r"^/.*$", description="Absolute path.")
    sub_path: str | None = Field(default=None, description="Path within the volume.")
    read_only: bool | None = Field(default=None, description="Mount read-only.")


class ConfigMapKeyRef(_Model):
    name: str = Field(min_length=1, max_length=253, description="ConfigMap name.")
    key: str = Field(min_length=1, description="Key.")
    optional: bool | None = Field(default=None, description="Allow a missing key.")


class FieldRef(_Model):
    field_path: str = Field(min_length=1, description="e.g. metadata.name.")


class ResourceFieldRef(_Model):
    resource: str = Field(min_length=1, description="e.g. limits.memory.")
    container_name: str | None = Field(default=None, description="Defaults to this container.")
    divisor: Quantity | None = Field(default=None, description="e.g. 1Mi.")


class SecretKeySelector(_Model):
    name: str = Field(min_length=1, max_length=253, description="Secret name.")
    key: str = Field(min_length=1, description="Key.")


_NO_SECRET_ENV = (
    "env valueFrom.secretKeyRef is not allowed in a pod template: mount the Secret as a "
    "volume (template.volumes + volumeMounts) instead"
)


class EnvVarSource(_Model):
    """Where an env var's value comes from; never a Secret (see the module docstring).

    `secretKeyRef` is declared only so that it is refused by name, by the model and by a
    CEL rule on the API server; undeclared, the API server would silently prune it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "!has(self.secretKeyRef)", "message": _NO_SECRET_ENV,
                 "fieldPath": ".secretKeyRef"}
            ]
        }
    )  # fmt: skip

    config_map_key_ref: ConfigMapKeyRef | None = Field(default=None, description="A ConfigMap.")
    field_ref: FieldRef | None = Field(default=None, description="The pod's own fields.")
    resource_field_ref: ResourceFieldRef | None = Field(
        default=None, description="The container's resources."
    )
    secret_key_ref: SecretKeySelector | None = Field(
        default=None, description="Refused: mount Secrets as volumes instead."
    )

    @model_validator(mode="after")
    def _no_secret_key_ref(self) -> Self:
        if self.secret_key_ref is not None:
            raise ValueError(_NO_SECRET_ENV)
        return self


class EnvVar(_Model):
    name: str = Field(min_length=1, max_length=256, pattern=_ENV_NAME, description="Name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: EnvVarSource | None = Field(default=None, description="Value from a source.")


class LocalObjectReference(_Model):
    name: str = Field(min_length=1, max_length=253, description="Secret name.")


class PodTemplate(_Model):
    """What an SRE may change on a managed pod; the operator owns everything else."""

    metadata: PodMetadata | None = Field(default=None, description="Labels and annotations.")
    node_selector: dict[str, str] | None = Field(default=None, description="Node labels.")
    tolerations: list[Toleration] | None = Field(default=None, description="Taints tolerated.")
    affinity: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A Kubernetes Affinity. Each of nodeAffinity, podAffinity, podAntiAffinity "
            "given here replaces Surge's default for it (a preference for the active region)."
        ),
    )
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        default=None, description="Spread pods over zones or nodes."
    )
    resources: Resources | None = Field(default=None, description="Container resources.")
    volumes: list[Volume] | None = Field(default=None, max_length=32, description="Volumes.")
    volume_mounts: list[VolumeMount] | None = Field(
        default=None, max_length=32, description="Mounts of those volumes."
    )
    env: list[EnvVar] | None = Field(default=None, max_length=64, description="Extra env.")
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None, max_length=16, description="Secrets to pull the image with."
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, description="PriorityClass of the pods."
    )

    @model_validator(mode="after")
    def _mounts_name_volumes(self) -> Self:
        reserved = sorted({v.name for v in self.volumes or []} & RESERVED_VOLUMES)
        if reserved:
            raise ValueError(f"volumes: {reserved} are reserved for Surge's own volumes")
        known = {v.name for v in self.volumes or []}
        missing = sorted({m.name for m in self.volume_mounts or []} - known)
        if missing:
            raise ValueError(
                f"volumeMounts name volumes that the template does not define: {missing}"
            )
        return self
