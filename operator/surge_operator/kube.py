"""The only module that talks to the Kubernetes API (besides kopf's own watching).

`KubeApi` is the Protocol handlers depend on, so they are unit-tested with a small fake;
`HttpKubeApi` is the real thing: one aiohttp session with the same credentials kopf uses
(`kopf.login_via_client`: in-cluster service account or kubeconfig).

Writes are server-side apply with a named field manager: the API server merges our
desired fields, corrects drift in them, leaves everyone else's fields alone, and a no-op
apply changes nothing (no new resourceVersion, no watch event).
"""

from __future__ import annotations

import json
import logging
from base64 import b64decode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from surge_operator.api import API_VERSION, KIND, PLURAL
from surge_operator.errors import (
    CredentialsSecretMissingError,
    KubeApiError,
    KubeConflictError,
    KubeForbiddenError,
    KubeNotFoundError,
    KubeNotOwnedError,
    KubeRejectedError,
)
from surge_operator.resources import ObjectRef
from surge_operator.status import timestamp

# apiVersion + kind -> plural, for every kind the operator touches. A table, not discovery:
# the set is fixed, and discovery would cost requests and memory at start-up.
_PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Event"): "events",
    ("v1", "Pod"): "pods",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("batch/v1", "CronJob"): "cronjobs",
    ("batch/v1", "Job"): "jobs",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("coordination.k8s.io/v1", "Lease"): "leases",
    (API_VERSION, KIND): PLURAL,
}

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
MERGE_CONTENT_TYPE = "application/merge-patch+json"


def object_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    try:
        plural = _PLURALS[(api_version, kind)]
    except KeyError:
        raise KubeApiError(f"kind {api_version}/{kind} is not known to the operator") from None
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{root}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path


@dataclass(frozen=True)
class ClusterObject:
    """Enough of a MessagingCluster to address it and attach Events to it."""

    namespace: str
    name: str
    uid: str

    def reference(self) -> dict[str, str]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


class KubeApi(Protocol):
    async def apply(self, obj: Mapping[str, Any], *, field_manager: str) -> dict[str, Any]: ...

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None: ...

    async def delete(self, ref: ObjectRef) -> bool: ...

    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    async def emit_event(
        self, cluster: ClusterObject, *, type_: str, reason: str, message: str
    ) -> None: ...

    async def clear_annotation(self, cluster: ClusterObject, key: str) -> None: ...

    async def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        """Pods matching every label of `selector` (managed NATS servers)."""
        ...


