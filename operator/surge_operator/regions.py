"""Regions at the NATS edge: probe health, mirror the active stream, promote, fail back.

Each region runs its own nats-server (or cluster) with a distinct JetStream *domain*; the
regions are linked by a leafnode connection so that one region can reach another's
JetStream API under ``$JS.<domain>.API``. In a standby region every pipeline stream
(messages, dead letters, and the KV buckets: degradation, routing, transcripts) is a
JetStream *mirror* of the same-named stream in the active region (no subjects, read-only).
The pure decisions live in `surge_operator.policy.failover`; this module does the I/O.
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
      its mirror. Nothing is lost and writes pause only for the catch-up.
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
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    ExternalStream,
    RawStreamMsg,
    StreamConfig,
    StreamInfo,
    StreamSource,
)

from surge_operator.api import HistoryEntry, Phase, Region
from surge_operator.errors import NatsUnavailableError, SurgeError
from surge_operator.policy.failover import (
    Action,
    FailoverConfig,
    FailoverDecision,
    FailoverReason,
    FailoverState,
    ProbeResult,
    decide,
)
from surge_workers import provision
from surge_workers.contract import (
    PRIORITIES,
    Priority,
    consumer_name,
    dead_letter_stream,
    stream_subjects,
)
from surge_workers.errors import SurgeWorkersError
from surge_workers.pipeline import PipelineConfig

# --------------------------------------------------------------------------- errors


class FailoverError(SurgeError):
    """Moving traffic between regions failed; the next tick tries again."""

    reason = "FailoverFailed"
    retry_after = 2.0


class PromotionError(FailoverError):
    reason = "PromotionFailed"


class MirrorError(FailoverError):
    """The standby's mirror could not be created or re-established."""

    reason = "MirrorSetupFailed"


class FailbackNotReadyError(FailoverError):
    """The original primary is not (yet) a caught-up mirror of the active region."""

    reason = "FailbackPending"


class UnsupportedStreamError(FailoverError):
    """The stream's configuration cannot be mirrored safely (e.g. work-queue retention,
    where the mirror's own consumer would remove messages from the origin)."""

    reason = "FailoverUnsupported"


# --------------------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class RegionEndpoint:
    """How to reach one region's NATS. `connect_options` are passed to `nats.connect`
    (e.g. ``NatsAuth.connect_options()``: user_credentials / user+password / token) and
    never logged. `domain` is the region's JetStream domain (default: the region name)."""

    name: str
    url: str
    domain: str | None = None
    connect_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_region(
        cls,
        region: Region,
        connect_options: Mapping[str, Any] | None = None,
        *,
        domain: str | None = None,
        url: str | None = None,
    ) -> RegionEndpoint:
        """From the spec's Region; credentials (and a TLS context when
        `region.nats.tls`) come in `connect_options`, resolved by the caller. `url`
        overrides the spec's (a managed region's URL is derived from the cluster)."""
        resolved = url or region.nats.url
        if resolved is None:
            raise ValueError(f"region {region.name}: no NATS URL (managed: pass url=)")
        return cls(
            name=region.name,
            url=resolved,
            domain=domain or region.jetstream_domain,
            connect_options=dict(connect_options or {}),
        )

    @property
    def js_domain(self) -> str:
        return self.domain or self.name

    @property
    def api_prefix(self) -> str:
        """Where other regions reach this region's JetStream API over the leafnode."""
        return f"$JS.{self.js_domain}.API"


