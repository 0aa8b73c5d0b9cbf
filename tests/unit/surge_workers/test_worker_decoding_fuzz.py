"""Hypothesis fuzzing of what a worker decodes from a JetStream message: any headers and
any payload bytes either decode or raise PoisonError (dead-lettered), never anything else;
every identity derived from them is tenant-scoped and a valid KV token sequence; the
dead-letter and degradation/offered decoders accept anything."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg

from surge_workers import contract
from surge_workers.contract import Header, Priority
from surge_workers.delivery import Delivery
from surge_workers.dlq import dead_letter_of
from surge_workers.errors import PoisonError
from surge_workers.handlers import _payload

_VALUES = st.text(max_size=60) | st.sampled_from(["", ".", "a.b", "=x", "acme", "\x00"])
_HEADERS = st.dictionaries(
    st.sampled_from(
        [
            Header.MSG_ID,
            Header.CLIENT_ID,
            Header.TENANT,
            Header.CONVERSATION,
            Header.ENQUEUED_AT,
            Header.PRIORITY,
            "X-Other",
        ]
    ),
    _VALUES,
)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_KV_KEY = re.compile(r"^[-_=A-Za-z0-9]+(\.[-_=A-Za-z0-9]+)*$")
_REPLY = "$JS.ACK.S.surge-normal.1.7.7.1700000000000000000.0"


def message(headers: dict[str, str] | None, data: bytes) -> Msg:
    return Msg(None, subject="p.normal.3", reply=_REPLY, data=data, headers=headers)  # type: ignore[arg-type]


@settings(max_examples=400)
@given(
    headers=st.none() | _HEADERS,
    data=st.binary(max_size=200) | _JSONISH.map(lambda doc: json.dumps(doc).encode()),
)
def test_any_message_decodes_or_is_poison(headers: dict[str, str] | None, data: bytes) -> None:
    delivery = Delivery(message(headers, data), Priority.NORMAL)
    assert delivery.seq == 7
    assert delivery.msg_id  # the client's id, or the sequence when there is none
    scoped = delivery.scoped_id
    assert _KV_KEY.match(scoped)
    assert scoped.count(".") == 1  # tenant token, id token: nothing else can be spelled
    key = contract.transcript_key(delivery.tenant, delivery.conversation_id, delivery.msg_id)
    assert _KV_KEY.match(key)
    assert delivery.enqueued_at is None or isinstance(delivery.enqueued_at, float)
    try:
        doc: Any = _payload(delivery)
    except PoisonError:
        return
    assert isinstance(doc, dict)
    assert isinstance(doc.get("text", ""), str)


@given(tenant_a=_VALUES, tenant_b=_VALUES, msg_id=_VALUES)
def test_the_same_client_id_in_two_tenants_is_two_identities(
    tenant_a: str, tenant_b: str, msg_id: str
) -> None:
    a = Delivery(
        message({Header.TENANT: tenant_a, Header.CLIENT_ID: msg_id or "m"}, b"{}"), Priority.NORMAL
    )
    b = Delivery(
        message({Header.TENANT: tenant_b, Header.CLIENT_ID: msg_id or "m"}, b"{}"), Priority.NORMAL
    )
    assert (a.scoped_id == b.scoped_id) == (tenant_a == tenant_b)


@given(headers=_HEADERS, subject=st.text(max_size=30))
def test_any_dead_letter_headers_decode(headers: dict[str, str], subject: str) -> None:
    extra = {Header.DEAD_SEQ: "x", Header.DEAD_DELIVERIES: "-", Header.DEAD_REASON: "r"}
    letter = dead_letter_of(5, subject, {**headers, **extra})
    assert letter.seq == 5
    assert letter.original_seq == 0
    assert letter.deliveries == 0


@given(raw=st.none() | st.binary(max_size=100) | _JSONISH.map(lambda doc: json.dumps(doc).encode()))
def test_kv_documents_decode_leniently(raw: bytes | None) -> None:
    assert isinstance(contract.decode_degradation(raw), contract.DegradationState)
    offered = contract.decode_offered(raw)
    assert offered is None or all(v >= 0 for v in offered.counts.values())


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"text": 1}', b"\xff\xfe", b"null"])
def test_known_bad_payloads_are_poison(data: bytes) -> None:
    with pytest.raises(PoisonError):
        _payload(Delivery(message({}, data), Priority.NORMAL))
