"""The Kubernetes `ScaleTarget`: sets the worker Deployment's replicas.

It server-side-applies only `spec.replicas`, under its own field manager
(`surge-autoscaler`), so the structural apply of the Deployment (manager
`surge-operator`) and the autoscaler never fight over the field: each owns what it
declares. Applying the same count again is a no-op on the API server.
"""

from __future__ import annotations

from surge_operator.kube import KubeApi


class KubeScaleTarget:
    def __init__(
        self, kube: KubeApi, *, namespace: str, deployment: str, field_manager: str
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._deployment = deployment
        self._field_manager = field_manager
        self._last: int | None = None

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