@contextlib.asynccontextmanager
async def connect(endpoint: RegionEndpoint, *, request_timeout: float) -> AsyncIterator[NatsClient]:
    """A short-lived connection that fails fast: no reconnects, bounded connect time.

    Fresh connections per probe are deliberate: a pooled connection that is reconnecting
    says nothing about whether the region accepts new clients right now.
    """

    errors: list[Exception] = []

    async def quiet(exc: Exception) -> None:
        """nats-py logs every failed connect; keep the cause and report it ourselves."""
        errors.append(exc)

    client = NatsClient()
    try:
        await asyncio.wait_for(
            client.connect(
                servers=[u.strip() for u in endpoint.url.split(",") if u.strip()],
                connect_timeout=max(1, math.ceil(request_timeout)),
                allow_reconnect=False,
                # nats-py treats 0 as "retry forever" during the initial connect; one
                # immediate retry per server, then NoServersError, keeps a probe fast.
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                error_cb=quiet,
                name=f"surge-failover-{endpoint.name}",
                **dict(endpoint.connect_options),
            ),
            timeout=request_timeout + 0.5,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        with contextlib.suppress(Exception):
            await client.close()
        # NoServersError hides why each attempt failed; the callback saw the real cause.
        cause = errors[-1] if errors and isinstance(exc, nats.errors.NoServersError) else exc
        raise NatsUnavailableError(
            f"cannot connect to region {endpoint.name} at {endpoint.url}: {_describe_exc(cause)}"
        ) from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def _describe_exc(exc: BaseException) -> str:
    if isinstance(exc, nats.js.errors.APIError):
        return f"{exc.description or type(exc).__name__} (code {exc.err_code})"
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name


async def _stream_info(js: JetStreamContext, stream: str) -> StreamInfo | None:
    try:
        return await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return None


# --------------------------------------------------------------------------- streams


def kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def pipeline_streams(pipeline: PipelineConfig) -> tuple[str, ...]:
    """Every stream a region holds for one pipeline, the message stream first: the
    dead letters and the KV buckets (routing, transcripts, degradation) are mirrored too,
    so the transcripts that make processing idempotent survive a failover."""
    names = [pipeline.stream]
    if pipeline.dead_letter:
        names.append(dead_letter_stream(pipeline.stream))
    names += [kv_stream(kv.bucket) for kv in provision.desired_kv_configs(pipeline)]
    return tuple(names)


def writable_subjects(pipeline: PipelineConfig, stream: str) -> list[str]:
    """The subjects a pipeline stream listens on when it is the writable copy."""
    if stream == pipeline.stream:
        return stream_subjects(pipeline.subject_prefix)
    if stream == dead_letter_stream(pipeline.stream):
        return list(provision.desired_dead_letter_config(pipeline).subjects or [])
    if stream.startswith("KV_"):
        return [f"$KV.{stream.removeprefix('KV_')}.>"]
    raise ValueError(f"{stream} is not a stream of pipeline {pipeline.stream}")


# --------------------------------------------------------------------------- probe

StreamRole = Literal["missing", "source", "mirror"]


@dataclass(frozen=True, slots=True)
class StreamView:
    """One stream as a probe saw it in one region."""

    role: StreamRole
    #: For a mirror: the API prefix of the region it mirrors (None: same domain).
    mirror_api: str | None = None
    mirror_lag: int | None = None
    #: Seconds since the mirror last heard from its origin (None: never / not a mirror).
    mirror_seen: float | None = None
    last_seq: int = 0
    messages: int = 0


_MISSING = StreamView("missing")


@dataclass(frozen=True, slots=True)
class RegionProbe:
    """A probe's verdict for the policy (`result`) plus what the controller needs to act:
    each pipeline stream's role here and the message stream's consumer ack floors."""

    result: ProbeResult
    streams: Mapping[str, StreamView] = field(default_factory=dict)
    #: Name of the message stream (the first stream probed).
    main: str | None = None
    ack_floors: Mapping[Priority, int] = field(default_factory=dict)
    #: The JetStream domain the server reports (mirrors address regions by it).
    domain: str | None = None

    @property
    def ok(self) -> bool:
        return self.result.ok

    def stream(self, name: str | None = None) -> StreamView:
        key = name or self.main
        return self.streams.get(key, _MISSING) if key else _MISSING

    @property
    def role(self) -> StreamRole | None:
        return self.stream().role if self.main and self.ok else None

    @property
    def mirror_api(self) -> str | None:
        return self.stream().mirror_api

    @property
    def last_seq(self) -> int:
        return self.stream().last_seq


async def probe(
    endpoint: RegionEndpoint,
    streams: Sequence[str] = (),
    *,
    at: float,
    request_timeout: float = 1.0,
) -> RegionProbe:
    """Is the region's NATS up and its JetStream answering? Never raises.

    Healthy means: a new client connects and JetStream answers account info within
    `request_timeout`. The streams' state is reported, not judged: a standby whose stream
    is missing is still a live region (promotion then starts from an empty stream).
    `streams[0]` is the message stream; its consumers' ack floors are read when it is a
    writable (non-mirror) stream.
    """
    started = time.monotonic()
    views: dict[str, StreamView] = {}
    ack_floors: dict[Priority, int] = {}
    try:
        async with connect(endpoint, request_timeout=request_timeout) as client:
            js = client.jetstream(timeout=request_timeout)
            account = await js.account_info()
            for name in streams:
                views[name] = _view(await _stream_info(js, name))
            if streams and views[streams[0]].role == "source":
                ack_floors = await _ack_floors(js, streams[0])
    except NatsUnavailableError as exc:
        return RegionProbe(ProbeResult.failure(endpoint.name, at, exc.message))
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        reason = f"JetStream in {endpoint.name} not answering: {_describe_exc(exc)}"
        return RegionProbe(ProbeResult.failure(endpoint.name, at, reason))
    result = ProbeResult.success(endpoint.name, at, latency=time.monotonic() - started)
    main = streams[0] if streams else None
    return RegionProbe(result, views, main=main, ack_floors=ack_floors, domain=account.domain)


def _seconds_since(active_ns: int | None) -> float | None:
    """StreamSourceInfo.active: nanoseconds since last contact, -1 when never."""
    return active_ns / 1e9 if active_ns is not None and active_ns >= 0 else None


def _view(info: StreamInfo | None) -> StreamView:
    if info is None:
        return _MISSING
    mirror = info.config.mirror
    return StreamView(
        role="mirror" if mirror is not None else "source",
        mirror_api=mirror.external.api if mirror and mirror.external else None,
        mirror_lag=info.mirror.lag if info.mirror is not None else None,
        mirror_seen=_seconds_since(info.mirror.active if info.mirror is not None else None),
        last_seq=info.state.last_seq,
        messages=info.state.messages,
    )


async def _ack_floors(js: JetStreamContext, stream: str) -> dict[Priority, int]:
    floors: dict[Priority, int] = {}
    for priority in PRIORITIES:
        try:
            info = await js.consumer_info(stream, consumer_name(priority))
        except nats.js.errors.NotFoundError:
            continue
        if info.ack_floor is not None:
            floors[priority] = info.ack_floor.stream_seq
    return floors


# --------------------------------------------------------------------------- mirrors

#: Mirror metadata: the origin's allow_direct, restored when the mirror is promoted.
META_ALLOW_DIRECT = "surge.dev/origin-allow-direct"


def _external(stream: str, source: RegionEndpoint) -> StreamSource:
    # Same account on both ends of the leafnode, so no deliver prefix is needed; it only
    # matters when the origin lives in another account.
    return StreamSource(name=stream, external=ExternalStream(api=source.api_prefix))


def mirror_config(pipeline: PipelineConfig, source: RegionEndpoint) -> StreamConfig:
    """The standby's message stream: the pipeline's stream limits, no subjects, mirroring
    the same-named stream in `source`'s JetStream domain over the leafnode."""
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
    )


