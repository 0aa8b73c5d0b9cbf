"""Operator settings: small composed dataclasses read from the environment once, passed down.

Like kopf's own `OperatorSettings`, every field has a documented default, so a bare
`surge-operator` on a laptop does the right thing. Read once in `run.main()` with
`OperatorConfig.from_env()` and passed explicitly; nothing else reads the environment.

Environment variables (all optional; the names match charts/surge/templates/deployment.yaml):

    SURGE_NAMESPACES        comma-separated namespaces to watch; empty = cluster-wide
    SURGE_FIELD_MANAGER     server-side-apply field manager (default surge-operator)
    SURGE_HEALTH_PORT       liveness endpoint port, /healthz (default 8080, 0 = off)
    SURGE_METRICS_PORT      Prometheus metrics port (default 9090, 0 = off)
    SURGE_LOG_FORMAT        json | console | auto (default auto: json when not a TTY)
    SURGE_LOG_LEVEL         debug | info | warning | error (default info)
    SURGE_STATUS_INTERVAL   seconds between live-figure status writes (default 5)
    SURGE_RESYNC_SECONDS    drift-correction re-apply interval (default 60)
    SURGE_PEERING           name of the coordination Lease that elects the one active
                            replica (default surge-operator); replicas sharing it coordinate
    SURGE_LEADER_ELECTION   true | false (default true)
    SURGE_LEASE_NAMESPACE   Lease namespace (default: POD_NAMESPACE, else `default`)
    SURGE_LEASE_SECONDS     lease duration (default 15, as client-go)
    SURGE_RENEW_DEADLINE    seconds a leader keeps acting without a successful renewal
                            (default 10, i.e. 2/3 of the lease); below the lease duration
    SURGE_RETRY_SECONDS     seconds between acquire/renew attempts (default 2, 2/15 of it)
    SURGE_SHUTDOWN_SECONDS  seconds kopf gets to stop after SIGTERM or leadership loss
                            before the process exits anyway (default 3)
    SURGE_IDENTITY          holder identity (default: POD_NAME, else hostname-pid)
    SURGE_POD_LABELS        extra labels for every pod, k=v,k=v (e.g. a cost-center label
                            your cluster's policy requires)
    SURGE_NATS_TIMEOUT      seconds to wait for a NATS connection (default 2)
    SURGE_POD_TEMPLATE      JSON PodTemplate applied under every managed pod's own
                            template (chart dataPlane.podTemplate; default none)
    SURGE_IMAGE_PULL_POLICY imagePullPolicy of data-plane containers (chart image.pullPolicy)
    SURGE_NETWORK_POLICY    true | false: own a NetworkPolicy per cluster (default true)
    SURGE_IMAGE             image of the worker and gateway pods when a MessagingCluster
                            does not name one (default surge:<version>; the chart sets
                            its own image values here, so one `helm upgrade` moves both)
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from surge_operator import __version__
from surge_operator.api_pods import PodTemplate

#: The data-plane image when neither SURGE_IMAGE nor the MessagingCluster names one.
DEFAULT_IMAGE = f"surge:{__version__}"

LogFormat = Literal["json", "console", "auto"]


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _pairs(value: str) -> dict[str, str]:
    """`a=1,b=2` -> {"a": "1", "b": "2"}; blanks are ignored."""
    out: dict[str, str] = {}
    for item in value.split(","):
        if "=" in item:
            key, _, val = item.partition("=")
            if key.strip():
                out[key.strip()] = val.strip()
    return out


@dataclass(frozen=True)
class ApplySettings:
    """How owned objects are written."""

    field_manager: str = "surge-operator"
    # A separate manager owns Deployment.spec.replicas while autoscaling is on, so the
    # structural apply never fights the autoscaler over that one field.
    scale_field_manager: str = "surge-autoscaler"
    # Re-apply owned objects this often even without spec changes: corrects drift
    # (someone edited or deleted a child). Server-side apply makes the no-op free.
    resync_seconds: float = 60.0
    extra_pod_labels: Mapping[str, str] = field(default_factory=dict)
    # Worker and gateway image unless spec.workers.image overrides it: the operator's own
    # image by default, so the data plane moves with every upgrade of the chart.
    data_plane_image: str = DEFAULT_IMAGE


@dataclass(frozen=True)
class StatusSettings:
    """How often live figures reach the API server."""

    # Live figures (backlog, rates) change every tick; writing them every tick would be
    # one write per second per cluster. Conditions, phase and replica changes still go
    # out immediately.
    interval_seconds: float = 5.0


@dataclass(frozen=True)
class LeaderSettings:
    enabled: bool = True
    lease_name: str = "surge-operator"
    lease_namespace: str = "default"
    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0
    identity: str = ""
    #: kopf's grace after a stop or leadership loss before the process exits anyway.
    shutdown_seconds: float = 3.0

    def __post_init__(self) -> None:
        # client-go's invariants: a leader must give up acting before a standby may take
        # over, and must get at least one retry in before the deadline.
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError(
                "leader election needs 0 < retry < renew deadline < lease duration, got "
                f"{self.retry_seconds} / {self.renew_deadline_seconds} / {self.lease_seconds}"
            )


@dataclass(frozen=True)
class ServerSettings:
    health_port: int = 8080
    metrics_port: int = 9090
    host: str = "0.0.0.0"


@dataclass(frozen=True)
class LogSettings:
    format: LogFormat = "auto"
    level: str = "info"


@dataclass(frozen=True)
class NatsSettings:
    connect_timeout_seconds: float = 2.0
    # Back-off for retries after NATS or credential failures: first, then doubled, capped.
    retry_initial_seconds: float = 2.0
    retry_max_seconds: float = 60.0


@dataclass(frozen=True)
class DataPlaneSettings:
    """Operator-wide defaults for the pods every MessagingCluster gets (from the chart)."""

    pod_template: PodTemplate | None = None
    image_pull_policy: str | None = None
    network_policy: bool = True

    @classmethod
    def parse(cls, template_json: str, pull_policy: str, network_policy: str) -> DataPlaneSettings:
        template = None
        if template_json.strip():
            try:
                template = PodTemplate.model_validate(json.loads(template_json))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                raise ValueError(f"SURGE_POD_TEMPLATE.{where}: {first['msg']}") from None
            except ValueError as exc:
                raise ValueError(f"SURGE_POD_TEMPLATE is not JSON: {exc}") from None
        if pull_policy not in ("", "Always", "IfNotPresent", "Never"):
            raise ValueError(
                f"SURGE_IMAGE_PULL_POLICY must be Always, IfNotPresent or Never: {pull_policy!r}"
            )
        return cls(
            pod_template=template,
            image_pull_policy=pull_policy or None,
            network_policy=_bool(network_policy),
        )


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()
    apply: ApplySettings = field(default_factory=ApplySettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    leader: LeaderSettings = field(default_factory=LeaderSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    logs: LogSettings = field(default_factory=LogSettings)
    nats: NatsSettings = field(default_factory=NatsSettings)
    data_plane: DataPlaneSettings = field(default_factory=DataPlaneSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        e = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return e.get(f"SURGE_{name}", default)

        namespaces = tuple(n.strip() for n in get("NAMESPACES", "").split(",") if n.strip())
        fmt = get("LOG_FORMAT", "auto")
        if fmt not in ("json", "console", "auto"):
            raise ValueError(f"SURGE_LOG_FORMAT must be json, console or auto: {fmt!r}")
        identity = (
            get("IDENTITY", "")
            or e.get("POD_NAME", "")
            or (f"{socket.gethostname()}-{os.getpid()}")
        )
        lease = float(get("LEASE_SECONDS", "15"))
        return cls(
            namespaces=namespaces,
            apply=ApplySettings(
                field_manager=get("FIELD_MANAGER", "surge-operator"),
                resync_seconds=float(get("RESYNC_SECONDS", "60")),
                extra_pod_labels=_pairs(get("POD_LABELS", "")),
                data_plane_image=get("IMAGE", "").strip() or DEFAULT_IMAGE,
            ),
            status=StatusSettings(interval_seconds=float(get("STATUS_INTERVAL", "5"))),
            leader=LeaderSettings(
                enabled=_bool(get("LEADER_ELECTION", "true")),
                lease_name=get("PEERING", "") or "surge-operator",
                lease_namespace=get("LEASE_NAMESPACE", e.get("POD_NAMESPACE", "default")),
                lease_seconds=lease,
                renew_deadline_seconds=float(get("RENEW_DEADLINE", str(lease * 2 / 3))),
                retry_seconds=float(get("RETRY_SECONDS", str(lease * 2 / 15))),
                identity=identity,
                shutdown_seconds=float(get("SHUTDOWN_SECONDS", "3")),
            ),
            server=ServerSettings(
                health_port=int(get("HEALTH_PORT", "8080")),
                metrics_port=int(get("METRICS_PORT", "9090")),
            ),
            logs=LogSettings(format=fmt, level=get("LOG_LEVEL", "info")),  # type: ignore[arg-type]
            nats=NatsSettings(connect_timeout_seconds=float(get("NATS_TIMEOUT", "2"))),
            data_plane=DataPlaneSettings.parse(
                get("POD_TEMPLATE", ""),
                get("IMAGE_PULL_POLICY", ""),
                get("NETWORK_POLICY", "true"),
            ),
        )
