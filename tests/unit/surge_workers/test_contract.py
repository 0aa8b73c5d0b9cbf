"""The wire contract: subjects, partitions, names, degradation semantics."""

from __future__ import annotations

import re
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surge_workers import contract
from surge_workers.contract import (
    PRIORITIES,
    Admission,
    DegradationLevel,
    DegradationState,
    Feature,
    Priority,
    admission,
    decode_degradation,
    encode_degradation,
    features,
    key_token,
    parse_subject,
    partition_for,
    retry_after_seconds,
    subject_for,
    worker_share,
)

ids = st.text(min_size=1, max_size=40)


def test_priorities_are_declared_in_pull_order() -> None:
    assert [p.value for p in PRIORITIES] == ["critical", "normal", "bulk"]
    assert [p.rank for p in PRIORITIES] == [0, 1, 2]
    assert list(Priority) == list(PRIORITIES)


@given(conversation=ids, partitions=st.integers(min_value=1, max_value=4096))
def test_partition_is_stable_and_in_range(conversation: str, partitions: int) -> None:
    partition = partition_for(conversation, partitions, tenant="acme")
    assert 0 <= partition < partitions
    # Same in any language: crc32 of "<tenant>.<conversation>" (as key tokens).
    scoped = f"acme.{key_token(conversation)}"
    assert partition == zlib.crc32(scoped.encode()) % partitions


def test_partition_rejects_zero_partitions() -> None:
    with pytest.raises(ValueError, match="partitions"):
        partition_for("c1", 0, tenant="acme")


@given(
    priority=st.sampled_from(PRIORITIES),
    partition=st.integers(min_value=0, max_value=4095),
    prefix=st.sampled_from(["surge", "acme.support", "a-b_c"]),
)
def test_subjects_parse_back(priority: Priority, partition: int, prefix: str) -> None:
    assert parse_subject(prefix, subject_for(prefix, priority, partition)) == (priority, partition)