def mirror_of(origin: StreamConfig, source: RegionEndpoint) -> StreamConfig:
    """A mirror of a stream whose config is read from the origin (dead letters, KV
    buckets): same limits and storage, no subjects, no direct gets."""
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
    #: Streams created or recreated as mirrors (message stream first).
    streams: tuple[str, ...] = ()
    #: Messages of an old primary's tails re-published to the active region.
    recovered: int = 0


def _mirrors(info: StreamInfo, source: RegionEndpoint, stream: str) -> bool:
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
    request_timeout: float = 5.0,
) -> MirrorChange:
    """Make every pipeline stream in `standby` a mirror of `active`'s. Idempotent.

    A stream that is not already that mirror (an old primary that came back, or a mirror
    of a region that is no longer active) is fenced, its tail recovered into the active
    region, deleted and recreated: JetStream cannot change a mirror's source or turn a
    normal stream into a mirror. Dead-letter and KV streams are mirrored once they exist
    in the active region.
    """
    log = structlog.get_logger("surge_operator.regions").bind(
        region=standby.name, source=active.name, stream=pipeline.stream
    )
    main = mirror_config(pipeline, active)
    changed: list[str] = []
    recovered = 0
    recreated = False
    try:
        async with (
            connect(standby, request_timeout=request_timeout) as standby_client,
            connect(active, request_timeout=request_timeout) as active_client,
        ):
            js = standby_client.jetstream(timeout=request_timeout)
            origin_js = active_client.jetstream(timeout=request_timeout)
            link_checked = False
            for name in pipeline_streams(pipeline):
                if name == pipeline.stream:
                    desired = main
                else:
                    origin = await _stream_info(origin_js, name)
                    if origin is None:
                        continue  # not provisioned in the active region yet
                    desired = mirror_of(origin.config, active)
                info = await _stream_info(js, name)
                if info is not None and _mirrors(info, active, name):
                    continue
                if not link_checked:
                    # Check the link before touching anything: a mirror created while the
                    # leafnode is down backs off for many seconds, and an old primary's
                    # stream must not be deleted before the copy can start.
                    await _check_link(standby_client, standby, active, request_timeout)
                    link_checked = True
                if info is not None:
                    if info.config.mirror is None:
                        await fence(js, name)
                    tail = await recover_tail(js, origin_js, name)
                    await js.delete_stream(name)
                    log.warning(
                        "mirror.recreating",
                        mirrored_stream=name,
                        was="mirror" if info.config.mirror is not None else "source",
                        messages=info.state.messages,
                        recovered=tail,
                    )
                    recovered += tail
                    recreated = True
                await js.add_stream(desired)
                changed.append(name)
    except NatsUnavailableError as exc:
        raise MirrorError(exc.message) from None
    except (TimeoutError, nats.errors.Error) as exc:
        raise MirrorError(
            f"mirroring {pipeline.stream} from {active.name} into {standby.name} failed: "
            f"{_describe_exc(exc)}"
        ) from None
    if not changed:
        return MirrorChange(standby.name, active.name, MirrorAction.UNCHANGED)
    action = MirrorAction.RECREATED if recreated else MirrorAction.CREATED
    log.info("mirror.established", action=action.value, streams=changed, recovered=recovered)
    return MirrorChange(standby.name, active.name, action, tuple(changed), recovered)


