"""Every MessagingCluster field's bounds and types, rejected by the pydantic model with an
error located at that field (the same generated cases run against the real API server in
tests/e2e/test_crd_validation.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tests.unit.surge_operator.crd_cases import BASE, Case, cases

from surge_operator import api

CASES = list(cases())


def test_the_base_example_is_valid() -> None:
    api.MessagingCluster.model_validate(BASE)


def test_every_field_has_cases() -> None:
    fields = {c.path for c in CASES}
    assert len(fields) > 60
    assert ("spec", "stream", "replicas") in fields
    assert ("spec", "failover", "maxPromotionLag") in fields


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_model_rejects_it_naming_the_field(case: Case) -> None:
    with pytest.raises(ValidationError) as caught:
        api.MessagingCluster.model_validate(case.manifest())
    where = [tuple(e["loc"]) for e in caught.value.errors()]
    assert any(loc[: len(case.path)] == case.path for loc in where), where