class HttpKubeApi:
    """KubeApi over aiohttp. Create with `await HttpKubeApi.connect()`; `close()` at exit."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str,
        component: str,
        default_namespace: str | None = None,
    ) -> None:
        self._session = session
        #: (path, owner uid) of objects already checked to be ours: one GET per object.
        self._owned: set[tuple[str, str]] = set()
        self._server = server.rstrip("/")
        self._component = component
        #: the kubeconfig context's namespace (the CLI's default for -n)
        self.default_namespace = default_namespace

    @classmethod
    async def connect(cls, component: str = "surge-operator") -> HttpKubeApi:
        import kopf  # late: importing surge_operator.kube must stay cheap for tools

        info = kopf.login_via_client(
            logger=logging.getLogger("surge_operator.kube"), settings=kopf.OperatorSettings()
        )
        if info is None:
            raise KubeApiError("no Kubernetes credentials (neither in-cluster nor kubeconfig)")
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32, ssl=info.as_ssl_context()),
            headers={**info.as_http_headers(), "User-Agent": component},
            timeout=aiohttp.ClientTimeout(total=30),
        )
        return cls(session, info.server, component, info.default_namespace)

    async def close(self) -> None:
        await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        try:
            async with self._session.request(
                method, self._server + path, data=data, params=params, headers=headers
            ) as response:
                text = await response.text()
                if response.status < 300:
                    return json.loads(text) if text else {}
                raise _error(response.status, method, path, text)
        except aiohttp.ClientError as exc:
            raise KubeApiError(f"{method} {path}: {exc}") from exc
        except TimeoutError as exc:
            raise KubeApiError(f"{method} {path}: timed out") from exc

    async def apply(self, obj: Mapping[str, Any], *, field_manager: str) -> dict[str, Any]:
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        owner = _controller_uid(obj)
        if owner is not None and (path, owner) not in self._owned:
            await self._check_owned(obj, path, owner)
        # force: we are the controller of these objects (checked above for every object
        # that declares an owner); a conflicting manager (someone's kubectl edit) loses
        # the fields we declare, which is exactly drift correction. Objects without an
        # owner reference (the scale subresource's replica count) are applied under their
        # own field manager.
        result = await self._request(
            "PATCH",
            path,
            body=obj,
            params={"fieldManager": field_manager, "force": "true"},
            content_type=APPLY_CONTENT_TYPE,
        )
        if owner is not None:
            self._owned.add((path, owner))
        return result or {}

    async def _check_owned(self, obj: Mapping[str, Any], path: str, owner: str) -> None:
        """Refuse to touch a same-named object that is not ours. Even a non-forced apply
        would merge our owner reference into it, and garbage collection would then delete
        a user's object together with the MessagingCluster."""
        meta = obj["metadata"]
        current = await self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if current is None:
            return
        uids = {
            ref.get("uid") for ref in (current.get("metadata") or {}).get("ownerReferences") or []
        }
        if owner not in uids:
            raise KubeNotOwnedError(
                f"{obj['kind']} {meta['namespace']}/{meta['name']} already exists and is not "
                "owned by this MessagingCluster; Surge leaves it untouched. Delete or rename "
                "it (or the MessagingCluster) to proceed."
            )

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        try:
            return await self._request("GET", object_path(api_version, kind, namespace, name))
        except KubeNotFoundError:
            return None

    async def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        path = object_path("v1", "Pod", namespace)
        result = await self._request("GET", path, params={"labelSelector": labels})
        return list((result or {}).get("items") or [])

    async def delete(self, ref: ObjectRef) -> bool:
        path = object_path(ref.api_version, ref.kind, ref.namespace, ref.name)
        try:
            await self._request("DELETE", path, body={"propagationPolicy": "Background"})
        except KubeNotFoundError:
            return False
        return True

    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = object_path(API_VERSION, KIND, namespace, name) + "/status"
        result = await self._request(
            "PATCH", path, body={"status": dict(patch)}, content_type=MERGE_CONTENT_TYPE
        )
        return result or {}

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            secret = await self.get("v1", "Secret", namespace, name)
        except KubeForbiddenError:
            raise CredentialsSecretMissingError(
                f"the operator may not read Secret {namespace}/{name}: Secrets are granted "
                f"per namespace (chart value rbac.secretNamespaces: add {namespace})"
            ) from None
        if secret is None:
            return None
        return {k: b64decode(v) for k, v in (secret.get("data") or {}).items()}

    async def emit_event(
        self, cluster: ClusterObject, *, type_: str, reason: str, message: str
    ) -> None:
        stamp = timestamp(datetime.now(UTC))
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{cluster.name}.",
                "namespace": cluster.namespace,
            },
            "involvedObject": cluster.reference(),
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self._component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        await self._request("POST", object_path("v1", "Event", cluster.namespace), body=event)

    async def clear_annotation(self, cluster: ClusterObject, key: str) -> None:
        """Remove a user's request annotation once acted on (a merge patch: the user, not
        our field manager, owns it, so server-side apply could not remove it)."""
        await self.merge_patch(
            API_VERSION, KIND, cluster.namespace, cluster.name,
            {"metadata": {"annotations": {key: None}}},
        )  # fmt: skip

    # -- used by the Kubernetes ScaleTarget and leader election -------------------------

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        return await self._request("POST", path, body=obj) or {}

    async def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return await self._request("PUT", path, body=obj) or {}

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = object_path(api_version, kind, namespace, name)
        return (
            await self._request("PATCH", path, body=dict(patch), content_type=MERGE_CONTENT_TYPE)
            or {}
        )


def _error(status: int, method: str, path: str, text: str) -> KubeApiError:
    try:
        message = str(json.loads(text).get("message") or text)
    except ValueError:
        message = text
    message = f"{method} {path}: {status} {message}".strip()
    if status == 404:
        return KubeNotFoundError(message, status=status)
    if status == 409:
        return KubeConflictError(message, status=status)
    if status == 403:
        return KubeForbiddenError(message, status=status)
    if status in (400, 422):
        return KubeRejectedError(message, status=status)
    if status == 500 and "unable to convert" in message:
        # Server-side apply reports a malformed field (e.g. a resource quantity) as a
        # conversion failure with 500; retrying cannot fix it, a spec change can.
        return KubeRejectedError(message, status=status)
    return KubeApiError(message, status=status)


def _controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid"):
            return str(ref["uid"])
    return None