async def _check_link(
    client: NatsClient, standby: RegionEndpoint, active: RegionEndpoint, request_timeout: float
) -> None:
    """Can `standby` reach `active`'s JetStream API (over the leafnode)?"""
    try:
        await client.jetstream(domain=active.js_domain, timeout=request_timeout).account_info()
    except (TimeoutError, nats.errors.Error) as exc:
        raise MirrorError(
            f"{standby.name} cannot reach the JetStream API of {active.name} "
            f"({active.api_prefix}) over the leafnode yet: {_describe_exc(exc)}"
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
        info = await _stream_info(js, name)
        if info is not None and info.config.mirror is None:
            await js.update_stream(replace(info.config, subjects=writable_subjects(pipeline, name)))


#: How far back `recover_tail` walks before giving up on finding the common prefix.
MAX_TAIL = 100_000


async def recover_tail(
    old: JetStreamContext, active: JetStreamContext, stream: str, *, max_tail: int = MAX_TAIL
) -> int:
    """Re-publish the messages `old` holds that the active region's stream lacks.

    Mirrors keep sequence numbers, so the streams share a prefix: walking back from the
    end of `old`, the first sequence whose message (subject, Nats-Msg-Id, payload) is the
    same in both streams ends the tail. Re-publishing keeps headers, so JetStream's
    duplicate window drops anything the active region already has (KV entries keep their
    operation headers, so deletes stay deletes).
    """
    info = await old.stream_info(stream)
    if info.state.messages == 0:
        return 0
    tail: list[RawStreamMsg] = []
    seq = info.state.last_seq
    while seq >= info.state.first_seq and len(tail) < max_tail:
        try:
            mine = await old.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            seq -= 1  # deleted or expired here: nothing to recover at this sequence
            continue
        if await _same_message(active, stream, seq, mine):
            break
        tail.append(mine)
        seq -= 1
    for msg in reversed(tail):  # original order, so per-conversation order holds
        headers = {
            k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-Expected")
        }
        await active.publish(msg.subject or "", msg.data or b"", headers=headers or None)
    return len(tail)


async def _same_message(js: JetStreamContext, stream: str, seq: int, msg: RawStreamMsg) -> bool:
    try:
        theirs = await js.get_msg(stream, seq)
    except nats.js.errors.NotFoundError:
        return False
    mine_id = (msg.headers or {}).get("Nats-Msg-Id")
    theirs_id = (theirs.headers or {}).get("Nats-Msg-Id")
    return bool(theirs.subject == msg.subject and mine_id == theirs_id and theirs.data == msg.data)


# --------------------------------------------------------------------------- promotion


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
    request_timeout: float = 5.0,
) -> PromotionResult:
    """Make `endpoint`'s pipeline streams the writable ones. Idempotent.

    Drops the mirror config (nats-server >= 2.12) and sets the subjects, message stream
    first so writes resume as early as possible; creates the per-priority consumers
    starting after `ack_floors` (the old active region's last known floors; without them
    consumers start at the beginning and idempotent workers absorb the replay); promotes
    the dead-letter and KV mirrors; then provisions whatever is still missing.
    """
    desired = provision.desired_stream_config(pipeline)
    promoted: list[str] = []
    try:
        async with connect(endpoint, request_timeout=request_timeout) as client:
            js = client.jetstream(timeout=request_timeout)
            info = await _stream_info(js, pipeline.stream)
            kind: Literal["promoted", "created", "already"]
            if info is None:
                await js.add_stream(desired)
                kind = "created"
            elif info.config.mirror is not None:
                info = await js.update_stream(desired)
                if info.config.mirror is not None:
                    raise PromotionError(
                        f"{endpoint.name}: the server kept the mirror config of "
                        f"{pipeline.stream}; promoting needs nats-server >= 2.12"
                    )
                kind = "promoted"
                promoted.append(pipeline.stream)
            else:
                kind = "already"
            created, starts = await _ensure_consumers(js, pipeline, ack_floors or {})
            for name in pipeline_streams(pipeline)[1:]:
                if await _promote_aux(js, pipeline, name):
                    promoted.append(name)
            await provision.provision_pipeline(js, pipeline)
            info = await js.stream_info(pipeline.stream)
    except NatsUnavailableError as exc:
        raise PromotionError(exc.message) from None
    except (TimeoutError, nats.errors.Error, SurgeWorkersError) as exc:
        raise PromotionError(
            f"promoting {pipeline.stream} in {endpoint.name} failed: {_describe_exc(exc)}"
        ) from None
    return PromotionResult(
        region=endpoint.name,
        stream=kind,
        messages=info.state.messages,
        last_seq=info.state.last_seq,
        promoted=tuple(promoted),
        consumers_created=created,
        start_seqs=starts,
    )


