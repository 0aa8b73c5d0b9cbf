"""The Kubernetes `ScaleTarget`: sets the worker Deployment's replicas.

It server-side-applies only `spec.replicas`, under its own field manager
(`surge-autoscaler`), so the structural apply of the Deployment (manager
`surge-operator`) and the autoscaler never fight over the field: each owns what it
declares. Applying the same count again is a no-op on the API server.
"""

from __future__ import annotations

from collections.abc import Callable

from surge_operator.kube import KubeApi

#: (replicas asked for, replicas ready) of the Deployment, as the operator last saw them.
Observed = Callable[[], tuple[int, int]]


class KubeScaleTarget:
    """The engine's ScaleTarget for a worker Deployment. The counts come from the
    operator's watch of the Deployment (`observed`): no API read per tick."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        namespace: str,
        deployment: str,
        field_manager: str,
        observed: Observed,
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._deployment = deployment
        self._field_manager = field_manager
        self._observed = observed
        self._last: int | None = None

    async def current(self) -> int:
        return self._observed()[0]

    async def ready(self) -> int:
        return self._observed()[1]

    @property
    def last_applied(self) -> int | None:
        return self._last

    async def scale(self, replicas: int) -> None:
        manifest = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self._deployment, "namespace": self._namespace},
            "spec": {"replicas": max(0, replicas)},
        }
        await self._kube.apply(manifest, field_manager=self._field_manager)
        self._last = replicas