@pytest.mark.parametrize(
    "subject",
    ["other.normal.1", "surge.normal", "surge.normal.x", "surge.urgent.1", "surge.dlq.normal"],
)
def test_foreign_subjects_are_rejected(subject: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages, all ValueError
        parse_subject("surge", subject)


def test_names_used_by_operator_and_workers() -> None:
    assert contract.stream_subjects("s") == ["s.critical.>", "s.normal.>", "s.bulk.>"]
    assert contract.consumer_name(Priority.BULK) == "surge-bulk"
    assert contract.dead_letter_stream("ORDERS") == "ORDERS-dlq"
    assert contract.dead_letter_subject("s", Priority.NORMAL) == "s.dlq.normal"
    assert contract.kv_buckets("ORDERS") == (
        "ORDERS-degradation",
        "ORDERS-routing",
        "ORDERS-transcripts",
    )
    assert contract.transcript_key("acme", "c1", "m1") == "t.acme.c1.m1"
    assert contract.transcript_filter("acme", "c1") == "t.acme.c1.*"
    assert contract.sticky_key("acme", "c1") == "c.acme.c1"


def test_dead_letter_subjects_never_overlap_the_stream_subjects() -> None:
    for priority in PRIORITIES:
        subject = contract.dead_letter_subject("s", priority)
        with pytest.raises(ValueError):  # noqa: PT011
            parse_subject("s", subject)


_KV_TOKEN = re.compile(r"^[-_=A-Za-z0-9]+$")  # a KV key token: no dot, never empty


@given(value=st.text(max_size=300))
def test_key_tokens_are_valid_kv_tokens(value: str) -> None:
    token = key_token(value)
    assert _KV_TOKEN.match(token)
    assert token == key_token(value)
    # Ids keep their spelling; anything else becomes "=<digest>", which no id can spell.
    assert (token == value) if contract.is_valid_id(value) else token.startswith("=")


def test_key_token_keeps_ids_from_the_id_alphabet() -> None:
    assert key_token("conv-42_a") == "conv-42_a"
    assert key_token("a.b") != "a.b"


@given(
    a=st.tuples(st.text(max_size=40), st.text(max_size=40)),
    b=st.tuples(st.text(max_size=40), st.text(max_size=40)),
)
def test_scoped_ids_of_different_pairs_never_collide(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    assert (contract.scoped_id(*a) == contract.scoped_id(*b)) == (a == b)


@pytest.mark.parametrize(
    ("forger", "victim"),
    [
        # A tenant name or id carrying the separator cannot spell another tenant's key.
        (("acme.c1", "m1"), ("acme", "c1.m1")),
        (("acme", "c1.m1"), ("acme.c1", "m1")),
        (("a", "b.c"), ("a.b", "c")),
        (("", "acme.c1"), ("acme", "c1")),
        (("acme\x00", "c1"), ("acme", "\x00c1")),
    ],
)
def test_separators_in_tenants_or_ids_cannot_forge_a_key(
    forger: tuple[str, str], victim: tuple[str, str]
) -> None:
    assert contract.scoped_id(*forger) != contract.scoped_id(*victim)
    assert contract.sticky_key(*forger) != contract.sticky_key(*victim)
    assert contract.transcript_key(*forger, "m") != contract.transcript_key(*victim, "m")


def test_every_identity_differs_between_tenants() -> None:
    headers = [
        contract.message_headers(
            tenant=tenant,
            msg_id="m1",
            conversation_id="c1",
            priority=Priority.NORMAL,
            enqueued_at="0",
        )
        for tenant in ("acme", "globex")
    ]
    assert headers[0][contract.Header.MSG_ID] == "acme.m1"
    assert headers[1][contract.Header.MSG_ID] == "globex.m1"
    assert headers[0][contract.Header.CLIENT_ID] == headers[1][contract.Header.CLIENT_ID] == "m1"
    assert contract.transcript_key("acme", "c1", "m1") != contract.transcript_key(
        "globex", "c1", "m1"
    )
    assert contract.sticky_key("acme", "c1") != contract.sticky_key("globex", "c1")
    partitions = {
        contract.partition_for("c1", 4096, tenant=tenant) for tenant in ("acme", "globex")
    }
    assert len(partitions) == 2


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (DegradationLevel.NORMAL, ("admit", "admit", "admit")),
        (DegradationLevel.THROTTLE_BULK, ("admit", "admit", "throttle")),
        (DegradationLevel.SHED_BULK, ("admit", "admit", "shed")),
        # Level 3 protects critical, but normal is not sheddable by default: throttled,
        # never refused outright.
        (DegradationLevel.CRITICAL_ONLY, ("admit", "throttle", "shed")),
    ],
)
def test_admission_per_level(level: DegradationLevel, expected: tuple[str, ...]) -> None:
    assert tuple(admission(level, p).value for p in PRIORITIES) == expected


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (DegradationLevel.NORMAL, (1.0, 1.0, 1.0)),
        (DegradationLevel.THROTTLE_BULK, (1.0, 1.0, 0.25)),
        (DegradationLevel.SHED_BULK, (1.0, 1.0, 0.0)),
        (DegradationLevel.CRITICAL_ONLY, (1.0, 0.25, 0.0)),
    ],
)
def test_worker_share_per_level(level: DegradationLevel, expected: tuple[float, ...]) -> None:
    assert tuple(worker_share(level, p) for p in PRIORITIES) == expected