async def _promote_aux(js: JetStreamContext, pipeline: PipelineConfig, name: str) -> bool:
    info = await _stream_info(js, name)
    if info is None or info.config.mirror is None:
        return False
    metadata = dict(info.config.metadata or {})
    allow_direct = metadata.pop(META_ALLOW_DIRECT, "false") == "true"
    await js.update_stream(
        replace(
            info.config,
            mirror=None,
            subjects=writable_subjects(pipeline, name),
            allow_direct=allow_direct,
            metadata={k: v for k, v in metadata.items() if not k.startswith("_nats.")},
        )
    )
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
    try:
        async with (
            connect(current, request_timeout=request_timeout) as cur_client,
            connect(target, request_timeout=request_timeout) as tgt_client,
        ):
            cur = cur_client.jetstream(timeout=request_timeout)
            tgt = tgt_client.jetstream(timeout=request_timeout)
            mirror = await _stream_info(tgt, pipeline.stream)
            if mirror is None or not _mirrors(mirror, current, pipeline.stream):
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
                theirs = await _stream_info(tgt, name)
                if await _stream_info(cur, name) is None or theirs is None:
                    continue
                if theirs.config.mirror is None:
                    continue  # not a mirror there: promote leaves it, provision fixes it
                await fence(cur, name)
                goals[name] = (await cur.stream_info(name)).state.last_seq
            floors = await _ack_floors(cur, pipeline.stream)
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
    except NatsUnavailableError as exc:
        raise FailbackNotReadyError(exc.message) from None
    except (TimeoutError, nats.errors.Error) as exc:
        raise PromotionError(f"failback to {target.name} failed: {_describe_exc(exc)}") from None
    return await promote(target, pipeline, ack_floors=floors, request_timeout=request_timeout)


