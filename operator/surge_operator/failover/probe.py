"""Probe one region: is its NATS up, what role does each pipeline stream play there, and
where are the message stream's consumers' ack floors. Never raises."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from surge_operator.errors import NatsUnavailableError, RecordError
from surge_operator.failover.endpoints import (
    RegionEndpoint,
    connect,
    describe_exc,
    failing_as,
    stream_info,
)
from surge_operator.failover.recovery import epoch_of
from surge_operator.failover.streams import kv_stream
from surge_operator.policy.failover import ProbeResult
from surge_workers.contract import (
    FAILOVER_KEY,
    PRIORITIES,
    FailoverRecord,
    Priority,
    consumer_name,
    decode_failover,
    degradation_bucket,
    encode_failover,
)
from surge_workers.pipeline import PipelineConfig

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
    #: For a writable stream: the epoch its promotion stamped on it (None: none).
    epoch: int | None = None
    #: A non-mirror stream without its subjects (`mirrors.fence`): it takes no writes.
    fenced: bool = False


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
    #: The failover record held here (written in the active region, mirrored to standbys).
    record: FailoverRecord | None = None

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
    def fenced(self) -> tuple[str, ...]:
        """The writable streams here that are fenced (none when the probe failed)."""
        if not self.ok:
            return ()
        return tuple(name for name, view in self.streams.items() if view.fenced)

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
                views[name] = _view(await stream_info(js, name))
            if streams and views[streams[0]].role == "source":
                ack_floors = await ack_floors_of(js, streams[0])
            record = await read_record(js, streams[0]) if streams else None
    except NatsUnavailableError as exc:
        return RegionProbe(ProbeResult.failure(endpoint.name, at, exc.message))
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        reason = f"JetStream in {endpoint.name} not answering: {describe_exc(exc)}"
        return RegionProbe(ProbeResult.failure(endpoint.name, at, reason))
    main = streams[0] if streams else None
    view = views.get(main) if main else None
    result = ProbeResult.success(
        endpoint.name,
        at,
        latency=time.monotonic() - started,
        last_seq=view.last_seq if view is not None and view.role != "missing" else None,
        mirror_lag=view.mirror_lag if view is not None and view.role == "mirror" else None,
        epoch=view.epoch if view is not None and view.role == "source" else None,
    )
    return RegionProbe(
        result, views, main=main, ack_floors=ack_floors, domain=account.domain, record=record
    )


def record_subject(stream: str) -> str:
    return f"$KV.{degradation_bucket(stream)}.{FAILOVER_KEY}"


async def read_record(js: JetStreamContext, stream: str) -> FailoverRecord | None:
    """The failover record in this region's degradation bucket (None when absent)."""
    try:
        msg = await js.get_last_msg(kv_stream(degradation_bucket(stream)), record_subject(stream))
    except nats.js.errors.NotFoundError:
        return None
    return decode_failover(msg.data)


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
        epoch=epoch_of(info) if mirror is None else None,
        fenced=mirror is None and info.config.subjects in ([], None, [info.config.name]),
    )


async def ack_floors_of(js: JetStreamContext, stream: str) -> dict[Priority, int]:
    floors: dict[Priority, int] = {}
    for priority in PRIORITIES:
        try:
            info = await js.consumer_info(stream, consumer_name(priority))
        except nats.js.errors.NotFoundError:
            continue
        if info.ack_floor is not None:
            floors[priority] = info.ack_floor.stream_seq
    return floors


async def publish_record(
    endpoint: RegionEndpoint,
    pipeline: PipelineConfig,
    record: FailoverRecord,
    *,
    request_timeout: float,
) -> None:
    """Write the failover record into `endpoint`'s degradation bucket (mirrored from there
    into every standby). Raises RecordError."""
    with failing_as(RecordError, f"writing the failover record into {endpoint.name}"):
        async with connect(endpoint, request_timeout=request_timeout) as client:
            js = client.jetstream(timeout=request_timeout)
            await js.publish(record_subject(pipeline.stream), encode_failover(record))
