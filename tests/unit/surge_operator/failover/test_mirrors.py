"""Pure parts of the failover package: endpoints, the streams of a pipeline, mirror configs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from nats.js.api import StreamConfig

from surge_operator.api import Region
from surge_operator.failover import (
    META_ALLOW_DIRECT,
    RegionEndpoint,
    UnsupportedStreamError,
    mirror_config,
    mirror_of,
    pipeline_streams,
    writable_subjects,
)
from surge_workers.pipeline import PipelineConfig

PIPELINE = PipelineConfig(stream="ORDERS", subject_prefix="support")
EAST = RegionEndpoint(name="east", url="nats://east:4222")
WEST = RegionEndpoint(name="west", url="nats://west:4222", domain="west-1")


def test_endpoint_domain_defaults_to_the_region_name() -> None:
    assert EAST.api_prefix == "$JS.east.API"
    assert WEST.api_prefix == "$JS.west-1.API"


def test_endpoint_from_the_spec_region() -> None:
    region = Region.model_validate(
        {"name": "east", "role": "primary", "nats": {"url": "nats://nats.east:4222"}}
    )
    endpoint = RegionEndpoint.from_region(region, {"token": "t"})
    assert (endpoint.name, endpoint.url, endpoint.api_prefix) == (
        "east",
        "nats://nats.east:4222",
        "$JS.east.API",
    )
    assert endpoint.connect_options == {"token": "t"}


def test_endpoint_repr_hides_credentials() -> None:
    secret = RegionEndpoint("east", "nats://east", connect_options={"token": "s3cr3t"})
    assert "s3cr3t" not in repr(secret)


def test_pipeline_streams_cover_messages_dead_letters_and_kv() -> None:
    assert pipeline_streams(PIPELINE) == (
        "ORDERS",
        "ORDERS-dlq",
        "ORDERS-replies",
        "KV_ORDERS-degradation",
        "KV_ORDERS-routing",
        "KV_ORDERS-transcripts",
    )
    assert writable_subjects(PIPELINE, "ORDERS") == [
        "support.critical.>",
        "support.normal.>",
        "support.bulk.>",
    ]
    assert writable_subjects(PIPELINE, "KV_ORDERS-routing") == ["$KV.ORDERS-routing.>"]
    assert writable_subjects(PIPELINE, "ORDERS-replies") == ["support.reply.>"]
    with pytest.raises(ValueError, match="not a stream"):
        writable_subjects(PIPELINE, "OTHER")


def test_mirror_config_has_no_subjects_and_points_at_the_source_domain() -> None:
    config = mirror_config(PIPELINE, WEST)
    assert config.subjects is None
    assert config.mirror is not None
    assert config.mirror.name == "ORDERS"
    assert config.mirror.external is not None
    assert config.mirror.external.api == "$JS.west-1.API"
    assert config.duplicate_window == PIPELINE.duplicate_window
    assert config.allow_direct is False


def test_mirror_config_refuses_work_queue_streams() -> None:
    with pytest.raises(UnsupportedStreamError, match="limits retention"):
        mirror_config(replace(PIPELINE, retention="workqueue"), EAST)


def test_mirror_of_keeps_limits_and_drops_server_metadata() -> None:
    origin = StreamConfig(
        name="KV_x",
        subjects=["$KV.x.>"],
        allow_direct=True,
        max_msgs_per_subject=1,
        metadata={"_nats.ver": "2.15.1", "team": "a"},
    )
    config = mirror_of(origin, EAST)
    assert config.subjects is None
    assert config.max_msgs_per_subject == 1
    assert config.metadata == {"team": "a", META_ALLOW_DIRECT: "true"}


def test_a_mirror_takes_the_standbys_replicas_not_the_origins() -> None:
    # West runs one server: an R3 mirror there fails ("replicas > 1 not supported in
    # non-clustered mode"), seen on real nodes.
    assert mirror_config(replace(PIPELINE, replicas=3), EAST).num_replicas == 3
    assert mirror_config(replace(PIPELINE, replicas=3), EAST, replicas=1).num_replicas == 1
    origin = StreamConfig(name="KV_x", subjects=["$KV.x.>"], num_replicas=3)
    assert mirror_of(origin, EAST).num_replicas == 3
    assert mirror_of(origin, EAST, replicas=1).num_replicas == 1