# --------------------------------------------------------------------------- controller


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event to emit (the operator maps it onto kopf.event/info/warn)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """Everything one tick found and did, in the shape status and events need."""

    at: float
    decision: FailoverDecision
    probes: Mapping[str, RegionProbe]
    active_region: str
    epoch: int
    #: True when traffic is served by a region other than the spec's primary.
    failed_over: bool
    condition_reason: str
    condition_message: str
    promotion: PromotionResult | None = None
    mirrors: tuple[MirrorChange, ...] = ()
    history_entry: HistoryEntry | None = None
    event: Event | None = None
    error: FailoverError | None = None

    @property
    def moved(self) -> bool:
        """Traffic changed region in this tick (promotion or failback carried out)."""
        return self.promotion is not None

    @property
    def phase_hint(self) -> Phase | None:
        """FailingOver while a decided promotion has not completed; None otherwise."""
        return Phase.FAILING_OVER if self.error is not None and self.decision.acts else None


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FailoverController:
    """Probe every region, decide (pure), act, keep mirrors in place. One per cluster.

    Not thread-safe; call `tick` from one task. `clock` gives wall-clock seconds (history
    entries carry RFC 3339 times); tests pass a fake.
    """

    def __init__(
        self,
        *,
        cluster: str,
        endpoints: Sequence[RegionEndpoint],
        primary: str,
        pipeline: PipelineConfig,
        config: FailoverConfig,
        active: str | None = None,
        epoch: int = 0,
        probe_timeout: float | None = None,
        action_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoints = {e.name: e for e in endpoints}
        self.pipeline = pipeline
        self.config = config
        self.state = FailoverState.initial(
            [e.name for e in endpoints], primary, active=active, epoch=epoch
        )
        # A probe must finish well inside one interval, or probes pile up.
        self.probe_timeout = probe_timeout or min(2.0, max(0.2, config.probe_interval * 0.5))
        self.action_timeout = action_timeout
        self.clock = clock
        #: Last ack floors seen per region, so a promotion resumes where workers were.
        self.ack_floors: dict[str, Mapping[Priority, int]] = {}
        self.cluster = cluster

    def _logger(self, **context: Any) -> Any:
        # Bound per tick, not once in __init__: binding resolves structlog's configuration,
        # and the entrypoint (or a test's capture_logs) may configure it later.
        return structlog.get_logger("surge_operator.regions").bind(cluster=self.cluster, **context)

    @property
    def streams(self) -> tuple[str, ...]:
        return pipeline_streams(self.pipeline)

    @property
    def active(self) -> RegionEndpoint:
        return self.endpoints[self.state.active]

    def update(
        self,
        *,
        endpoints: Sequence[RegionEndpoint],
        primary: str,
        pipeline: PipelineConfig,
        config: FailoverConfig,
    ) -> None:
        """Follow a spec change without forgetting health, epoch or the active region."""
        self.endpoints = {e.name: e for e in endpoints}
        self.pipeline = pipeline
        self.config = config
        self.state = self.state.with_regions([e.name for e in endpoints], primary)

    async def probe_all(self, at: float) -> dict[str, RegionProbe]:
        results = await asyncio.gather(
            *(
                probe(e, self.streams, at=at, request_timeout=self.probe_timeout)
                for e in self.endpoints.values()
            )
        )
        return {r.result.region: r for r in results}

    async def tick(self, *, failback_requested: bool = False) -> TickOutcome:
        at = self.clock()
        probes = await self.probe_all(at)
        before = self.state
        decision = decide(
            before,
            [p.result for p in probes.values()],
            self.config,
            at=at,
            failback_requested=failback_requested,
        )
        log = self._logger(region=before.active, epoch=before.epoch)
        for name, p in probes.items():
            if p.ok and p.role == "source" and p.ack_floors and name == before.active:
                self.ack_floors[name] = p.ack_floors
        promotion: PromotionResult | None = None
        error: FailoverError | None = None
        if decision.acts:
            assert decision.target is not None
            assert decision.source is not None
            log.warning(
                f"failover.{decision.action.value}",
                target=decision.target,
                reason=decision.reason.value,
                detail=decision.message,
            )
            try:
                promotion = await self._carry_out(decision)
            except FailoverError as exc:
                error = exc
                self.state = decision.observed
                log.error("failover.action_failed", target=decision.target, error=exc.message)
            else:
                self.state = decision.state
                log.warning(
                    "failover.done",
                    target=decision.target,
                    new_epoch=decision.epoch,
                    stream=promotion.stream,
                    messages=promotion.messages,
                    start_seqs={p.value: s for p, s in promotion.start_seqs.items()},
                )
        else:
            self.state = decision.state
        mirrors = await self._reconcile_mirrors(probes)
        return self._outcome(at, decision, probes, promotion, mirrors, error)

    async def _carry_out(self, decision: FailoverDecision) -> PromotionResult:
        assert decision.target is not None
        assert decision.source is not None
        target = self.endpoints[decision.target]
        source = self.endpoints[decision.source]
        if decision.action is Action.FAILBACK:
            return await failback(
                target, source, self.pipeline, request_timeout=self.action_timeout
            )
        return await promote(
            target,
            self.pipeline,
            ack_floors=self.ack_floors.get(decision.source),
            request_timeout=self.action_timeout,
        )

    async def _reconcile_mirrors(
        self, probes: Mapping[str, RegionProbe]
    ) -> tuple[MirrorChange, ...]:
        """Every reachable non-active region should mirror the active one. Cheap when it
        already does (the probe told us); failures are logged and retried next tick."""
        active = self.active
        active_probe = probes.get(active.name)
        if active_probe is None or not active_probe.ok:
            return ()  # nothing to mirror from; the next promotion fixes this
        if active_probe.domain != active.js_domain:
            # Mirrors address the active region as $JS.<domain>.API: with the wrong
            # domain they would retry forever against nothing.
            self._logger(region=active.name, epoch=self.state.epoch).error(
                "mirror.domain_mismatch",
                expected=active.js_domain,
                reported=active_probe.domain,
                hint="set jetstream { domain: ... } in the region's nats-server config",
            )
            return ()
        changes: list[MirrorChange] = []
        for name, endpoint in self.endpoints.items():
            p = probes.get(name)
            if name == active.name or p is None or not p.ok:
                continue
            if self._mirrors_active(p, active_probe):
                continue
            log = self._logger(region=name, epoch=self.state.epoch)
            try:
                change = await ensure_mirror(
                    endpoint, active, self.pipeline, request_timeout=self.action_timeout
                )
            except FailoverError as exc:
                log.error("mirror.failed", source=active.name, error=exc.message)
                continue
            log.info(
                "mirror.reconciled",
                source=active.name,
                action=change.action.value,
                recovered=change.recovered,
            )
            changes.append(change)
        return tuple(changes)

    def _mirrors_active(self, standby: RegionProbe, active: RegionProbe) -> bool:
        """Does the standby mirror every stream the active region has (the message
        stream always: it must exist before the pipeline is provisioned)?"""
        for name in self.streams:
            if name != self.pipeline.stream and active.stream(name).role == "missing":
                continue
            view = standby.stream(name)
            if view.role != "mirror" or view.mirror_api != self.active.api_prefix:
                return False
        return True

    def _outcome(
        self,
        at: float,
        decision: FailoverDecision,
        probes: Mapping[str, RegionProbe],
        promotion: PromotionResult | None,
        mirrors: tuple[MirrorChange, ...],
        error: FailoverError | None,
    ) -> TickOutcome:
        state = self.state
        failed_over = state.active != state.original_primary
        history: HistoryEntry | None = None
        event: Event | None = None
        if promotion is not None and decision.target and decision.source:
            kind: Literal["failover", "failback"] = (
                "failback" if decision.action is Action.FAILBACK else "failover"
            )
            history = HistoryEntry.model_validate(
                {
                    "time": rfc3339(at),
                    "kind": kind,
                    "from": decision.source,
                    "to": decision.target,
                    "reason": decision.message[:1024],
                }
            )
            event = Event(
                "Warning" if kind == "failover" else "Normal",
                decision.reason.value,
                decision.message,
            )
            reason, message = decision.reason.value, decision.message
        elif error is not None:
            event = Event("Warning", error.reason, error.message)
            reason, message = error.reason, f"{decision.message}; {error.message}"
        else:
            reason, message = decision.reason.value, decision.message
            if not failed_over and decision.reason is FailoverReason.HEALTHY:
                reason = "NotFailedOver"
        return TickOutcome(
            at=at,
            decision=decision,
            probes=probes,
            active_region=state.active,
            epoch=state.epoch,
            failed_over=failed_over,
            condition_reason=reason,
            condition_message=message,
            promotion=promotion,
            mirrors=mirrors,
            history_entry=history,
            event=event,
            error=error,
        )


__all__ = [
    "Event",
    "FailbackNotReadyError",
    "FailoverController",
    "FailoverError",
    "MirrorAction",
    "MirrorChange",
    "MirrorError",
    "PromotionError",
    "PromotionResult",
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
