"""The CRD's rules across fields (CEL): one violating manifest per rule, rejected by the
pydantic model with the rule's own message. The same manifests go to the real API server
in tests/e2e/test_crd_validation.py, so the model and the CRD cannot drift apart."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tests.unit.surge_operator.crd_cases import RULE_CASES, RuleCase, create_rules

from surge_operator import api


def test_every_create_rule_of_the_crd_has_a_case() -> None:
    messages = {case.message for case in RULE_CASES}
    uncovered = [
        rule["message"]
        for rule in create_rules()
        if not any(message in rule["message"] for message in messages)
    ]
    assert uncovered == []


@pytest.mark.parametrize("case", RULE_CASES, ids=lambda c: c.name)
def test_the_model_rejects_it_with_the_rules_message(case: RuleCase) -> None:
    with pytest.raises(ValidationError) as caught:
        api.MessagingCluster.model_validate(case.manifest())
    assert case.model_message in str(caught.value)


@pytest.mark.parametrize("case", RULE_CASES, ids=lambda c: c.name)
def test_it_breaks_only_its_rule(case: RuleCase) -> None:
    """Each manifest is otherwise valid: with the rule's message as the only error, a
    rejection by the API server can be blamed on that rule alone."""
    with pytest.raises(ValidationError) as caught:
        api.MessagingCluster.model_validate(case.manifest())
    assert len(caught.value.errors()) == 1, caught.value.errors()
