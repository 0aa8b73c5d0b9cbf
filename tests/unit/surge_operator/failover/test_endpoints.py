"""`failing_as`: the one translation of a region's NATS failures into the caller's
`FailoverError`, shared by promotion, failback, mirroring and the failover record."""

from __future__ import annotations

import nats.errors
import pytest

from surge_operator.errors import (
    FailbackNotReadyError,
    MirrorError,
    NatsUnavailableError,
    PromotionError,
)
from surge_operator.failover.endpoints import failing_as
from surge_workers.errors import SurgeWorkersError


def test_an_unreachable_region_keeps_connects_message() -> None:
    with pytest.raises(MirrorError) as caught, failing_as(MirrorError, "mirroring S"):
        raise NatsUnavailableError("cannot connect to region east at nats://x: refused")
    assert caught.value.message == "cannot connect to region east at nats://x: refused"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_an_unreachable_region_can_be_a_different_condition() -> None:
    with (
        pytest.raises(FailbackNotReadyError),
        failing_as(PromotionError, "failback to east", unreachable=FailbackNotReadyError),
    ):
        raise NatsUnavailableError("cannot connect")


@pytest.mark.parametrize("exc", [TimeoutError(), nats.errors.NoRespondersError()])
def test_nats_failures_say_what_was_being_done(exc: Exception) -> None:
    with pytest.raises(PromotionError) as caught, failing_as(PromotionError, "promoting S in west"):
        raise exc
    assert caught.value.message.startswith("promoting S in west failed: ")
    assert type(exc).__name__ in caught.value.message


def test_extra_exception_types_only_when_asked() -> None:
    with pytest.raises(SurgeWorkersError), failing_as(PromotionError, "promoting"):
        raise SurgeWorkersError("bad pipeline")
    with (
        pytest.raises(PromotionError, match=r"promoting failed: .*bad pipeline"),
        failing_as(PromotionError, "promoting", also=(SurgeWorkersError,)),
    ):
        raise SurgeWorkersError("bad pipeline")


def test_the_callers_own_errors_pass_through_untouched() -> None:
    raised = MirrorError("tail not fully recovered")
    with pytest.raises(MirrorError) as caught, failing_as(MirrorError, "mirroring S"):
        raise raised
    assert caught.value is raised
