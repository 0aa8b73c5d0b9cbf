"""Which failures spend a message's delivery budget (surge_workers.failures)."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from surge_workers.errors import PoisonError, RetryableError
from surge_workers.failures import (
    INFRA_BACKOFF_MAX_S,
    Failure,
    InfraWatch,
    Next,
    after_failure,
    before_handling,
    classify,
    election_advisories,
    infra_cap,
    infra_delay,
)
from surge_workers.pipeline import PriorityPolicy

POLICY = PriorityPolicy(ack_wait=4.0, max_deliver=5, backoff=(0.1, 0.2, 0.4))


@pytest.mark.parametrize(
    "err",
    [
        nats.errors.TimeoutError(),
        nats.errors.NoRespondersError(),
        nats.errors.ConnectionClosedError(),
        nats.errors.ConnectionReconnectingError(),
        nats.errors.UnexpectedEOF(),
        nats.js.errors.ServiceUnavailableError(code=503, description="no leader"),
        nats.js.errors.APIError(code=500, description="JetStream system temporarily unavailable"),
    ],
)
def test_nats_unable_to_serve_is_infrastructure(err: Exception) -> None:
    assert classify(err, handler_timed_out=False, infra_recent=False) is Failure.INFRA


@pytest.mark.parametrize(
    "err",
    [
        ValueError("bad body"),
        nats.errors.MaxPayloadError(),  # the message itself is too big to pass on
        nats.js.errors.BadRequestError(code=400, description="invalid key"),
        KeyError("team"),
    ],
)
def test_the_messages_own_faults_are_charged(err: Exception) -> None:
    assert classify(err, handler_timed_out=False, infra_recent=True) is Failure.HANDLER


def test_poison_is_poison_whatever_else_happens() -> None:
    err = PoisonError("never processable")
    assert classify(err, handler_timed_out=True, infra_recent=True) is Failure.POISON
    assert after_failure(Failure.POISON, 1, POLICY, infra_recent=True) == Next(
        "dead_letter", cause="poison"
    )


def test_a_timed_out_handler_is_charged_unless_nats_was_in_trouble() -> None:
    err = TimeoutError()
    assert classify(err, handler_timed_out=True, infra_recent=False) is Failure.HANDLER
    assert classify(err, handler_timed_out=True, infra_recent=True) is Failure.INFRA


def test_handler_failures_dead_letter_when_the_budget_is_spent() -> None:
    for attempt in range(1, POLICY.max_deliver):
        step = after_failure(Failure.HANDLER, attempt, POLICY, infra_recent=False)
        assert step == Next("nak", delay=POLICY.nak_delay(attempt))
    assert after_failure(Failure.HANDLER, 5, POLICY, infra_recent=False) == Next(
        "dead_letter", cause="max_deliver"
    )


def test_a_spent_budget_waits_while_nats_was_in_trouble_up_to_the_cap() -> None:
    # Earlier deliveries may have failed on the outage (here or on another worker).
    assert after_failure(Failure.HANDLER, 5, POLICY, infra_recent=True).action == "nak"
    cap = infra_cap(POLICY.max_deliver)
    assert after_failure(Failure.HANDLER, cap, POLICY, infra_recent=True) == Next(
        "dead_letter", cause="max_deliver"
    )


def test_infrastructure_failures_are_not_charged_but_end_at_the_cap() -> None:
    cap = infra_cap(POLICY.max_deliver)
    assert cap == 20
    for attempt in range(1, cap):
        step = after_failure(Failure.INFRA, attempt, POLICY, infra_recent=False)
        assert step == Next("nak", delay=infra_delay(attempt))
    assert after_failure(Failure.INFRA, cap, POLICY, infra_recent=False) == Next(
        "dead_letter", cause="infra"
    )


def test_infrastructure_backoff_doubles_to_its_ceiling() -> None:
    delays = [infra_delay(n) for n in range(1, 12)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays == sorted(delays)
    assert max(delays) == INFRA_BACKOFF_MAX_S


def test_unlimited_budget_never_dead_letters() -> None:
    unlimited = PriorityPolicy(max_deliver=-1)
    assert infra_cap(-1) == -1
    assert after_failure(Failure.HANDLER, 10_000, unlimited, infra_recent=False).action == "nak"
    assert after_failure(Failure.INFRA, 10_000, unlimited, infra_recent=False).action == "nak"
    assert not before_handling(10_000, -1, infra_recent=False)


def test_over_budget_deliveries_run_again_only_while_nats_was_in_trouble() -> None:
    assert not before_handling(5, 5, infra_recent=False)
    assert before_handling(6, 5, infra_recent=False)
    assert not before_handling(6, 5, infra_recent=True)
    assert before_handling(infra_cap(5) + 1, 5, infra_recent=True)


def test_infra_watch_forgets_after_its_window() -> None:
    now = [100.0]
    watch = InfraWatch(window=30.0, clock=lambda: now[0])
    assert not watch.recent()
    watch.mark()
    now[0] += 30.0
    assert watch.recent()
    now[0] += 0.1
    assert not watch.recent()


def test_election_advisories_cover_every_stream_a_worker_touches_and_no_other() -> None:
    subjects = election_advisories("ORDERS")
    for stream in (
        "ORDERS",
        "ORDERS-dlq",
        "ORDERS-replies",
        "KV_ORDERS-routing",
        "KV_ORDERS-transcripts",
        "KV_ORDERS-degradation",
    ):
        assert f"$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.{stream}" in subjects
        assert f"$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.{stream}.*" in subjects
        assert f"$JS.EVENT.ADVISORY.STREAM.QUORUM_LOST.{stream}" in subjects
    # Exact names, no account-wide wildcard: a worker learns nothing of other clusters.
    assert all(">" not in s and "ORDERS" in s for s in subjects)
    assert len(subjects) == len(set(subjects)) == 24


def test_a_handler_wrapping_what_nats_raised_is_infrastructure() -> None:
    # The default handler raises RetryableError from the NATS error (surge_workers.handlers).
    try:
        try:
            raise nats.js.errors.NoStreamResponseError()
        except nats.js.errors.NoStreamResponseError as inner:
            raise RetryableError(f"nats: {inner}") from inner
    except RetryableError as err:
        wrapped = err
    assert classify(wrapped, handler_timed_out=False, infra_recent=False) is Failure.INFRA
    assert classify(
        RetryableError("a bad payload"), handler_timed_out=False, infra_recent=False
    ) is (Failure.HANDLER)
