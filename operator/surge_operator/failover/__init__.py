"""Regional failover: probe health, mirror the active stream, promote, fail back.

Each region runs its own nats-server (or cluster) with a distinct JetStream *domain*; the
regions are linked by a leafnode connection so that one region can reach another's
JetStream API under ``$JS.<domain>.API``. In a standby region every pipeline stream
(messages, dead letters, and the KV buckets: degradation, routing, transcripts) is a
JetStream *mirror* of the same-named stream in the active region (no subjects, read-only).
The pure decisions live in `surge_operator.policy.failover`; this package does the I/O.
Only the active region is provisioned with `surge_workers.provision`; the controller owns
every other region's streams.

What JetStream allows, and therefore what happens here
    * Promote: nats-server >= 2.12 lets a stream update drop the ``mirror`` config, which
      turns the mirror into a normal stream in place, keeping every mirrored message (and
      their Nats-Msg-Id dedup state). We then set the subjects and create the per-priority
      durable consumers, starting after the old active region's last known ack floors, so
      only what was acked in the last probe interval is delivered again (and absorbed by
      the workers' message-id idempotency).
    * A mirror's source cannot be changed, and a normal stream cannot become a mirror. So
      an old primary that comes back is *fenced* first (its subjects removed, so nothing
      more is written to it; publishers still pointed there reach the active region's
      stream over the leafnode instead), its *tail* (messages it stored that never reached
      the mirror before it died) is re-published to the active region with the original
      headers, then it is deleted and recreated as a mirror of the active region, which
      copies the stream back from the start. Re-published messages keep their
      ``Nats-Msg-Id``: within the duplicate window JetStream drops the copies the active
      region already has; older ones reach idempotent workers at most once more.
    * Failback: the original primary must already be a mirror of the active region and
      nearly caught up. The active region is fenced, the mirror is given until it holds
      the fenced stream's last sequence, then it is promoted and the old active becomes
      its mirror. Nothing is lost and writes pause only for the catch-up. An active
      region found fenced outside a failback (its leader died between fence and
      promotion, and the request was withdrawn) is unfenced: writes never stay paused.
    * Work-queue retention cannot be mirrored this way (the mirror's consumer would remove
      messages from the origin): `mirror_config` raises UnsupportedStreamError.
    * Mirrors keep the origin's sequence numbers, which is what makes ack floors portable
      and the tail comparison cheap.

Public API (for the operator's timer handler; no kopf, no kubernetes here)::

    east = RegionEndpoint.from_region(spec.regions[0], auth.connect_options())
    # (domain defaults to the region name; RegionEndpoint(name, url, domain, options))
    controller = FailoverController(
        cluster="support/acme",                  # for logs only
        endpoints=[east, west],                  # spec order, one per spec.regions
        primary="east",                          # spec.primary_region().name
        pipeline=pipeline_config(stream, spec),  # surge_operator.resources.jetstream
        config=FailoverConfig.from_spec(spec.failover),
        active=status.active_region,             # restore after an operator restart
        epoch=status.failover_epoch or 0,
    )
    outcome: TickOutcome = await controller.tick(failback_requested=False)
    # Keep one controller per MessagingCluster in memory (it carries probe streaks and
    # ack floors); call controller.update(...) when the spec changes.
    # Every spec.failover.probe_interval_seconds; then patch status from the outcome:
    # outcome.active_region, outcome.epoch, outcome.history_entry (or None),
    # outcome.failed_over / outcome.condition_reason / outcome.condition_message for the
    # FailedOver condition, outcome.event (or None) for a Kubernetes Event, and
    # outcome.phase_hint (FailingOver while a promotion could not complete).

Lower-level functions (`probe`, `ensure_mirror`, `promote`, `fence`, `recover_tail`,
`failback`) are public for tests and for `surge demo`.

Modules, one job each (the FailoverError tree is in `surge_operator.errors`, with every
other domain error)::

    endpoints.py   RegionEndpoint and fail-fast connections
    streams.py     which streams a pipeline has in a region, and their writable subjects
    probe.py       one region's health, stream roles and ack floors (never raises)
    mirrors.py     mirror configs, ensure_mirror, fence/unfence
    recovery.py    an old primary's unmirrored tail, re-published to the active region
    promotion.py   promote and failback
    edge.py        RegionEdge: the Protocol the controller talks to (NatsRegionEdge is real)
    controller.py  FailoverController: probe -> policy.failover.decide -> act -> outcome
"""

from __future__ import annotations

from surge_operator.errors import (
    FailbackNotReadyError,
    FailoverError,
    MirrorError,
    PromotionError,
    UnsupportedStreamError,
)
from surge_operator.failover.controller import Event, FailoverController, TickOutcome
from surge_operator.failover.edge import NatsRegionEdge, RegionEdge
from surge_operator.failover.endpoints import RegionEndpoint, connect
from surge_operator.failover.mirrors import (
    META_ALLOW_DIRECT,
    MirrorAction,
    MirrorChange,
    ensure_mirror,
    fence,
    mirror_config,
    mirror_of,
    unfence,
)
from surge_operator.failover.probe import RegionProbe, StreamView, probe
from surge_operator.failover.promotion import PromotionResult, failback, promote
from surge_operator.failover.recovery import recover_tail
from surge_operator.failover.streams import pipeline_streams, writable_subjects

__all__ = [
    "META_ALLOW_DIRECT",
    "Event",
    "FailbackNotReadyError",
    "FailoverController",
    "FailoverError",
    "MirrorAction",
    "MirrorChange",
    "MirrorError",
    "NatsRegionEdge",
    "PromotionError",
    "PromotionResult",
    "RegionEdge",
    "RegionEndpoint",
    "RegionProbe",
    "StreamView",
    "TickOutcome",
    "UnsupportedStreamError",
    "connect",
    "ensure_mirror",
    "failback",
    "fence",
    "mirror_config",
    "mirror_of",
    "pipeline_streams",
    "probe",
    "promote",
    "recover_tail",
    "unfence",
    "writable_subjects",
]
