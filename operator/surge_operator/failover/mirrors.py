"""Standby streams as JetStream mirrors of the active region's: their configs, making them
(idempotently), and fencing/unfencing a writable stream."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ExternalStream, StreamConfig, StreamInfo, StreamSource

from surge_operator.errors import MirrorError, UnsupportedStreamError
from surge_operator.failover.endpoints import (
    RegionEndpoint,
    connect,
    describe_exc,
    failing_as,
    stream_info,
)
from surge_operator.failover.recovery import TailRecovery, recover_tail, token_of
from surge_operator.failover.streams import kv_stream, pipeline_streams, writable_subjects
from surge_workers import provision
from surge_workers.contract import degradation_bucket
from surge_workers.pipeline import PipelineConfig

#: Mirror metadata: the origin's allow_direct, restored when the mirror is promoted.
META_ALLOW_DIRECT = "surge.dev/origin-allow-direct"


def _external(stream: str, source: RegionEndpoint) -> StreamSource:
    # Same account on both ends of the leafnode, so no deliver prefix is needed; it only
    # matters when the origin lives in another account.
    return StreamSource(name=stream, external=ExternalStream(api=source.api_prefix))


def mirror_config(
    pipeline: PipelineConfig, source: RegionEndpoint, replicas: int | None = None
) -> StreamConfig:
    """The standby's message stream: the pipeline's stream limits, no subjects, mirroring
    the same-named stream in `source`'s JetStream domain over the leafnode; `replicas`:
    the standby's own replica count (default: the pipeline's)."""
    if pipeline.retention != "limits":
        raise UnsupportedStreamError(
            f"stream {pipeline.stream} uses {pipeline.retention} retention; regional "
            "mirroring needs limits retention (a mirror's consumer on a work queue would "
            "remove messages from the origin)"
        )
    desired = provision.desired_stream_config(pipeline)
    return replace(
        desired,
        description=f"surge mirror of {pipeline.stream} in region {source.name}",
        subjects=None,
        # Direct gets stay local to each region; a mirror answering the origin's direct
        # gets across the leafnode would blur which region serves reads.
        allow_direct=False,
        mirror=_external(pipeline.stream, source),
        metadata={META_ALLOW_DIRECT: str(bool(desired.allow_direct)).lower()},
        num_replicas=desired.num_replicas if replicas is None else replicas,
    )


def mirror_of(
    origin: StreamConfig, source: RegionEndpoint, replicas: int | None = None
) -> StreamConfig:
    """A mirror of a stream whose config is read from the origin (dead letters, KV
    buckets): same limits and storage, no subjects, no direct gets; `replicas`: the
    standby's own replica count (default: the origin's)."""
    assert origin.name is not None
    metadata = {k: v for k, v in (origin.metadata or {}).items() if not k.startswith("_nats.")}
    metadata[META_ALLOW_DIRECT] = str(bool(origin.allow_direct)).lower()
    return replace(
        origin,
        subjects=None,
        allow_direct=False,
        mirror_direct=False,
        mirror=_external(origin.name, source),
        sources=None,
        republish=None,
        subject_transform=None,
        first_seq=None,
        metadata=metadata,
        num_replicas=origin.num_replicas if replicas is None else replicas,
    )


class MirrorAction(StrEnum):
    UNCHANGED = "unchanged"
    CREATED = "created"
    RECREATED = "recreated"


@dataclass(frozen=True, slots=True)
class MirrorChange:
    region: str
    source: str
    action: MirrorAction
    #: Streams created or recreated as mirrors (message stream last).
    streams: tuple[str, ...] = ()
    #: Messages of an old primary's tails re-published to the active region.
    recovered: int = 0
    #: Per stream: how each tail was merged (republished, duplicates, superseded).
    recoveries: tuple[TailRecovery, ...] = ()

    @property
    def duplicates(self) -> int:
        return sum(r.duplicates for r in self.recoveries)

    @property
    def superseded(self) -> int:
        return sum(r.superseded for r in self.recoveries)


def is_mirror_of(info: StreamInfo, source: RegionEndpoint, stream: str) -> bool:
    mirror = info.config.mirror
    return (
        mirror is not None
        and mirror.name == stream
        and mirror.external is not None
        and mirror.external.api == source.api_prefix
    )


async def ensure_mirror(
    standby: RegionEndpoint,
    active: RegionEndpoint,
    pipeline: PipelineConfig,
    *,
    leader_token: int = 0,
    request_timeout: float = 5.0,
) -> MirrorChange:
    """Make every pipeline stream in `standby` a mirror of `active`'s. Idempotent.

    Fenced: nothing is fenced, merged or deleted when the active region's stream, or the
    standby's own, carries the stamp of a leader with a higher Lease token than
    `leader_token` (a newer operator leader acted; this one is stale).

    A stream that is not already that mirror (an old primary that came back, or a mirror
    of a region that is no longer active) is fenced, its tail recovered into the active
    region, deleted and recreated: JetStream cannot change a mirror's source or turn a
    normal stream into a mirror. Dead-letter and KV streams are mirrored once they exist
    in the active region.
    """
    log = structlog.get_logger("surge_operator.failover").bind(
        region=standby.name, source=active.name, stream=pipeline.stream
    )
    main = mirror_config(pipeline, active, standby.stream_replicas)
    changed: list[str] = []
    recoveries: list[TailRecovery] = []
    recreated = False
    # Operator- and gateway-owned keys (level, failover record, offered counters) are
    # republished live by their writers; replaying an old epoch's copy would regress them.
    live = kv_stream(degradation_bucket(pipeline.stream))
    with failing_as(
        MirrorError, f"mirroring {pipeline.stream} from {active.name} into {standby.name}"
    ):
        async with (
            connect(standby, request_timeout=request_timeout) as standby_client,
            connect(active, request_timeout=request_timeout) as active_client,
        ):
            js = standby_client.jetstream(timeout=request_timeout)
            origin_js = active_client.jetstream(timeout=request_timeout)
            link_checked = False
            # Idempotency records (transcripts KV) and dead letters first, the message
            # stream last: a worker must never see a merged message before the record
            # that says it was already processed (caught by `surge chaos`).
            names = pipeline_streams(pipeline)
            for name in (*names[1:], names[0]):
                if name == pipeline.stream:
                    desired = main
                else:
                    origin = await stream_info(origin_js, name)
                    if origin is None:
                        continue  # not provisioned in the active region yet
                    desired = mirror_of(origin.config, active, standby.stream_replicas)
                info = await stream_info(js, name)
                if info is not None and is_mirror_of(info, active, name):
                    continue
                if info is not None and not link_checked:
                    newest = max(
                        token_of(info),
                        token_of(await stream_info(origin_js, pipeline.stream)),
                    )
                    if newest > leader_token:
                        raise MirrorError(
                            f"fenced: a newer leader (token {newest}) acted on "
                            f"{pipeline.stream}; this one (token {leader_token}) does not"
                        )
                if not link_checked:
                    # Check the link before touching anything: a mirror created while the
                    # leafnode is down backs off for many seconds, and an old primary's
                    # stream must not be deleted before the copy can start.
                    await _check_link(standby_client, standby, active, request_timeout)
                    link_checked = True
                    # Writes stop here before anything is merged: the message stream is
                    # fenced first, although it is merged last.
                    own_main = await stream_info(js, pipeline.stream)
                    if own_main is not None and own_main.config.mirror is None:
                        await fence(js, pipeline.stream)
                if info is not None:
                    if info.config.mirror is None:
                        await fence(js, name)
                    tail = TailRecovery(name)
                    if name != live:
                        tail = await recover_tail(js, origin_js, name)
                    if not tail.complete:
                        # Never delete a copy whose tail is not fully merged.
                        raise MirrorError(
                            f"tail of {name} in {standby.name} not fully recovered "
                            f"({tail.examined} examined, {tail.republished} republished, "
                            f"{tail.duplicates} duplicates, {tail.superseded} superseded); "
                            "keeping it and retrying"
                        )
                    await js.delete_stream(name)
                    log.warning(
                        "mirror.recreating",
                        mirrored_stream=name,
                        was="mirror" if info.config.mirror is not None else "source",
                        messages=info.state.messages,
                        fork_seq=tail.fork_seq,
                        tail=tail.examined,
                        recovered=tail.republished,
                        duplicates=tail.duplicates,
                        superseded=tail.superseded,
                    )
                    recoveries.append(tail)
                    recreated = True
                await js.add_stream(desired)
                changed.append(name)
    if not changed:
        return MirrorChange(standby.name, active.name, MirrorAction.UNCHANGED)
    action = MirrorAction.RECREATED if recreated else MirrorAction.CREATED
    recovered = sum(r.republished for r in recoveries)
    log.info("mirror.established", action=action.value, streams=changed, recovered=recovered)
    return MirrorChange(
        standby.name, active.name, action, tuple(changed), recovered, tuple(recoveries)
    )


async def _check_link(
    client: NatsClient, standby: RegionEndpoint, active: RegionEndpoint, request_timeout: float
) -> None:
    """Can `standby` reach `active`'s JetStream API (over the leafnode)?"""
    try:
        await client.jetstream(domain=active.js_domain, timeout=request_timeout).account_info()
    except (TimeoutError, nats.errors.Error) as exc:
        raise MirrorError(
            f"{standby.name} cannot reach the JetStream API of {active.name} "
            f"({active.api_prefix}) over the leafnode yet: {describe_exc(exc)}"
        ) from None


