"""What the cluster-facing CLI commands do, against the Kubernetes API (no rendering).

    status         read one MessagingCluster into a `ClusterView`
    failback       annotate `surge.dev/failback=requested`; the operator's failover tick
                   moves traffic back to the original primary once its probe succeeds
                   and removes the annotation
    drain-region   add the region to `spec.drainedRegions`: the operator stops scheduling
                   pods on nodes labelled `topology.kubernetes.io/region=<region>` and the
                   failover policy moves the active role to a healthy region; `--undo`
                   removes it again (traffic stays where it is until a failback)
    check-install  what `helm test` runs: the operator Deployment is Ready, and a throwaway
                   MessagingCluster gets its worker Deployment and a status for its
                   current generation; then it is deleted and the operator finalizes it

Every wait polls with a deadline and reports progress through a callback, so the CLI can
show it and tests can record it. Nothing here prints.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from surge_operator.api import API_VERSION, KIND, ConditionStatus, ConditionType, parse_spec
from surge_operator.cluster_view import ClusterView
from surge_operator.errors import SurgeError
from surge_operator.resources import ObjectRef
from surge_operator.resources.labels import worker_deployment_name

FAILBACK_ANNOTATION = "surge.dev/failback"
POLL_SECONDS = 1.0

Progress = Callable[[str], None]


class CommandError(SurgeError):
    """A cluster command could not do what was asked (exit code 1)."""

    reason = "CommandFailed"


class UsageError(SurgeError):
    """The arguments do not fit the cluster (unknown region...): exit code 2."""

    reason = "BadArguments"


class Kube(Protocol):
    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None: ...

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def delete(self, ref: ObjectRef) -> bool: ...


async def read_cluster(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = await kube.get(API_VERSION, KIND, namespace, name)
    if obj is None:
        raise CommandError(f"MessagingCluster {namespace}/{name} not found")
    return obj


async def status(kube: Kube, namespace: str, name: str, decisions: int) -> ClusterView:
    return ClusterView.from_object(await read_cluster(kube, namespace, name), decisions)


async def wait_for(
    check: Callable[[], Awaitable[tuple[bool, str]]],
    *,
    deadline_s: float,
    progress: Progress,
    what: str,
) -> str:
    """Poll `check` (done?, words for the progress line) until done or the deadline."""
    deadline = time.monotonic() + deadline_s
    words = ""
    while True:
        done, words = await check()
        progress(words)
        if done:
            return words
        if time.monotonic() >= deadline:
            raise CommandError(f"timed out after {deadline_s:.0f}s waiting for {what}: {words}")
        await asyncio.sleep(POLL_SECONDS)


def _regions(obj: dict[str, Any]) -> list[str]:
    return [str(r.get("name")) for r in (obj.get("spec") or {}).get("regions") or []]


async def failback(
    kube: Kube, namespace: str, name: str, *, wait: bool, deadline_s: float, progress: Progress
) -> ClusterView:
    obj = await read_cluster(kube, namespace, name)
    view = ClusterView.from_object(obj)
    if len(_regions(obj)) < 2:
        raise CommandError(f"{namespace}/{name} has one region: there is nothing to fail back to")
    if view.active_region == view.primary_region:
        progress(f"already on the primary region {view.primary_region}")
        return view
    await kube.merge_patch(
        API_VERSION, KIND, namespace, name,
        {"metadata": {"annotations": {FAILBACK_ANNOTATION: "requested"}}},
    )  # fmt: skip
    progress(f"failback to {view.primary_region} requested")
    if not wait:
        return view

    async def back_on_primary() -> tuple[bool, str]:
        current = await read_cluster(kube, namespace, name)
        now = ClusterView.from_object(current)
        pending = FAILBACK_ANNOTATION in ((current.get("metadata") or {}).get("annotations") or {})
        done = now.active_region == now.primary_region and not pending
        return done, f"active region {now.active_region}, phase {_phase(now)}"

    await wait_for(back_on_primary, deadline_s=deadline_s, progress=progress, what="the failback")
    return ClusterView.from_object(await read_cluster(kube, namespace, name))


async def drain_region(
    kube: Kube,
    namespace: str,
    name: str,
    region: str,
    *,
    undo: bool,
    wait: bool,
    deadline_s: float,
    progress: Progress,
) -> ClusterView:
    obj = await read_cluster(kube, namespace, name)
    regions = _regions(obj)
    if region not in regions:
        raise UsageError(f"{namespace}/{name} has no region {region!r} (regions: {regions})")
    drained = list((obj.get("spec") or {}).get("drainedRegions") or [])
    wanted = [r for r in drained if r != region] if undo else sorted({*drained, region})
    if wanted != drained:
        # Validate locally first: the same rules as the CRD, with a clearer message.
        try:
            parse_spec({**obj["spec"], "drainedRegions": wanted})
        except ValidationError as exc:
            raise UsageError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        await kube.merge_patch(
            API_VERSION, KIND, namespace, name, {"spec": {"drainedRegions": wanted or None}}
        )
    progress(f"{region} {'back in service' if undo else 'drained'}")
    if not wait:
        return ClusterView.from_object(await read_cluster(kube, namespace, name))

    async def settled() -> tuple[bool, str]:
        now = ClusterView.from_object(await read_cluster(kube, namespace, name))
        moved = undo or now.active_region != region
        return now.reconciled and moved, (
            f"active region {now.active_region}, phase {_phase(now)}, "
            f"{'reconciled' if now.reconciled else 'reconciling'}"
        )

    await wait_for(settled, deadline_s=deadline_s, progress=progress, what=f"{region} to drain")
    return ClusterView.from_object(await read_cluster(kube, namespace, name))


def _phase(view: ClusterView) -> str:
    return view.status.phase.value if view.status.phase else "unknown"


@dataclass(frozen=True)
class InstallCheck:
    operator_namespace: str
    operator_deployment: str
    namespace: str
    nats_url: str
    timeout: float


def throwaway_cluster(namespace: str, name: str, nats_url: str) -> dict[str, Any]:
    """The smallest MessagingCluster: one region, no gateway, a stream that is deleted
    with it. Reconciling its Kubernetes objects does not need NATS to answer."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": {"surge.dev/test": "true"}},
        "spec": {
            "regions": [{"name": "test", "role": "primary", "nats": {"url": nats_url}}],
            "gateway": {"enabled": False},
            "autoscaling": {"enabled": False},
            "replicas": 0,
            "stream": {"deletionPolicy": "delete"},
        },
    }


