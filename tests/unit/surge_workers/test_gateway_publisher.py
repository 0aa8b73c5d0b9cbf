"""The gateway's PubAck parser: the same answer as json.loads for every ack shape."""

from __future__ import annotations

import json

import pytest

from surge_workers.gateway.publisher import parse_ack

ACKS = [
    b'{"stream":"SURGE","seq":1}',
    b'{"stream":"surge-bench_2","seq":18446744073709551615}',
    b'{"stream":"SURGE","seq":42,"duplicate":true}',
    b'{"stream":"SURGE","domain":"hub","seq":7}',  # a domain: the json path
    b'{"stream":"S\\u003cT","seq":3}',  # an escaped name: the json path
    b'{"stream": "SURGE", "seq": 5}',  # other spacing: the json path
    b'{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}',
    b'{"stream":"SURGE","seq":9,"duplicate":false}',
    b"[]",
]


@pytest.mark.parametrize("data", ACKS)
def test_acks_parse_as_json_does(data: bytes) -> None:
    assert parse_ack(data) == json.loads(data)


@pytest.mark.parametrize("data", [b"", b"not json", b'{"stream":"SURGE","seq":1'])
def test_what_is_not_json_is_none(data: bytes) -> None:
    assert parse_ack(data) is None
