"""The managed-NATS part of the model: defaults that make it durable, and refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from surge_operator.api import parse_spec


def region(nats: dict[str, object]) -> dict[str, object]:
    return {"regions": [{"name": "east", "role": "primary", "nats": nats}]}


def test_managed_defaults_are_durable_three_servers_fsync_always_and_r3() -> None:
    spec = parse_spec(region({"managed": {}}))
    managed = spec.regions[0].nats.managed
    assert managed is not None
    assert (managed.servers, managed.sync_interval, managed.storage.size) == (3, "always", "10Gi")
    assert spec.stream_replicas() == 3


def test_external_nats_keeps_one_replica_by_default() -> None:
    assert parse_spec(region({"url": "nats://n:4222"})).stream_replicas() == 1


def test_a_single_managed_server_defaults_to_one_replica() -> None:
    assert parse_spec(region({"managed": {"servers": 1}})).stream_replicas() == 1


def test_explicit_replicas_win_and_may_be_one() -> None:
    spec = parse_spec({**region({"managed": {}}), "stream": {"replicas": 1}})
    assert spec.stream_replicas() == 1


@pytest.mark.parametrize("replicas", [2, 4, 7])
def test_replicas_must_be_one_three_or_five(replicas: int) -> None:
    with pytest.raises(ValidationError, match=r"stream\.replicas"):
        parse_spec({**region({"managed": {}}), "stream": {"replicas": replicas}})


def test_replicas_above_the_server_count_are_refused_naming_both_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_spec({**region({"managed": {"servers": 3}}), "stream": {"replicas": 5}})
    assert "spec.regions[east].nats.managed.servers (3)" in str(caught.value)


@pytest.mark.parametrize("nats", [{}, {"url": "nats://n:4222", "managed": {}}])
def test_exactly_one_of_url_and_managed(nats: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="exactly one of url"):
        parse_spec(region(nats))


def test_managed_nats_refuses_a_credentials_secret() -> None:
    with pytest.raises(ValidationError, match="credentialsSecret"):
        parse_spec(region({"managed": {}, "credentialsSecret": {"name": "x"}}))


@pytest.mark.parametrize("value", ["sometimes", "10", "-1s"])
def test_sync_interval_is_always_or_a_duration(value: str) -> None:
    with pytest.raises(ValidationError, match=r"sync_interval|syncInterval"):
        parse_spec(region({"managed": {"syncInterval": value}}))