async def check_install(kube: Kube, check: InstallCheck, progress: Progress) -> list[str]:
    """Returns what was proven, one line each; raises CommandError on the first failure."""
    proven: list[str] = []

    async def operator_ready() -> tuple[bool, str]:
        deployment = await kube.get(
            "apps/v1", "Deployment", check.operator_namespace, check.operator_deployment
        )
        if deployment is None:
            return False, f"deployment {check.operator_deployment} not found"
        st = deployment.get("status") or {}
        ready = int(st.get("readyReplicas") or 0)
        return ready >= 1, f"operator {ready}/{deployment['spec'].get('replicas', 1)} ready"

    proven.append(
        await wait_for(operator_ready, deadline_s=check.timeout, progress=progress, what="operator")
    )
    name = f"surge-check-{uuid.uuid4().hex[:6]}"
    await kube.create(throwaway_cluster(check.namespace, name, check.nats_url))
    progress(f"created MessagingCluster {check.namespace}/{name}")
    try:

        async def reconciled() -> tuple[bool, str]:
            view = ClusterView.from_object(await read_cluster(kube, check.namespace, name))
            workers = await kube.get(
                "apps/v1", "Deployment", check.namespace, worker_deployment_name(name)
            )
            done = view.reconciled and workers is not None
            conditions = ", ".join(
                f"{c.type.value}={c.status.value}" for c in view.status.conditions
            )
            return done, (
                f"{name}: observedGeneration {view.status.observed_generation}, "
                f"workers deployment {'present' if workers else 'missing'}; {conditions}"
            )

        proven.append(
            await wait_for(
                reconciled, deadline_s=check.timeout, progress=progress, what="the MessagingCluster"
            )
        )
    finally:
        await _discard(kube, check.namespace, name, progress)

    async def finalized() -> tuple[bool, str]:
        gone = await kube.get(API_VERSION, KIND, check.namespace, name) is None
        return gone, f"{name}: {'finalized and gone' if gone else 'waiting for its finalizer'}"

    proven.append(
        await wait_for(
            finalized, deadline_s=check.timeout, progress=progress, what=f"{name} to be finalized"
        )
    )
    return proven


def _stream_ready(obj: dict[str, Any]) -> bool:
    conditions = ClusterView.from_object(obj).status.conditions
    return any(
        c.type == ConditionType.STREAM_READY and c.status == ConditionStatus.TRUE
        for c in conditions
    )


async def _discard(kube: Kube, namespace: str, name: str, progress: Progress) -> None:
    """Delete the throwaway. A stream that never became ready was never created (the
    default tests.natsUrl answers nowhere), so it is retained rather than deleted: the
    finalizer then needs no NATS. Otherwise it retried an unreachable NATS for minutes and,
    once `helm uninstall` had removed the operator, kept the CRD from being deleted."""
    obj = await kube.get(API_VERSION, KIND, namespace, name)
    if obj is None:
        return
    if not _stream_ready(obj):
        await kube.merge_patch(
            API_VERSION, KIND, namespace, name, {"spec": {"stream": {"deletionPolicy": "retain"}}}
        )
    await kube.delete(ObjectRef(API_VERSION, KIND, namespace, name))  # False when gone
    progress(f"deleted MessagingCluster {namespace}/{name}")