def test_the_sheddable_set_decides_who_is_shed_and_who_is_throttled() -> None:
    everything = frozenset({Priority.NORMAL, Priority.BULK})
    nothing: frozenset[Priority] = frozenset()
    level3 = DegradationLevel.CRITICAL_ONLY
    # normal marked sheddable: treated like bulk, throttled at 1 and shed from 2
    assert admission(DegradationLevel.THROTTLE_BULK, Priority.NORMAL, everything) is (
        Admission.THROTTLE
    )
    assert admission(DegradationLevel.SHED_BULK, Priority.NORMAL, everything) is Admission.SHED
    assert worker_share(level3, Priority.NORMAL, everything) == 0.0
    # bulk marked not sheddable: admitted until level 3, then throttled and bounded
    assert admission(DegradationLevel.SHED_BULK, Priority.BULK, nothing) is Admission.ADMIT
    assert worker_share(DegradationLevel.SHED_BULK, Priority.BULK, nothing) == 1.0
    assert admission(level3, Priority.BULK, nothing) is Admission.THROTTLE
    assert worker_share(level3, Priority.BULK, nothing) == 0.25


def test_critical_stays_critical_even_if_marked_sheddable() -> None:
    marked = frozenset(PRIORITIES)
    for level in DegradationLevel:
        assert admission(level, Priority.CRITICAL, marked) is Admission.ADMIT
        assert worker_share(level, Priority.CRITICAL, marked) == 1.0


sheddable_sets = st.frozensets(st.sampled_from(PRIORITIES))


@pytest.mark.parametrize("level", list(DegradationLevel))
@given(sheddable=sheddable_sets)
def test_critical_is_never_refused_or_starved(
    level: DegradationLevel, sheddable: frozenset[Priority]
) -> None:
    assert admission(level, Priority.CRITICAL, sheddable) is Admission.ADMIT
    assert worker_share(level, Priority.CRITICAL, sheddable) == 1.0
    assert retry_after_seconds(level, Priority.CRITICAL, sheddable) == 0


@pytest.mark.parametrize("level", list(DegradationLevel))
@pytest.mark.parametrize("priority", PRIORITIES)
@given(sheddable=sheddable_sets)
def test_shed_means_not_pulled_and_a_retry_after(
    level: DegradationLevel, priority: Priority, sheddable: frozenset[Priority]
) -> None:
    decision = admission(level, priority, sheddable)
    assert (worker_share(level, priority, sheddable) == 0.0) == (decision is Admission.SHED)
    if decision is not Admission.ADMIT:
        assert retry_after_seconds(level, priority, sheddable) >= 1


@pytest.mark.parametrize("level", list(DegradationLevel))
@pytest.mark.parametrize("priority", PRIORITIES)
@given(sheddable=sheddable_sets)
def test_only_sheddable_classes_are_ever_shed(
    level: DegradationLevel, priority: Priority, sheddable: frozenset[Priority]
) -> None:
    if priority not in sheddable:
        assert admission(level, priority, sheddable) is not Admission.SHED
        assert worker_share(level, priority, sheddable) > 0.0


@given(sheddable=sheddable_sets)
def test_levels_only_get_stricter(sheddable: frozenset[Priority]) -> None:
    order = {Admission.ADMIT: 0, Admission.THROTTLE: 1, Admission.SHED: 2}
    for priority in PRIORITIES:
        steps = [order[admission(level, priority, sheddable)] for level in DegradationLevel]
        assert steps == sorted(steps)
        shares = [worker_share(level, priority, sheddable) for level in DegradationLevel]
        assert shares == sorted(shares, reverse=True)


def test_non_essential_features_go_from_level_two() -> None:
    assert Feature.TOPIC_ROUTING in features(DegradationLevel.THROTTLE_BULK)
    assert features(DegradationLevel.SHED_BULK) == frozenset()


@given(
    level=st.sampled_from(list(DegradationLevel)),
    reason=st.text(max_size=50),
    sheddable=sheddable_sets,
)
def test_degradation_state_round_trips(
    level: DegradationLevel, reason: str, sheddable: frozenset[Priority]
) -> None:
    state = DegradationState(level=level, reason=reason, at=1700000000.5, sheddable=sheddable)
    assert decode_degradation(encode_degradation(state)) == state


