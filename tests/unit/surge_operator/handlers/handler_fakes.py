"""Small fakes for the handler Protocols (KubeApi, JetStreamOps, MetricsSources, ScaleTarget)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from surge_operator.errors import SurgeError
from surge_operator.handlers.deps import Deps
from surge_operator.jetstream import NatsAuth
from surge_operator.kube import ClusterObject
from surge_operator.policy.types import Snapshot
from surge_operator.resources import ObjectRef
from surge_operator.settings import OperatorConfig
from surge_workers.pipeline import PipelineConfig


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applies: list[tuple[str, dict[str, Any]]] = []
        self.status_patches: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.deleted: list[ObjectRef] = []
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.fail_apply: SurgeError | None = None
        self.cleared: list[str] = []
        self._rv = 0

    async def apply(self, obj: Mapping[str, Any], *, field_manager: str) -> dict[str, Any]:
        if self.fail_apply is not None:
            raise self.fail_apply
        self.applies.append((field_manager, copy.deepcopy(dict(obj))))
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        current = self.objects.get(key)
        merged = copy.deepcopy(dict(obj)) if current is None else _merge(current, dict(obj))
        if merged != current:
            self._rv += 1
            merged.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
            self.objects[key] = merged
        return copy.deepcopy(self.objects[key])

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    async def delete(self, ref: ObjectRef) -> bool:
        self.deleted.append(ref)
        return self.objects.pop((ref.kind, ref.namespace, ref.name), None) is not None

    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.status_patches.append(dict(patch))
        return {}

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        if name in self.secrets:
            return self.secrets[name]
        applied = self.objects.get(("Secret", namespace, name))  # stringData reads back as data
        if applied is None:
            return None
        return {k: v.encode() for k, v in applied.get("stringData", {}).items()}

    async def emit_event(
        self, cluster: ClusterObject, *, type_: str, reason: str, message: str
    ) -> None:
        self.events.append((type_, reason, message))

    async def clear_annotation(self, cluster: ClusterObject, key: str) -> None:
        self.cleared.append(key)

    async def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(obj)
            for (kind, ns, _), obj in sorted(self.objects.items())
            if kind == "Pod"
            and ns == namespace
            and selector.items() <= (obj["metadata"].get("labels") or {}).items()
        ]

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


def _merge(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(current)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class FakeJetStream:
    def __init__(self) -> None:
        self.provisioned: list[PipelineConfig] = []
        self.deleted: list[str] = []
        self.levels: list[int] = []
        self.forecasts: list[Any] = []
        self.sheddable: list[frozenset[str] | None] = []
        self.fail: SurgeError | None = None

    async def provision(self, url: str, auth: NatsAuth, config: PipelineConfig) -> str:
        if self.fail is not None:
            raise self.fail
        first = not any(c.stream == config.stream for c in self.provisioned)
        self.provisioned.append(config)
        return f"stream/{config.stream} created" if first else ""

    async def delete(self, url: str, auth: NatsAuth, config: PipelineConfig) -> tuple[str, ...]:
        if self.fail is not None:
            raise self.fail
        self.deleted.append(config.stream)
        return (config.stream,)

    async def publish_level(
        self,
        url: str,
        auth: NatsAuth,
        stream: str,
        level: int,
        reason: str,
        at: float,
        *,
        sheddable: Collection[str] | None = None,
    ) -> None:
        self.levels.append(level)
        self.sheddable.append(None if sheddable is None else frozenset(sheddable))

    async def publish_forecast(self, url: str, auth: NatsAuth, stream: str, forecast: Any) -> None:
        self.forecasts.append(forecast)

    async def jetstream(self, url: str, auth: NatsAuth) -> Any:
        raise AssertionError("not used by handlers directly")


class FakeSnapshots:
    """MetricsSources handing out itself as every cluster's MetricsSource."""

    def __init__(self) -> None:
        self.next: Snapshot | SurgeError | None = None

    async def source(self, cluster: ClusterObject, **kw: Any) -> FakeSnapshots:
        return self

    async def snapshot(self, **kw: Any) -> Snapshot:
        if isinstance(self.next, SurgeError):
            raise self.next
        assert self.next is not None
        return self.next

    def forget(self, cluster: ClusterObject) -> None:
        pass


class FakeScaleTarget:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.observed: Callable[[], tuple[int, int]] = lambda: (0, 0)

    async def current(self) -> int:
        return self.observed()[0]

    async def ready(self) -> int:
        return self.observed()[1]

    async def scale(self, replicas: int) -> None:
        self.calls.append(replicas)


def _target_factory(
    target: FakeScaleTarget,
) -> Callable[[ClusterObject, str, Callable[[], tuple[int, int]]], FakeScaleTarget]:
    def factory(
        ref: ClusterObject, name: str, observed: Callable[[], tuple[int, int]]
    ) -> FakeScaleTarget:
        target.observed = observed
        return target

    return factory


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(1_800_000_000 + self.t, UTC)


def make_deps(
    kube: FakeKube | None = None,
    js: FakeJetStream | None = None,
    snapshots: FakeSnapshots | None = None,
    target: FakeScaleTarget | None = None,
    clock: Clock | None = None,
) -> Deps:
    clock = clock or Clock()
    target = target or FakeScaleTarget()
    return Deps(
        config=OperatorConfig(),
        kube=kube or FakeKube(),
        js=js or FakeJetStream(),
        snapshots=snapshots or FakeSnapshots(),
        scale_target=_target_factory(target),
        now=clock.now,
        monotonic=clock.monotonic,
        wall=clock.monotonic,
    )


REF = ClusterObject(namespace="team-a", name="support", uid="uid-1")
SPEC: dict[str, Any] = {
    "regions": [{"name": "east", "role": "primary", "nats": {"url": "nats://n:4222"}}],
    "autoscaling": {"minReplicas": 1, "maxReplicas": 10, "serviceRateHint": 10},
}
