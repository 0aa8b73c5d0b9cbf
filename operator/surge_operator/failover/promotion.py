"""Make a region's pipeline streams the writable ones (promotion), and move the writer
back to the original primary without losing a message (failback)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig

from surge_operator.errors import FailbackNotReadyError, PromotionError
from surge_operator.failover.endpoints import (
    RegionEndpoint,
    connect,
    failing_as,
    stream_info,
)
from surge_operator.failover.mirrors import META_ALLOW_DIRECT, fence, is_mirror_of, unfence
from surge_operator.failover.probe import ack_floors_of
from surge_operator.failover.recovery import (
    META_EPOCH,
    META_FORK_SEQ,
    META_LEADER_TOKEN,
    token_of,
)
from surge_operator.failover.streams import pipeline_streams, writable_subjects
from surge_workers import provision
from surge_workers.contract import PRIORITIES, Priority, consumer_name
from surge_workers.errors import SurgeWorkersError
from surge_workers.pipeline import PipelineConfig


@dataclass(frozen=True, slots=True)
class PromotionResult:
    region: str
    #: The message stream: "promoted" from a mirror, "created" empty, or "already" writable.
    stream: Literal["promoted", "created", "already"]
    messages: int
    last_seq: int
    #: Every pipeline stream turned from a mirror into a writable stream.
    promoted: tuple[str, ...] = ()
    consumers_created: tuple[str, ...] = ()
    start_seqs: Mapping[Priority, int] = field(default_factory=dict)


async def promote(
    endpoint: RegionEndpoint,
    pipeline: PipelineConfig,
    *,
    ack_floors: Mapping[Priority, int] | None = None,
    epoch: int = 0,
    leader_token: int = 0,
    request_timeout: float = 5.0,
) -> PromotionResult:
    """Make `endpoint`'s pipeline streams the writable ones. Idempotent.

    Fenced: refused (PromotionError) when the stream already carries the stamp of a leader
    with a higher Lease token, i.e. a newer operator leader has acted since this one
    last held the Lease.

    Each promoted stream is stamped with its fork sequence (the last sequence it shares
    with the old origin) and the new `epoch`, which is what tail recovery merges against
    when the old primary heals (see `recovery`).

    Drops the mirror config (nats-server >= 2.12) and sets the subjects, message stream
    first so writes resume as early as possible; creates the per-priority consumers
    starting after `ack_floors` (the old active region's last known floors; without them
    consumers start at the beginning and idempotent workers absorb the replay); promotes
    the dead-letter and KV mirrors; then provisions whatever is still missing.
    """
    if endpoint.stream_replicas is not None:
        # The region's own count: a smaller standby cannot hold the primary's R3 streams.
        pipeline = replace(pipeline, replicas=endpoint.stream_replicas)
    desired = provision.desired_stream_config(pipeline)
    promoted: list[str] = []
    with failing_as(
        PromotionError,
        f"promoting {pipeline.stream} in {endpoint.name}",
        also=(SurgeWorkersError,),
    ):
        async with connect(endpoint, request_timeout=request_timeout) as client:
            js = client.jetstream(timeout=request_timeout)
            info = await stream_info(js, pipeline.stream)
            if token_of(info) > leader_token:
                raise PromotionError(
                    f"fenced: {pipeline.stream} in {endpoint.name} was promoted by a newer "
                    f"leader (token {token_of(info)} > ours {leader_token}); not acting"
                )
            kind: Literal["promoted", "created", "already"]
            if info is None:
                await js.add_stream(stamped(desired, 0, epoch, leader_token))
                kind = "created"
            elif info.config.mirror is not None:
                info = await js.update_stream(
                    stamped(desired, info.state.last_seq, epoch, leader_token)
                )
                if info.config.mirror is not None:
                    raise PromotionError(
                        f"{endpoint.name}: the server kept the mirror config of "
                        f"{pipeline.stream}; promoting needs nats-server >= 2.12"
                    )
                kind = "promoted"
                promoted.append(pipeline.stream)
            else:
                kind = "already"
            # The old region's floors count in its own sequence space, which diverged from
            # this copy after the fork: a floor above what this copy holds would make the
            # consumers skip the first writes taken here (caught by `surge chaos`).
            held = (await js.stream_info(pipeline.stream)).state.last_seq
            floors = {p: min(seq, held) for p, seq in (ack_floors or {}).items()}
            created, starts = await _ensure_consumers(js, pipeline, floors)
            for name in pipeline_streams(pipeline)[1:]:
                if await _promote_aux(js, pipeline, name, epoch, leader_token):
                    promoted.append(name)
            await provision.provision_pipeline(js, pipeline)
            info = await js.stream_info(pipeline.stream)
    return PromotionResult(
        region=endpoint.name,
        stream=kind,
        messages=info.state.messages,
        last_seq=info.state.last_seq,
        promoted=tuple(promoted),
        consumers_created=created,
        start_seqs=starts,
    )


def stamped(config: StreamConfig, fork_seq: int, epoch: int, leader_token: int) -> StreamConfig:
    metadata = {k: v for k, v in (config.metadata or {}).items() if not k.startswith("_nats.")}
    metadata.update(
        {
            META_FORK_SEQ: str(fork_seq),
            META_EPOCH: str(epoch),
            META_LEADER_TOKEN: str(leader_token),
        }
    )
    return replace(config, metadata=metadata)


async def _promote_aux(
    js: JetStreamContext, pipeline: PipelineConfig, name: str, epoch: int, leader_token: int
) -> bool:
    info = await stream_info(js, name)
    if info is None or info.config.mirror is None:
        return False
    metadata = dict(info.config.metadata or {})
    allow_direct = metadata.pop(META_ALLOW_DIRECT, "false") == "true"
    config = replace(
        info.config,
        mirror=None,
        subjects=writable_subjects(pipeline, name),
        allow_direct=allow_direct,
        metadata=metadata,
    )
    await js.update_stream(stamped(config, info.state.last_seq, epoch, leader_token))
    return True


async def _ensure_consumers(
    js: JetStreamContext, pipeline: PipelineConfig, ack_floors: Mapping[Priority, int]
) -> tuple[tuple[str, ...], dict[Priority, int]]:
    """Create missing consumers; existing ones keep their position (idempotent retry)."""
    created: list[str] = []
    starts: dict[Priority, int] = {}
    for priority in PRIORITIES:
        config: ConsumerConfig = provision.desired_consumer_config(pipeline, priority)
        name = consumer_name(priority)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.consumer_info(pipeline.stream, name)
            continue
        floor = ack_floors.get(priority, 0)
        if floor > 0:
            config = replace(
                config, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=floor + 1
            )
            starts[priority] = floor + 1
        await js.add_consumer(pipeline.stream, config)
        created.append(name)
    return tuple(created), starts


async def failback(
    target: RegionEndpoint,
    current: RegionEndpoint,
    pipeline: PipelineConfig,
    *,
    max_behind: int = 1000,
    catch_up: float = 5.0,
    epoch: int = 0,
    leader_token: int = 0,
    request_timeout: float = 5.0,
) -> PromotionResult:
    """Move the writer from `current` back to `target`, losing nothing.

    `target` must already mirror `current` (the controller re-establishes that as soon as
    `target` answers probes) and be at most `max_behind` messages behind, so writes are
    never paused for a long copy. Then `current`'s streams are fenced, `target`'s mirrors
    catch up to their last sequences, and `target` is promoted with `current`'s ack
    floors. If it cannot catch up within `catch_up` seconds, `current` is unfenced and
    FailbackNotReadyError is raised (writes paused at most that long).
    """
    with failing_as(
        PromotionError, f"failback to {target.name}", unreachable=FailbackNotReadyError
    ):
        async with (
            connect(current, request_timeout=request_timeout) as cur_client,
            connect(target, request_timeout=request_timeout) as tgt_client,
        ):
            cur = cur_client.jetstream(timeout=request_timeout)
            tgt = tgt_client.jetstream(timeout=request_timeout)
            if token_of(await stream_info(cur, pipeline.stream)) > leader_token:
                raise PromotionError(
                    f"fenced: {pipeline.stream} in {current.name} was promoted by a newer "
                    f"leader than ours (token {leader_token}); not failing back"
                )
            mirror = await stream_info(tgt, pipeline.stream)
            if mirror is None or not is_mirror_of(mirror, current, pipeline.stream):
                raise FailbackNotReadyError(
                    f"{target.name} is not yet a mirror of {current.name}; retrying once it is"
                )
            behind = (await cur.stream_info(pipeline.stream)).state.last_seq - (
                mirror.state.last_seq
            )
            if behind > max_behind:
                raise FailbackNotReadyError(
                    f"{target.name} mirror is {behind} messages behind {current.name}; "
                    f"failing back once it is within {max_behind}"
                )
            goals: dict[str, int] = {}
            for name in pipeline_streams(pipeline):
                theirs = await stream_info(tgt, name)
                if await stream_info(cur, name) is None or theirs is None:
                    continue
                if theirs.config.mirror is None:
                    continue  # not a mirror there: promote leaves it, provision fixes it
                await fence(cur, name)
                goals[name] = (await cur.stream_info(name)).state.last_seq
            floors = await ack_floors_of(cur, pipeline.stream)
            deadline = time.monotonic() + catch_up
            while goals:
                for name, goal in list(goals.items()):
                    if (await tgt.stream_info(name)).state.last_seq >= goal:
                        del goals[name]
                if goals and time.monotonic() > deadline:
                    await unfence(cur, pipeline)
                    raise FailbackNotReadyError(
                        f"{target.name} mirrors of {', '.join(goals)} did not catch up with "
                        f"{current.name} within {catch_up:.0f}s; writes resumed on {current.name}"
                    )
                if goals:
                    await asyncio.sleep(0.05)
    return await promote(
        target,
        pipeline,
        ack_floors=floors,
        epoch=epoch,
        leader_token=leader_token,
        request_timeout=request_timeout,
    )
