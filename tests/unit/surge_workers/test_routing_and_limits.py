"""Pure routing rules, token buckets and load profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surge_workers.contract import Priority
from surge_workers.errors import ConfigError
from surge_workers.load import LoadSpec, arrivals, peak_rate, rate_at, trace_row
from surge_workers.ratelimit import TokenBucket
from surge_workers.routing import RoutingRules, choose_team, load_rules

RULES = RoutingRules(tenant_teams={"bigco": "bigco-desk"})


@pytest.mark.parametrize(
    ("tenant", "language", "text", "topic", "team"),
    [
        ("bigco", "de", "refund please", True, "bigco-desk"),
        ("acme", "en", "I was charged twice, refund!", True, "billing"),
        ("acme", "de", "mein Passwort? password reset", True, "security"),
        ("acme", "de", "refund please", False, "dach"),
        ("acme", "fr-CA", "bonjour", True, "francophone"),
        ("acme", None, "hello", True, "general"),
    ],
)
def test_choose_team(tenant: str, language: str | None, text: str, topic: bool, team: str) -> None:
    assert (
        choose_team(RULES, tenant=tenant, language=language, text=text, topic_routing=topic) == team
    )


def test_rules_load_from_json(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"default_team": "tier1", "topic_keywords": {"vip": ["Gold"]}}))
    rules = load_rules(path)
    assert rules.default_team == "tier1"
    assert (
        choose_team(rules, tenant="a", language=None, text="gold member", topic_routing=True)
        == "vip"
    )


def test_bad_rules_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError):
        load_rules(path)


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.take(1, now=0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(1, now=0.0) == pytest.approx(0.1)
    assert bucket.take(1, now=0.1) == 0.0


def test_oversized_take_gets_a_finite_wait() -> None:
    assert TokenBucket(rate=10, burst=5).take(50, now=0.0) == 5


@given(
    takes=st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.5), st.integers(min_value=1, max_value=5)),
        max_size=60,
    )
)
def test_token_bucket_never_exceeds_burst_plus_rate(takes: list[tuple[float, int]]) -> None:
    bucket = TokenBucket(rate=20, burst=10)
    now = granted = 0.0
    for step, n in takes:
        now += step
        if bucket.take(n, now) == 0.0:
            granted += n
    assert granted <= 10 + 20 * now + 1e-6


def test_unlimited_bucket() -> None:
    assert TokenBucket(rate=0, burst=0).take(10**6, now=0) == 0.0


def test_surge_profile_peaks_in_its_window() -> None:
    spec = LoadSpec(profile="surge", rate=100, duration=100, surge_factor=5)
    assert rate_at(spec, 10) == 100
    assert rate_at(spec, 45) == pytest.approx(500)
    assert rate_at(spec, 90) == 100
    assert peak_rate(spec) == 500


def test_diurnal_profile_starts_at_the_trough() -> None:
    spec = LoadSpec(profile="diurnal", rate=100, duration=60, diurnal_amplitude=0.8)
    assert rate_at(spec, 0) == pytest.approx(20)
    assert rate_at(spec, 30) == pytest.approx(180)


def test_arrivals_are_seeded_and_follow_the_rate_and_mix() -> None:
    spec = LoadSpec(rate=200, duration=20, seed=3)
    first = list(arrivals(spec))
    assert first == list(arrivals(spec))
    assert 3400 < len(first) < 4600
    assert all(0 <= a.at < 20 for a in first)
    share = sum(a.priority is Priority.CRITICAL for a in first) / len(first)
    assert 0.07 < share < 0.13


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ConfigError, match="profile"):
        LoadSpec(profile="spiky")  # type: ignore[arg-type]


def test_trace_rows_default_their_optional_columns() -> None:
    row = trace_row({"t": "1.5"}, 7)
    assert (row.at, row.priority, row.conversation_id, row.tenant) == (
        1.5,
        Priority.NORMAL,
        "conv-7",
        "acme",
    )
    assert trace_row({"t": "0", "priority": "critical"}, 2).priority is Priority.CRITICAL


def test_a_replica_enforces_its_share_of_the_cluster_wide_rate() -> None:
    from surge_workers.ratelimit import TenantLimiter, replica_share

    limiter = TenantLimiter(rate=10, burst=10, throttled_fraction=0.1)
    assert replica_share([100.0, 99.0, 50.0], now=100.0) == 0.5  # the stale one is gone
    assert replica_share([], now=100.0) == 1.0
    limiter.set_share(replica_share([100.0, 100.0], now=100.0))
    allowed = sum(limiter.take("acme", 1, now=0.0) == 0 for _ in range(20))
    assert allowed == 5  # half the burst on each of two replicas
    limiter.set_share(1.0)
    assert limiter.take("acme", 1, now=1.0) == 0  # refilled at the full rate again


def test_requests_without_a_valid_token_are_limited_per_address() -> None:
    from surge_workers.ratelimit import AddressLimiter

    limiter = AddressLimiter(rate=1, burst=3, max_addresses=2)
    assert [limiter.take("10.0.0.1", 0.0) == 0 for _ in range(4)] == [True, True, True, False]
    assert limiter.take("10.0.0.2", 0.0) == 0  # another address has its own bucket
    limiter.take("10.0.0.3", 0.0)  # the least recent address is forgotten, bounded memory
    assert limiter.take("10.0.0.1", 0.0) == 0