async def fence(js: JetStreamContext, stream: str) -> None:
    """Stop a stream from accepting writes by removing its subjects (JetStream then
    listens on the stream's own name only). Messages and consumers stay."""
    info = await js.stream_info(stream)
    if info.config.mirror is not None or info.config.subjects in ([stream], [], None):
        return
    await js.update_stream(replace(info.config, subjects=[]))


async def unfence(js: JetStreamContext, pipeline: PipelineConfig) -> None:
    """Undo `fence` on every pipeline stream (a failback that could not complete gives
    the writes back to the region that has them)."""
    for name in pipeline_streams(pipeline):
        info = await stream_info(js, name)
        if info is not None and info.config.mirror is None:
            await js.update_stream(replace(info.config, subjects=writable_subjects(pipeline, name)))


async def resume_writes(
    endpoint: RegionEndpoint,
    pipeline: PipelineConfig,
    *,
    leader_token: int,
    request_timeout: float,
) -> None:
    """Unfence the active region's streams when nothing is moving traffic: a failback
    fences them, and a leader that died before promoting the target leaves them so.
    Refused (MirrorError) when a newer leader has acted on the stream. Raises MirrorError."""
    with failing_as(MirrorError, f"resuming writes on {pipeline.stream} in {endpoint.name}"):
        async with connect(endpoint, request_timeout=request_timeout) as client:
            js = client.jetstream(timeout=request_timeout)
            newest = token_of(await stream_info(js, pipeline.stream))
            if newest > leader_token:
                raise MirrorError(
                    f"fenced: a newer leader (token {newest}) acted on {pipeline.stream} in "
                    f"{endpoint.name}; not resuming writes there"
                )
            await unfence(js, pipeline)