@pytest.mark.parametrize(
    ("raw", "sheddable"),
    [
        # a publisher from before the field existed: the default
        (b'{"level": 3, "reason": "", "at": 1.0}', {Priority.BULK}),
        (b"3", {Priority.BULK}),
        (b'{"level": 3, "sheddable": "bulk"}', {Priority.BULK}),
        (b'{"level": 3, "sheddable": []}', set()),
        (b'{"level": 3, "sheddable": ["normal", "bulk"]}', {Priority.NORMAL, Priority.BULK}),
        (b'{"level": 3, "sheddable": ["normal", "urgent", 7]}', {Priority.NORMAL}),
    ],
)
def test_sheddable_decoding_is_backward_compatible_and_lenient(
    raw: bytes, sheddable: set[Priority]
) -> None:
    state = decode_degradation(raw)
    assert state.level is DegradationLevel.CRITICAL_ONLY
    assert state.sheddable == sheddable


def test_encoded_state_lists_sheddable_classes_in_priority_order() -> None:
    state = DegradationState(sheddable=frozenset({Priority.BULK, Priority.NORMAL}))
    assert b'"sheddable": ["normal", "bulk"]' in encode_degradation(state)
    assert frozenset({Priority.BULK}) == contract.DEFAULT_SHEDDABLE


@pytest.mark.parametrize(
    ("raw", "level"),
    [(None, 0), (b"", 0), (b"2", 2), (b"garbage", 0), (b'{"level": 9}', 0), (b"[1]", 0)],
)
def test_degradation_decoding_is_lenient(raw: bytes | None, level: int) -> None:
    assert int(decode_degradation(raw).level) == level


def test_enqueued_at_round_trips() -> None:
    assert contract.parse_enqueued_at(contract.format_enqueued_at(1.5)) == 1.5
    assert contract.parse_enqueued_at("nope") is None
    assert contract.parse_enqueued_at(None) is None


def test_offered_counters_round_trip_and_garbage_decodes_to_none() -> None:
    from surge_workers.contract import (
        OfferedCounts,
        decode_offered,
        encode_offered,
        offered_filter,
        offered_key,
    )

    counts = OfferedCounts(at=1700000000.5, counts={Priority.NORMAL: 7, Priority.BULK: 3})
    decoded = decode_offered(encode_offered(counts))
    assert decoded == OfferedCounts(
        at=1700000000.5, counts={Priority.CRITICAL: 0, Priority.NORMAL: 7, Priority.BULK: 3}
    )
    assert offered_key("gateway-7f9c-abc") == "offered.gateway-7f9c-abc"
    assert offered_key("host.local-12").startswith("offered.=")  # a dot would be a new token
    assert offered_filter() == "offered.*"
    for raw in (None, b"", b"garbage", b"3", b"[]", b'{"at": "x", "counts": {}}', b'{"at": 1}'):
        assert decode_offered(raw) is None
    lenient = decode_offered(b'{"at": 5, "counts": {"normal": -1, "bulk": true, "urgent": 2}}')
    assert lenient == OfferedCounts(at=5.0, counts={})


def test_failover_record_round_trips_and_rejects_garbage() -> None:
    from surge_workers.contract import FailoverRecord, decode_failover, encode_failover

    record = FailoverRecord(epoch=3, region="west", at=12.5, floors={Priority.CRITICAL: 41})
    assert decode_failover(encode_failover(record)) == record
    for raw in (
        None,
        b"",
        b"[]",
        b"{",
        b'{"epoch": -1, "region": "x", "at": 1, "floors": {}}',
        b'{"epoch": true, "region": "x", "at": 1, "floors": {}}',
    ):
        assert decode_failover(raw) is None
    odd = decode_failover(
        b'{"epoch": 1, "region": "x", "at": 1, "floors": {"critical": -3, "vip": 2}}'
    )
    assert odd is not None
    assert odd.floors == {}
