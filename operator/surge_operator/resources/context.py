"""The one value every builder takes: which MessagingCluster, its validated spec, and the
few operator-wide choices that shape manifests. Frozen so builders stay pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from surge_operator.api import (
    API_VERSION,
    KIND,
    MessagingClusterSpec,
    Region,
    stream_name,
)
from surge_operator.api_pods import PodTemplate
from surge_operator.resources.nats.names import region_url
from surge_operator.settings import DEFAULT_IMAGE


@dataclass(frozen=True)
class BuildContext:
    name: str
    namespace: str
    uid: str
    spec: MessagingClusterSpec
    #: region whose NATS the pods use; None = the spec's primary (no failover yet)
    active_region: str | None = None
    #: labels added to every pod template (SURGE_POD_LABELS, e.g. a cost-center label)
    extra_pod_labels: Mapping[str, str] = field(default_factory=dict)
    #: operator-wide pod template under every component's own (chart dataPlane.podTemplate)
    pod_defaults: PodTemplate | None = None
    #: imagePullPolicy of data-plane containers (chart image.pullPolicy); None = the
    #: Kubernetes default for the tag
    image_pull_policy: str | None = None
    #: operator-wide switch (chart dataPlane.networkPolicy.enabled); the spec can only
    #: turn a policy off, never force one on where the SRE switched them off
    network_policy: bool = True

    @property
    def owns_network_policy(self) -> bool:
        return self.network_policy and self.spec.network_policy.enabled

    #: worker and gateway image when the spec names none (the operator's SURGE_IMAGE)
    default_image: str = DEFAULT_IMAGE

    @property
    def stream(self) -> str:
        return stream_name(self.namespace, self.name, self.spec)

    @property
    def data_plane_image(self) -> str:
        return self.spec.workers.image or self.default_image

    @property
    def region(self) -> Region:
        if self.active_region:
            for region in self.spec.regions:
                if region.name == self.active_region:
                    return region
        return self.spec.primary_region()

    @property
    def nats_url(self) -> str:
        """Where the pods reach the active region's NATS (external URL or managed Service)."""
        return region_url(self.name, self.namespace, self.region)


def owner_reference(ctx: BuildContext) -> dict[str, object]:
    """Controller owner reference: garbage collection deletes children with the cluster,
    and `blockOwnerDeletion` keeps foreground deletion honest."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ctx.name,
        "uid": ctx.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
