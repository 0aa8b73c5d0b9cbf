"""Gateway refusal steps without a network: auth, tenant, size, admission, rate, models;
and the committed OpenAPI document matches the generator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from surge_workers.api_models import BatchIn, MessageIn
from surge_workers.contract import DegradationLevel, DegradationState, Priority
from surge_workers.errors import ConfigError
from surge_workers.gateway import (
    Gateway,
    Refused,
    TokenTable,
    encode_payload,
    hash_token,
    load_tokens,
    utf8_length,
)
from surge_workers.logs import get_logger
from surge_workers.metrics import GatewayMetrics
from surge_workers.openapi import committed_document, openapi_document, render
from surge_workers.settings import GatewaySettings


class FakeRequest:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def gateway(**overrides: Any) -> tuple[Gateway, Clock]:
    clock = Clock()
    settings = GatewaySettings(max_text_bytes=100, rate_limit=10, rate_burst=10, **overrides)
    gw = Gateway(
        settings,
        TokenTable.from_tokens({"tok-a": "acme", hash_token("tok-g"): "globex"}),
        None,
        GatewayMetrics(),
        get_logger("test"),
        clock=clock,
    )
    return gw, clock


def msg(priority: Priority = Priority.NORMAL, **fields: Any) -> MessageIn:
    body: dict[str, Any] = {"id": "m1", "conversation_id": "c1", "text": "hi"}
    body.update(fields, priority=priority)
    return MessageIn.model_validate(body)


@pytest.mark.parametrize(
    ("header", "tenant"),
    [("Bearer tok-a", "acme"), ("bearer   tok-g ", "globex")],
)
def test_bearer_token_maps_to_its_tenant(header: str, tenant: str) -> None:
    gw, _ = gateway()
    assert gw.tenant_of(FakeRequest({"Authorization": header})) == tenant  # type: ignore[arg-type]


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer nope", "Basic tok-a"])
def test_missing_or_unknown_token_is_401(header: str | None) -> None:
    gw, _ = gateway()
    headers = {} if header is None else {"Authorization": header}
    with pytest.raises(Refused) as caught:
        gw.tenant_of(FakeRequest(headers))  # type: ignore[arg-type]
    assert caught.value.status == 401


def test_text_size_and_tenant_checks() -> None:
    gw, _ = gateway()
    gw.check_messages("acme", [msg(tenant="acme")])
    with pytest.raises(Refused) as too_big:
        gw.check_messages("acme", [msg(text="ü" * 51)])  # 102 bytes
    with pytest.raises(Refused) as wrong:
        gw.check_messages("acme", [msg(tenant="globex")])
    assert (too_big.value.status, wrong.value.status) == (413, 403)


def test_shed_priorities_get_429_with_retry_after() -> None:
    gw, _ = gateway()
    gw.on_degradation(DegradationState(level=DegradationLevel.CRITICAL_ONLY))
    gw.admit("acme", [msg(Priority.CRITICAL)])
    with pytest.raises(Refused) as caught:
        gw.admit("acme", [msg(Priority.BULK)])
    assert (caught.value.status, caught.value.error) == (429, "degraded")
    assert int(caught.value.headers["Retry-After"]) > 0


def test_level_three_throttles_normal_instead_of_shedding_it() -> None:
    gw, clock = gateway()  # 10 msg/s, burst 10; throttled to a tenth: burst 1
    gw.on_degradation(DegradationState(level=DegradationLevel.CRITICAL_ONLY))
    gw.admit("acme", [msg(Priority.NORMAL)])  # normal is not sheddable: still admitted
    with pytest.raises(Refused) as caught:
        gw.admit("acme", [msg(Priority.NORMAL)])
    assert (caught.value.status, caught.value.error) == (429, "throttled")
    assert "throttles normal" in caught.value.detail
    assert int(caught.value.headers["Retry-After"]) >= 1
    gw.admit("acme", [msg(Priority.CRITICAL)] * 5)  # critical is never throttled
    clock.now = 1.0
    gw.admit("acme", [msg(Priority.NORMAL)])


def test_a_class_the_spec_marks_sheddable_is_shed() -> None:
    gw, _ = gateway()
    sheddable = frozenset({Priority.NORMAL, Priority.BULK})
    gw.on_degradation(DegradationState(level=DegradationLevel.SHED_BULK, sheddable=sheddable))
    with pytest.raises(Refused) as caught:
        gw.admit("acme", [msg(Priority.NORMAL)])
    assert (caught.value.status, caught.value.error) == (429, "degraded")
    assert "sheds normal" in caught.value.detail
    # ... and one it marks not sheddable is admitted at level 2, throttled at level 3
    gw.on_degradation(DegradationState(level=DegradationLevel.SHED_BULK, sheddable=frozenset()))
    gw.admit("acme", [msg(Priority.BULK)])
    gw.on_degradation(DegradationState(level=DegradationLevel.CRITICAL_ONLY, sheddable=frozenset()))
    gw.admit("acme", [msg(Priority.BULK)])
    with pytest.raises(Refused) as throttled:
        gw.admit("acme", [msg(Priority.BULK)])
    assert throttled.value.error == "throttled"


def test_throttled_bulk_runs_at_a_fraction_of_the_tenant_rate() -> None:
    gw, clock = gateway()
    gw.on_degradation(DegradationState(level=DegradationLevel.THROTTLE_BULK))
    gw.admit("acme", [msg(Priority.BULK)])  # burst of the throttled bucket: 1
    with pytest.raises(Refused) as caught:
        gw.admit("acme", [msg(Priority.BULK)])
    assert caught.value.error == "throttled"
    gw.admit("acme", [msg(Priority.NORMAL)])  # normal is not throttled
    clock.now = 1.0  # 10 msg/s x 0.1 = one bulk message per second
    gw.admit("acme", [msg(Priority.BULK)])


def test_rate_limit_is_per_tenant() -> None:
    gw, clock = gateway()
    gw.admit("acme", [msg()] * 10)
    with pytest.raises(Refused) as caught:
        gw.admit("acme", [msg()])
    gw.admit("globex", [msg()])
    assert caught.value.error == "rate_limited"
    clock.now = 0.5
    gw.admit("acme", [msg()] * 5)


@pytest.mark.parametrize(
    "body",
    [
        {"id": "has space", "conversation_id": "c", "text": "x"},
        {"id": "m", "conversation_id": "c", "text": ""},
        {"id": "m", "conversation_id": "c", "text": "x", "priority": "urgent"},
        {"id": "m", "conversation_id": "c", "text": "x", "extra": 1},
        {"id": "m", "conversation_id": "c", "text": "x", "language": "english"},
    ],
)
def test_message_model_rejects(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MessageIn.model_validate(body)


def test_batch_needs_one_to_five_hundred_messages() -> None:
    one = {"id": "m", "conversation_id": "c", "text": "x"}
    BatchIn.model_validate({"messages": [one]})
    for size in (0, 501):
        with pytest.raises(ValidationError):
            BatchIn.model_validate({"messages": [one] * size})


def test_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"acme": ["a1", "a2"], "globex": "g1"}))
    assert load_tokens(path) == {"a1": "acme", "a2": "acme", "g1": "globex"}
    path.write_text(json.dumps({"acme": [1]}))
    with pytest.raises(ConfigError):
        load_tokens(path)


def test_committed_openapi_document_is_current() -> None:
    # Regenerate with: python -m surge_workers.openapi > workers/surge_workers/openapi.json
    assert committed_document() == json.loads(render())
    assert committed_document() == json.loads(json.dumps(openapi_document()))


def test_openapi_documents_every_refusal() -> None:
    post = openapi_document()["paths"]["/v1/messages"]["post"]
    assert {"202", "400", "401", "403", "413", "422", "429", "503", "507"} <= set(post["responses"])
    assert "Retry-After" in post["responses"]["429"]["headers"]


def test_rotated_tokens_file_is_picked_up_and_a_broken_one_ignored(tmp_path: Path) -> None:
    import os

    from surge_workers.gateway import TokenFile

    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"acme": ["old"]}))
    tokens = TokenFile(path, get_logger("test"), interval=0)
    assert tokens.current().tenant_for("old") == "acme"
    path.write_text(json.dumps({"acme": ["new"]}))
    os.utime(path, (1, 1))
    assert tokens.current().tenant_for("new") == "acme"
    assert tokens.current().tenant_for("old") is None
    path.write_text("{broken")
    os.utime(path, (2, 2))
    assert tokens.current().tenant_for("new") == "acme"


def test_tokens_are_held_only_as_digests_and_may_be_stored_hashed() -> None:
    table = TokenTable.from_tokens({"plain-secret": "acme", hash_token("hashed-secret"): "globex"})
    assert table.tenant_for("plain-secret") == "acme"
    assert table.tenant_for("hashed-secret") == "globex"
    assert table.tenant_for(hash_token("hashed-secret")) is None  # the digest is no token
    assert table.tenant_for("plain-secre") is None
    assert table.tenants == {"acme", "globex"}
    held = repr([getattr(table, slot) for slot in TokenTable.__slots__])
    assert "plain-secret" not in held


def test_a_malformed_hashed_token_is_a_config_error_naming_the_tenant() -> None:
    with pytest.raises(ConfigError, match="acme"):
        TokenTable.from_tokens({"sha256:xyz": "acme"})


def test_token_lookup_compares_with_compare_digest_against_every_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hmac

    from surge_workers.gateway import auth

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    table = TokenTable.from_tokens({"t1": "acme", "t2": "globex", "t3": "initech"})
    assert table.tenant_for("t1") == "acme"
    assert len(calls) == 3  # no early exit on the match


@settings(max_examples=200)
@given(
    text=st.text(min_size=1),
    language=st.sampled_from([None, "", "en", "de-AT"]),
    channel=st.sampled_from([None, "", "web", "e-mail_2"]),
)
def test_stored_payload_is_exactly_what_json_dumps_gives(
    text: str, language: str | None, channel: str | None
) -> None:
    message = MessageIn.model_construct(
        id="m1", conversation_id="c1", text=text, language=language, channel=channel
    )
    expected: dict[str, Any] = {"text": text}
    if language:
        expected["language"] = language
    if channel:
        expected["channel"] = channel
    assert encode_payload(message) == json.dumps(expected).encode()


@given(st.text())
def test_utf8_length(text: str) -> None:
    assert utf8_length(text) == len(text.encode())


def test_answers_serialize_like_the_documented_models() -> None:
    from surge_workers.api_models import Accepted, AcceptedDict, BatchAccepted, BatchAcceptedDict
    from surge_workers.gateway.encoding import ACCEPTED_JSON as _ACCEPTED_JSON
    from surge_workers.gateway.encoding import BATCH_ACCEPTED_JSON as _BATCH_ACCEPTED_JSON

    assert set(AcceptedDict.__annotations__) == set(Accepted.model_fields)
    assert set(BatchAcceptedDict.__annotations__) == set(BatchAccepted.model_fields)
    results: list[AcceptedDict] = [
        {"id": "m1", "stream": "S", "seq": 7, "duplicate": False},
        {"id": "m2", "stream": "S", "seq": 3, "duplicate": True},
    ]
    models = [Accepted(**r) for r in results]
    assert _ACCEPTED_JSON.dump_json(results[0]).decode() == models[0].model_dump_json()
    assert (
        _BATCH_ACCEPTED_JSON.dump_json({"results": results}).decode()
        == BatchAccepted(results=models).model_dump_json()
    )


def test_mixed_batch_is_shed_by_its_shed_priority_and_throttles_only_bulk() -> None:
    gw, _ = gateway()
    gw.on_degradation(DegradationState(level=DegradationLevel.CRITICAL_ONLY))
    with pytest.raises(Refused) as shed:
        gw.admit("acme", [msg(Priority.CRITICAL), msg(Priority.BULK), msg(Priority.NORMAL)])
    assert "sheds bulk" in shed.value.detail
    gw, _ = gateway()  # 10 msg/s, burst 10; bulk throttled to a tenth: burst 1
    gw.on_degradation(DegradationState(level=DegradationLevel.THROTTLE_BULK))
    gw.admit("acme", [msg(Priority.NORMAL), msg(Priority.BULK), msg(Priority.NORMAL)])
    with pytest.raises(Refused) as throttled:
        gw.admit("acme", [msg(Priority.BULK), msg(Priority.NORMAL), msg(Priority.BULK)])
    assert throttled.value.error == "throttled"


def test_offered_counts_accepted_and_refused_writes_per_priority() -> None:
    gw, _ = gateway()
    gw.on_degradation(DegradationState(level=DegradationLevel.CRITICAL_ONLY))
    gw.admit("acme", [msg(Priority.NORMAL)])  # admitted
    for _ in range(3):
        with pytest.raises(Refused):
            gw.admit("acme", [msg(Priority.NORMAL)])  # throttled
    with pytest.raises(Refused):
        gw.admit("acme", [msg(Priority.BULK), msg(Priority.CRITICAL)])  # bulk shed
    assert gw.offered == {Priority.CRITICAL: 1, Priority.NORMAL: 4, Priority.BULK: 1}


def test_a_missing_tokens_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    from surge_workers.errors import ConfigError
    from surge_workers.gateway import TokenFile

    missing = tmp_path / "tokens.json"
    with pytest.raises(ConfigError, match=r"tokens\.json"):
        TokenFile(missing, log=None)


def test_unknown_tokens_from_one_address_turn_into_429_after_the_burst() -> None:
    gw, _ = gateway(unauthenticated_rate=1, unauthenticated_burst=2)

    class Remote(FakeRequest):
        remote = "192.0.2.7"

    codes = []
    for _ in range(3):
        with pytest.raises(Refused) as refused:
            gw.tenant_of(Remote({"Authorization": "Bearer guessed"}))  # type: ignore[arg-type]
        codes.append(refused.value.status)
    assert codes == [401, 401, 429]
    assert refused.value.headers["Retry-After"] == "1"
    # a valid token is never held back by this limit
    assert gw.tenant_of(Remote({"Authorization": "Bearer tok-a"})) == "acme"  # type: ignore[arg-type]
